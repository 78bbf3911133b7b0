"""Recurrent state-space model with 32×32 categorical latents (spec §1.3, §1.5, §1.7).

Official `common/nets.py` EnsembleRSSM (ensemble = 1). A state is a dict of `logit` (..., S, K),
`stoch` (..., S, K) one-hot and `deter` (..., D); `feat` = concat(flatten(stoch), deter).

`observe` computes exactly the official scan of `obs_step`, restructured for speed without changing
the maths: the embedding half of the posterior layer is applied to all B×T steps at once before the
loop, and the prior head (whose sample the posterior never uses) runs once on all deter states after
the loop. Only the GRU recurrence and the posterior sample stay sequential. With `batched_grads`
the loop's Dense layers get their weight gradients as one matmul over all steps (`LoopLinears`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .dists import OneHotDist, kl_categorical
from .nets import ACTS, GRUCell, LoopLinears, compute_dtype, linear, norm_layer

State = dict[str, torch.Tensor]


class RSSM(nn.Module):
    def __init__(self, action_dim: int, embed_dim: int, hidden: int = 600, deter: int = 600,
                 stoch: int = 32, discrete: int = 32, act: str = "elu", norm: str = "none",
                 batched_grads: bool = False):
        super().__init__()
        self.stoch, self.discrete, self.deter = stoch, discrete, deter
        self.batched_grads = batched_grads  # observe: weight gradients once over all steps
        self.img_in = nn.Sequential(linear(stoch * discrete + action_dim, hidden),
                                    norm_layer(norm, hidden), ACTS[act]())
        self.gru = GRUCell(hidden, deter)
        self.img_out = nn.Sequential(linear(deter, hidden), norm_layer(norm, hidden), ACTS[act]())
        self.img_dist = linear(hidden, stoch * discrete)
        self.obs_out = linear(deter + embed_dim, hidden)  # Dense on concat(h_t, embed_t)
        self.obs_norm = norm_layer(norm, hidden)
        self.obs_act = ACTS[act]()
        self.obs_dist = linear(hidden, stoch * discrete)

    @property
    def feat_dim(self) -> int:
        return self.stoch * self.discrete + self.deter

    def initial(self, batch: int, device: torch.device | str = "cpu") -> State:
        """All-zero state (no learned initial state)."""
        zeros = torch.zeros(batch, self.stoch, self.discrete, device=device)
        return {"logit": zeros, "stoch": zeros.clone(),
                "deter": torch.zeros(batch, self.deter, device=device)}

    @staticmethod
    def feat(state: State) -> torch.Tensor:
        stoch = state["stoch"]
        return torch.cat([stoch.reshape(stoch.shape[:-2] + (-1,)).to(state["deter"].dtype),
                          state["deter"]], -1)

    def _logits(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        out = layer(hidden).float()
        return out.reshape(out.shape[:-1] + (self.stoch, self.discrete))

    def _latent(self, logit: torch.Tensor, sample: bool) -> torch.Tensor:
        dist = OneHotDist(logit, event_dims=1)
        return dist.sample() if sample else dist.mode()

    def img_step(self, prev: State, prev_action: torch.Tensor, sample: bool = True) -> State:
        """Prior step: (z_{t-1}, a_{t-1}) → h_t → p(z_t | h_t)."""
        stoch = prev["stoch"].reshape(prev["stoch"].shape[:-2] + (-1,))
        x = self.img_in(torch.cat([stoch, prev_action.to(stoch.dtype)], -1))
        deter = self.gru(x, prev["deter"])
        logit = self._logits(self.img_dist, self.img_out(deter))
        return {"logit": logit, "stoch": self._latent(logit, sample), "deter": deter}

    def obs_step(self, prev: State, prev_action: torch.Tensor, embed: torch.Tensor,
                 is_first: torch.Tensor, sample: bool = True) -> tuple[State, State]:
        """Posterior step; `prev` and `prev_action` are zeroed where `is_first` (spec §1.3)."""
        keep = 1.0 - is_first.float()
        prev = {k: v * keep.reshape(keep.shape + (1,) * (v.dim() - keep.dim()))
                for k, v in prev.items()}
        prior = self.img_step(prev, prev_action * keep[..., None], sample)
        x = torch.cat([prior["deter"].to(embed.dtype), embed], -1)
        logit = self._logits(self.obs_dist, self.obs_act(self.obs_norm(self.obs_out(x))))
        post = {"logit": logit, "stoch": self._latent(logit, sample), "deter": prior["deter"]}
        return post, prior

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor,
                state: State | None = None, sample: bool = True) -> tuple[State, torch.Tensor]:
        """Filter a (B, T) sequence. Returns posterior states (B, T, ...) and prior logits."""
        B, T = embed.shape[:2]
        if state is None:
            state = self.initial(B, embed.device)
        weight = self.obs_out.weight
        w_deter = weight[:, : self.deter]
        # Embedding half of the posterior Dense for all steps at once: (T, B, hidden).
        embed_part = F.linear(embed, weight[:, self.deter:], self.obs_out.bias).transpose(0, 1)
        keep = (1.0 - is_first.float()).transpose(0, 1)  # (T, B)
        action = action.transpose(0, 1)
        img_in, img_norm, img_act = self.img_in
        gru_layer, deter_layer, dist_layer = self.gru.layer, None, self.obs_dist
        loop = None
        if self.batched_grads and torch.is_grad_enabled():
            loop = LoopLinears({"img_in": (img_in.weight, img_in.bias),
                                "gru": (self.gru.layer.weight, self.gru.layer.bias),
                                "deter": (w_deter, None),
                                "dist": (self.obs_dist.weight, self.obs_dist.bias)},
                               compute_dtype(embed.device))
            img_in, gru_layer = loop.layer("img_in"), loop.layer("gru")
            deter_layer, dist_layer = loop.layer("deter"), loop.layer("dist")
        stoch, deter = state["stoch"], state["deter"]
        logits, stochs, deters = [], [], []
        for t in range(T):
            if loop is not None:
                loop.step(t)
            k = keep[t][:, None]
            stoch = stoch * k[..., None]
            x = img_act(img_norm(img_in(torch.cat([stoch.reshape(B, -1), action[t] * k], -1))))
            deter = self.gru(x, deter * k, gru_layer)
            deter_in = deter.to(embed_part.dtype)
            hidden = (deter_layer(deter_in) if deter_layer else F.linear(deter_in, w_deter))
            hidden = hidden + embed_part[t]
            logit = self._logits(dist_layer, self.obs_act(self.obs_norm(hidden)))
            stoch = self._latent(logit, sample)
            logits.append(logit)
            stochs.append(stoch)
            deters.append(deter)
        post = {"logit": torch.stack(logits, 1), "stoch": torch.stack(stochs, 1),
                "deter": torch.stack(deters, 1)}
        prior_logit = self._logits(self.img_dist, self.img_out(post["deter"]))
        return post, prior_logit

    def imagine(self, start: State, policy: Callable[[torch.Tensor], torch.Tensor],
                horizon: int, step=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Roll the prior forward with actions from `policy(sg(feat))` (spec §2.2).

        Returns feats (H+1, N, F) with z_0 = start and actions (H+1, N, A) with action[0] = 0 and
        action[k] the action taken in z_{k-1}. The feats are in the compute dtype (bf16 under
        autocast): every consumer is a Dense layer that would cast them to it anyway, so casting
        each once here gives the same numbers and halves the memory of the stacked rollout.
        `step` replaces `imagine_step` (e.g. a compiled version of it).
        """
        step = step or self.imagine_step
        feats = [self.feat(start).to(compute_dtype(start["deter"].device))]
        state, actions = start, []
        for _ in range(horizon):
            state, feat, action = step(state, feats[-1], policy)
            feats.append(feat)
            actions.append(action)
        actions.insert(0, torch.zeros_like(actions[0]))
        return torch.stack(feats, 0), torch.stack(actions, 0)

    def imagine_step(self, state: State, feat: torch.Tensor, policy):
        """One imagination step: a ~ policy(sg(feat)), z' ~ prior(z, a); returns (z', feat', a)."""
        action = policy(feat.detach())
        state = self.img_step(state, action)
        return state, self.feat(state).to(feat.dtype), action


def kl_loss(post_logit: torch.Tensor, prior_logit: torch.Tensor, balance: float, free: float,
            forward: bool = False, free_avg: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """KL balancing with free nats (spec §1.7). Returns (loss, KL value per element).

    With forward=False: loss = α·max(mean KL(sg(q)‖p), free) + (1−α)·max(mean KL(q‖sg(p)), free),
    KL summed over the latents; `free_avg=False` clamps each element before averaging; α = 0.5
    falls back to one un-split, element-wise clamped KL. The value is KL(lhs‖sg(rhs)).
    """
    lhs, rhs = (prior_logit, post_logit) if forward else (post_logit, prior_logit)
    mix = balance if forward else 1 - balance
    if balance == 0.5:
        value = kl_categorical(lhs, rhs)
        return torch.clamp(value, min=free).mean(), value
    value_lhs = value = kl_categorical(lhs, rhs.detach())
    value_rhs = kl_categorical(lhs.detach(), rhs)
    if free_avg:
        loss_lhs = torch.clamp(value_lhs.mean(), min=free)
        loss_rhs = torch.clamp(value_rhs.mean(), min=free)
    else:
        loss_lhs = torch.clamp(value_lhs, min=free).mean()
        loss_rhs = torch.clamp(value_rhs, min=free).mean()
    return mix * loss_lhs + (1 - mix) * loss_rhs, value
