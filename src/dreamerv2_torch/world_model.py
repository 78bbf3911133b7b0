"""World model: encoder + RSSM + decoder, reward and discount heads; its loss and video report.

Spec §1.1 (preprocessing), §1.7 (loss), §7.3 (open-loop video); official `agent.py` WorldModel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import nn

from .config import Config
from .conv import Decoder, Encoder
from .envs.base import Space
from .nets import FastPaths, Head, compute_dtype
from .rssm import RSSM, kl_loss

REWARD_TRANSFORMS = {"tanh": torch.tanh, "identity": lambda r: r, "sign": torch.sign}


class WorldModel(nn.Module):
    def __init__(self, obs_space: Mapping[str, Space], act_space: Mapping[str, Space],
                 config: Config, fast: FastPaths | None = None):
        super().__init__()
        self.config = config
        fast = fast or FastPaths()
        shapes = {k: tuple(v.shape) for k, v in obs_space.items() if not k.startswith("log_")}
        self.action_dim = act_space["action"].shape[0]
        self.encoder = Encoder(shapes, **dataclasses.asdict(config.encoder),
                               conv_matmul=fast.conv_matmul)
        rssm = dataclasses.asdict(config.rssm)
        rssm.pop("ensemble")
        self.rssm = RSSM(self.action_dim, self.encoder.embed_dim, **rssm,
                         batched_grads=fast.batched_grads)
        feat = self.rssm.feat_dim
        heads = {"decoder": Decoder(shapes, feat, **dataclasses.asdict(config.decoder)),
                 "reward": Head(feat, (), **dataclasses.asdict(config.reward_head))}
        if config.pred_discount:
            heads["discount"] = Head(feat, (), **dataclasses.asdict(config.discount_head))
        self.heads = nn.ModuleDict(heads)
        self.image_keys = set(self.heads["decoder"].cnn_keys)
        self._reward_fn = REWARD_TRANSFORMS[config.clip_rewards]

    def preprocess(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """uint8 → x/255 − 0.5, int → float, reward transform, discount = γ·(1 − is_terminal)."""
        out = {}
        for key, value in obs.items():
            if key.startswith("log_"):
                continue
            if value.dtype == torch.uint8:
                value = value.float() / 255.0 - 0.5
            elif value.dtype in (torch.int32, torch.int64, torch.int16):
                value = value.float()
            out[key] = value
        if "reward" in out:
            out["reward"] = self._reward_fn(out["reward"].float())
        if "is_terminal" in out:
            out["discount"] = self.config.discount * (1.0 - out["is_terminal"].float())
        return out

    def loss(self, data: Mapping[str, torch.Tensor]):
        """World-model loss on a preprocessed (B, T) batch (spec §1.7).

        Returns (scaled total loss, posterior states, metrics as 0-d tensors).
        """
        embed = self.encoder(data)
        post, prior_logit = self.rssm.observe(embed, data["action"], data["is_first"])
        kl = self.config.kl
        loss_kl, kl_value = kl_loss(post["logit"], prior_logit, kl.balance, kl.free, kl.forward,
                                    kl.free_avg)
        # Cast once to the compute dtype: every head starts with a Dense layer that would cast it.
        feat = self.rssm.feat(post).to(compute_dtype(embed.device))
        losses = {"kl": loss_kl}
        for name, head in self.heads.items():
            inp = feat if name in self.config.grad_heads else feat.detach()
            out = head(inp)
            for key, dist in (out.items() if isinstance(out, dict) else [(name, out)]):
                losses[key] = -dist.log_prob(data[key]).mean()  # mean over B and T
        total = sum(self._scale(k) * v for k, v in losses.items())
        metrics = {f"{k}_loss": v.detach() for k, v in losses.items()}
        prior_ent = _entropy(prior_logit)
        metrics.update(model_kl=kl_value.mean().detach(), prior_ent=prior_ent.detach(),
                       post_ent=_entropy(post["logit"]).detach(), model_loss=total.detach())
        return total, post, metrics

    def _scale(self, key: str) -> float:
        scales = self.config.loss_scales
        if key in ("kl", "reward", "discount"):
            return getattr(scales, key)
        return scales.image if key in self.image_keys else scales.proprio

    def reward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.heads["reward"](feat).mode()

    def discount(self, feat: torch.Tensor) -> torch.Tensor | None:
        """Mean of the discount head (≈ γ·P(continue)), or None without a discount head."""
        return self.heads["discount"](feat).mean if "discount" in self.heads else None

    @torch.no_grad()
    def video_pred(self, data: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
        """Open-loop prediction (spec §7.3): [T, 3·H, 6·W, C] in [0, 1] (truth / model / error)."""
        decoder = self.heads["decoder"]
        n, context = min(6, data[key].shape[0]), 5
        truth = data[key][:n].float() + 0.5
        embed = self.encoder({k: v[:n, :context] for k, v in data.items()})
        states, _ = self.rssm.observe(embed, data["action"][:n, :context],
                                      data["is_first"][:n, :context])
        recon = decoder(self.rssm.feat(states))[key].mode()
        state = {k: v[:, -1] for k, v in states.items()}
        feats = []
        for t in range(context, data["action"].shape[1]):
            state = self.rssm.img_step(state, data["action"][:n, t])
            feats.append(self.rssm.feat(state))
        openl = decoder(torch.stack(feats, 1))[key].mode()
        model = torch.cat([recon, openl], 1) + 0.5
        error = (model - truth + 1) / 2
        video = torch.cat([truth, model, error], 2).clamp(0, 1)  # (B, T, 3H, W, C)
        B, T, H, W, C = video.shape
        return video.permute(1, 2, 0, 3, 4).reshape(T, H, B * W, C)


def _entropy(logit: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logit.float(), -1)
    return -(logp.exp() * logp).sum((-2, -1)).mean()
