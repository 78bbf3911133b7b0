"""The agent: acting (`policy`), learning (`train`), video reports (`report`) and its state.

Spec §2.10 (acting), §3.2 item 5 (one update = world model, then actor and critic on the imagined
rollouts from that batch's posteriors); official `agent.py` Agent. Takes and returns numpy; all
torch (device, precision, autocast) stays behind this interface.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from .behavior import ActorCritic
from .config import Config
from .envs.base import Space
from .optim import Optimizer
from .world_model import WorldModel


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available")
    return torch.device(name)


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Agent:
    """Not an nn.Module (its `train` is an update, not a mode switch); `nets` holds the modules."""

    def __init__(self, obs_space: Mapping[str, Space], act_space: Mapping[str, Space],
                 config: Config):
        self.config = config
        self.act_space = act_space["action"]
        self.device = pick_device(config.device)
        self.bf16 = config.precision == 16 and bf16_supported(self.device)
        self.wm = WorldModel(obs_space, act_space, config)
        self.behavior = ActorCritic(self.wm.rssm.feat_dim, act_space, config)
        self.nets = nn.ModuleDict({"wm": self.wm, "behavior": self.behavior}).to(self.device)
        self.model_opt = Optimizer("model", self.wm.parameters(), config.model_opt)
        self.actor_opt = Optimizer("actor", self.behavior.actor.parameters(), config.actor_opt)
        self.critic_opt = Optimizer("critic", self.behavior.critic.parameters(), config.critic_opt)
        self.step = 0  # policy steps, set by the loop; drives the schedules
        self.video_keys = [k for k in config.log_keys_video if k in self.wm.image_keys]

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _tensors(self, data: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v, device=self.device) for k, v in data.items()
                if not k.startswith("log_") and v.dtype != object}

    @torch.no_grad()
    def policy(self, obs: Mapping[str, np.ndarray], state=None, mode: str = "train"):
        """Actions for a batch of N observations. `state` = (latent, previous action) or None."""
        data = self.wm.preprocess(self._tensors(obs))
        n = data["is_first"].shape[0]
        if state is None:
            state = (self.wm.rssm.initial(n, self.device),
                     torch.zeros(n, self.act_space.shape[0], device=self.device))
        latent, prev_action = state
        with self.autocast():
            embed = self.wm.encoder(data)
            sample = mode != "eval" or not self.config.eval_state_mean
            latent, _ = self.wm.rssm.obs_step(latent, prev_action, embed, data["is_first"],
                                              sample)
            dist = self.behavior.actor(self.wm.rssm.feat(latent))
        if mode == "eval":
            action, noise = dist.mode(), self.config.eval_noise
        else:
            action, noise = dist.sample(), self.config.expl_noise
        action = self._noise(action.float(), noise)
        return {"action": action.cpu().numpy()}, (latent, action)

    def _noise(self, action: torch.Tensor, amount: float) -> torch.Tensor:
        if not amount:
            return action
        if self.act_space.discrete:  # resample from ε/n + (1 − ε)·one-hot
            probs = amount / action.shape[-1] + (1 - amount) * action
            index = torch.multinomial(probs, 1)[:, 0]
            return nn.functional.one_hot(index, action.shape[-1]).float()
        return (action + amount * torch.randn_like(action)).clamp(-1, 1)

    def train(self, batch: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """One update: world model, then actor and critic, then the slow critic."""
        data = self.wm.preprocess(self._tensors(batch))
        with self.autocast():
            model_loss, post, metrics = self.wm.loss(data)
        metrics.update(self.model_opt.step(model_loss))
        with self.autocast():
            actor_loss, critic_loss, mets = self.behavior.losses(
                self.wm, post, data["is_terminal"], self.step)
        metrics.update(mets)
        metrics.update(self.actor_opt.step(actor_loss))
        metrics.update(self.critic_opt.step(critic_loss))
        self.behavior.update_slow_target()
        return metrics

    @torch.no_grad()
    def report(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Open-loop video predictions, uint8 [T, 3·H, 6·W, C] per video key."""
        data = self.wm.preprocess(self._tensors(batch))
        out = {}
        with self.autocast():
            for key in self.video_keys:
                video = self.wm.video_pred(data, key).float()
                out[f"openl_{key}"] = (video * 255).round().to(torch.uint8).cpu().numpy()
        return out

    def state_dict(self) -> dict:
        """Weights (incl. slow critic and its counter), optimiser states and the step counter."""
        return {"nets": self.nets.state_dict(), "model_opt": self.model_opt.state_dict(),
                "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.nets.load_state_dict(state["nets"])
        self.model_opt.load_state_dict(state["model_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.step = int(state["step"])
