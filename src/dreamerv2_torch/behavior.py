"""Actor-critic learning in imagination (spec §2; official `agent.py` ActorCritic and
`common.lambda_return`).

The maths is in pure functions (`lambda_return`, `discount_weights`, `actor_objective`,
`critic_loss`) tested against hand-computed values; `ActorCritic` only wires them. All sequences are
time-major: index k = 0..H over imagined states, N = B·T start states.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .config import Config
from .envs.base import Space
from .nets import Head
from .schedules import parse


def lambda_return(reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor,
                  bootstrap: torch.Tensor, lambda_: float) -> torch.Tensor:
    """λ-returns (spec §2.4): R_k = r_k + d_k·[(1−λ)·v_{k+1} + λ·R_{k+1}], with R_K = bootstrap.

    reward, value, discount: (K, N) for k = 0..K−1; bootstrap: (N,) the value of state K.
    """
    next_values = torch.cat([value[1:], bootstrap[None]], 0)
    inputs = reward + discount * next_values * (1 - lambda_)
    returns, last = [], bootstrap
    for k in reversed(range(reward.shape[0])):
        last = inputs[k] + discount[k] * lambda_ * last
        returns.append(last)
    return torch.stack(returns[::-1], 0)


def discount_weights(discount: torch.Tensor) -> torch.Tensor:
    """w_0 = 1, w_k = Π_{j<k} d_j: d_j says whether the *next* state is valid (spec §2.3)."""
    return torch.cumprod(torch.cat([torch.ones_like(discount[:1]), discount[:-1]], 0), 0)


def imagined_discounts(predicted: torch.Tensor | None, is_terminal: torch.Tensor, gamma: float,
                       shape: torch.Size) -> torch.Tensor:
    """With a discount head: d_k = its mean for k ≥ 1 and d_0 = γ·(1 − is_terminal(start)).
    Without one: d_k = γ for every k, d_0 included (spec §2.3, as the official `imagine`).

    The head's soft target already contains γ, so it is not multiplied by γ again (spec §2.3).
    """
    if predicted is None:
        return torch.full(shape, gamma, device=is_terminal.device)
    disc = predicted
    true_first = gamma * (1.0 - is_terminal.float())
    return torch.cat([true_first[None].to(disc.dtype), disc[1:]], 0)


def actor_objective(policy, action: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor,
                    mode: str, mix: float) -> torch.Tensor:
    """Per-state objective before the entropy bonus (spec §2.7), states k = 0..H−2.

    policy: the actor distribution on sg(feat_k); action: action[k+1], sampled in z_k;
    target: R_{k+1}; baseline: v_slow(feat_k).
    """
    if mode == "dynamics":
        return target
    advantage = (target - baseline).detach()
    if mode == "reinforce":
        return policy.log_prob(action.detach()) * advantage
    if mode == "both":  # the action is not stop-gradiented in this branch (official code)
        return mix * target + (1 - mix) * policy.log_prob(action) * advantage
    raise ValueError(f"unknown actor_grad '{mode}'")


def critic_loss(dist, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """−mean_k w_k·log N(sg(R_k); v(feat_k), 1) over states k = 0..H−1 (spec §2.5)."""
    return -(dist.log_prob(target.detach()) * weight).mean()


class ActorCritic(nn.Module):
    """Actor, critic and slow critic; `losses` runs one imagination and returns both losses."""

    def __init__(self, feat_dim: int, act_space: Mapping[str, Space], config: Config,
                 jit: bool = False):
        super().__init__()
        self.jit, self._step = jit, None  # torch.compile the imagination step (config `jit`)
        space = act_space["action"]
        self.discrete = space.discrete
        dist = config.actor.dist
        if dist == "auto":
            dist = "onehot" if self.discrete else "trunc_normal"
        actor = dict(layers=config.actor.layers, units=config.actor.units, act=config.actor.act,
                     norm=config.actor.norm, min_std=config.actor.min_std,
                     init_std=config.actor.init_std, trunc_grad=config.actor_trunc_grad)
        self.actor = Head(feat_dim, space.shape, dist=dist, **actor)
        critic = dict(layers=config.critic.layers, units=config.critic.units,
                      act=config.critic.act, norm=config.critic.norm, dist=config.critic.dist)
        self.critic = Head(feat_dim, (), **critic)
        self.slow_target = config.slow_target
        if config.slow_target:
            # Its own random init, like the official variables; the first copy follows update 1.
            self.target_critic = Head(feat_dim, (), **critic).requires_grad_(False)
        grad = config.actor_grad
        self.actor_grad = ("reinforce" if self.discrete else "dynamics") if grad == "auto" else grad
        self.horizon, self.lambda_, self.gamma = (config.imag_horizon, config.discount_lambda,
                                                  config.discount)
        self.update_every, self.fraction = config.slow_target_update, config.slow_target_fraction
        self.actor_ent = parse(config.actor_ent)
        self.actor_grad_mix = parse(config.actor_grad_mix)
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    def _act(self, feat: torch.Tensor) -> torch.Tensor:
        return self.actor(feat).sample()

    def value_net(self) -> Head:
        return self.target_critic if self.slow_target else self.critic

    def losses(self, wm, start: Mapping[str, torch.Tensor], is_terminal: torch.Tensor,
               step: int):
        """Imagine H steps from every (detached) posterior state; return actor/critic losses."""
        feat, action, reward, disc, needs_grad = self.rollout(wm, start, is_terminal)
        return self.loss_terms(feat, action, reward, disc, step, needs_grad)

    def rollout(self, wm, start: Mapping[str, torch.Tensor], is_terminal: torch.Tensor):
        """Imagined (feat, action, reward, disc, needs_grad) from the detached posteriors."""
        start = {k: v.detach().reshape((-1,) + v.shape[2:]) for k, v in start.items()}
        # Gradients through the rollout are needed only when the objective differentiates R.
        needs_grad = self.actor_grad in ("dynamics", "both")
        with torch.set_grad_enabled(needs_grad and torch.is_grad_enabled()):
            step = None
            if self.jit:  # compiled once per RSSM; the actor is a stable argument, not a closure
                if self._step is None or self._step[0] is not wm.rssm:
                    self._step = (wm.rssm, torch.compile(wm.rssm.imagine_step, dynamic=False))
                step = self._step[1]
            feat, action = wm.rssm.imagine(start, self._act, self.horizon, step)
            reward = wm.reward(feat)  # (H+1, N): the reward for arriving at z_k
            disc = imagined_discounts(wm.discount(feat), is_terminal.reshape(-1), self.gamma,
                                      reward.shape)
        return feat, action, reward, disc, needs_grad

    def loss_terms(self, feat: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                   disc: torch.Tensor, step: int, needs_grad: bool = False):
        """Actor and critic losses from an imagined trajectory (spec §2.3–§2.7).

        feat (H+1, N, F), action (H+1, N, A) with action[k] taken in z_{k-1}, reward and disc
        (H+1, N) with disc[0] already the true first discount.
        """
        with torch.set_grad_enabled(needs_grad and torch.is_grad_enabled()):
            weight = discount_weights(disc).detach()
            value = self.value_net()(feat).mode()  # slow critic, k = 0..H
            target = lambda_return(reward[:-1], value[:-1], disc[:-1], value[-1], self.lambda_)
        policy = self.actor(feat[:-2].detach())  # states 0..H-2
        mix = self.actor_grad_mix(step)
        objective = actor_objective(policy, action[1:-1], target[1:], value[:-2],
                                    self.actor_grad, mix)
        ent = policy.entropy()
        ent_scale = self.actor_ent(step)
        actor_loss = -(weight[:-2] * (objective + ent_scale * ent)).mean()
        dist = self.critic(feat[:-1].detach())  # states 0..H-1
        loss_critic = critic_loss(dist, target, weight[:-1])
        metrics = {
            "reward_mean": reward.mean(), "reward_std": reward.std(correction=0),  # population std
            "critic_slow": value.mean(), "critic_target": target.mean(),
            "critic": dist.mode().mean(), "actor_ent": ent.mean(),
            "actor_ent_scale": torch.tensor(ent_scale),
        }
        if self.actor_grad == "both":
            metrics["actor_grad_mix"] = torch.tensor(mix)
        return actor_loss, loss_critic, {k: v.detach() for k, v in metrics.items()}

    @torch.no_grad()
    def update_slow_target(self) -> None:
        """After every update: copy when updates % every == 0 (mix 1 at the first), then count."""
        if not self.slow_target:
            return
        # On the device, without reading the counter on the host (issue 11): mix is 0 between
        # copies, and lerp with weight 0 (1) returns d (s) exactly.
        mix = torch.where(self.updates % self.update_every == 0,
                          torch.where(self.updates == 0, 1.0, self.fraction), 0.0)
        for s, d in zip(self.critic.parameters(), self.target_critic.parameters()):
            d.lerp_(s, mix.to(d.dtype))
        self.updates += 1
