"""The agent: acting (`policy`), learning (`train`), video reports (`report`) and its state.

Spec §2.10 (acting), §3.2 item 5 (one update = world model, then actor and critic on the imagined
rollouts from that batch's posteriors); official `agent.py` Agent. Takes and returns numpy; all
torch (device, precision, autocast) stays behind this interface.
"""

from __future__ import annotations

import copy
import ctypes
import sys
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from . import hardware
from .behavior import ActorCritic
from .config import Config
from .dists import OneHotDist, TruncNormalDist
from .envs.base import Space
from .nets import FastPaths
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
    return hardware.native_bf16()


# The `auto` value of each CPU fast path per CPU kind (hardware.cpu_kind), and where it comes from.
# `amx` (Sapphire Rapids), `avx512_bf16` (Zen 4) and `avx2` (Zen 3) were measured switch by switch
# (docs/performance.md, "One row per CPU kind"); `other` takes the same choices unmeasured, which
# the table says, and `bench_update.py --compare` measures them on any machine.
CPU_AUTO = {
    "amx": {"conv_matmul": True, "policy_fp32": True, "malloc_reuse": True,
            "source": "measured (Xeon, Sapphire Rapids: two hosts)"},
    # bf16 (the default here): each switch on was faster or, batched_grads, a tie; in fp32
    # conv_matmul was a tie in the steadiest run and up to 10 % slower in two noisier ones.
    "avx512_bf16": {"conv_matmul": True, "policy_fp32": True, "malloc_reuse": True,
                    "source": "measured (AMD EPYC, Zen 4)"},
    # No native bf16: precision 16 runs fp32 (emulated bf16 GEMMs ran at 0.27 GFLOP/s there, 400x
    # slower than fp32), so policy_fp32 changes nothing. Each other switch on was faster.
    "avx2": {"conv_matmul": True, "policy_fp32": True, "malloc_reuse": True,
             "source": "measured (AMD EPYC, Zen 3)"},
    "other": {"conv_matmul": True, "policy_fp32": True, "malloc_reuse": True,
              "source": "as amx; not measured"},
}


def fast_paths(config: Config, device: torch.device, kind: str | None = None) -> FastPaths:
    """Resolve the `auto` speed switches for `device` (and on a CPU its kind, `CPU_AUTO`)."""
    cpu = CPU_AUTO[kind or hardware.cpu_kind()] if device.type == "cpu" else None
    return FastPaths(conv_matmul=_switch(config.conv_matmul, bool(cpu and cpu["conv_matmul"])),
                     batched_grads=_switch(config.batched_grads, True), jit=config.jit,
                     policy_fp32=_switch(config.policy_fp32, bool(cpu and cpu["policy_fp32"])))


def _switch(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "on"


def compile_loops(rssm: nn.Module, device: torch.device) -> None:
    """Replace `rssm.observe` and `rssm.imagine` on this instance by compiled versions of the
    whole loops (config `compile_loops`). On CUDA `reduce-overhead` also captures them as CUDA
    graphs, which removes the per-op launch cost of the ~50 small ops of each step."""
    mode = "reduce-overhead" if device.type == "cuda" else None
    for name in ("observe", "imagine"):
        setattr(rssm, name, torch.compile(getattr(rssm, name), mode=mode, dynamic=False))


def reuse_freed_memory() -> bool:
    """Serve all allocations from glibc's heap and never trim it (process-wide mallopt).

    By default glibc maps every block above its mmap threshold (128 kB, adapting up to 32 MB)
    freshly and unmaps it on free, so each large tensor of every update page-faults its memory
    anew and the kernel zeroes each page: ~5% of a CPU update. The peak RSS stays the same; the
    heap keeps its high-water mark. Returns False where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(
            libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def draw(dist, generator: torch.Generator) -> torch.Tensor:
    """A sample of a one-hot or truncated-normal `dist` drawn from `generator`, by the inverse-CDF
    rules of `dist.sample()` (which draws from torch's global stream); for acting (no gradient)."""
    if isinstance(dist, OneHotDist):
        probs = dist.probs
        u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device,
                       dtype=probs.dtype)
        index = (probs.cumsum(-1) < u).sum(-1).clamp_(max=probs.shape[-1] - 1)
        return nn.functional.one_hot(index, probs.shape[-1]).to(probs.dtype)
    if isinstance(dist, TruncNormalDist):
        return dist.sample_from(torch.rand(dist.loc.shape, generator=generator,
                                           device=dist.loc.device))
    raise TypeError(f"acting on its own random stream (overlap) cannot sample a "
                    f"{type(dist).__name__} actor; use actor.dist onehot or trunc_normal")


class Agent:
    """Not an nn.Module (its `train` is an update, not a mode switch); `nets` holds the modules."""

    def __init__(self, obs_space: Mapping[str, Space], act_space: Mapping[str, Space],
                 config: Config):
        self.config = config
        self.act_space = act_space["action"]
        self.device = pick_device(config.device)
        self.bf16 = config.precision == 16 and bf16_supported(self.device)
        self.fast = fast_paths(config, self.device)
        cpu = self.device.type == "cpu"
        if _switch(config.malloc_reuse, cpu and CPU_AUTO[hardware.cpu_kind()]["malloc_reuse"]):
            reuse_freed_memory()
        self.wm = WorldModel(obs_space, act_space, config, self.fast)
        self.behavior = ActorCritic(self.wm.rssm.feat_dim, act_space, config, self.fast.jit)
        self.nets = nn.ModuleDict({"wm": self.wm, "behavior": self.behavior}).to(self.device)
        if _switch(config.compile_loops, False):
            compile_loops(self.wm.rssm, self.device)
        self.model_opt = Optimizer("model", self.wm.parameters(), config.model_opt)
        self.actor_opt = Optimizer("actor", self.behavior.actor.parameters(), config.actor_opt)
        self.critic_opt = Optimizer("critic", self.behavior.critic.parameters(), config.critic_opt)
        self.step = 0  # policy steps, set by the loop; drives the schedules
        self.video_keys = [k for k in config.log_keys_video if k in self.wm.image_keys]

    def autocast(self, acting: bool = False):
        """bf16 autocast for the update; for `policy` only without `policy_fp32`."""
        enabled = self.bf16 and not (acting and self.fast.policy_fp32)
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _tensors(self, data: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
        """numpy arrays copied to the device; tensors (e.g. prefetched batches) moved if needed."""
        out = {}
        for key, value in data.items():
            if key.startswith("log_"):
                continue
            if isinstance(value, torch.Tensor):
                out[key] = value.to(self.device, non_blocking=True)
            elif value.dtype != object:
                # ascontiguousarray: arrays from users' envs may be views with negative strides
                # (a flip), which torch cannot wrap; a no-op for the driver's stacked batches.
                out[key] = torch.as_tensor(np.ascontiguousarray(value), device=self.device)
        return out

    def acting_nets(self) -> dict[str, nn.Module]:
        """The live networks that act: encoder, RSSM and actor."""
        return {"encoder": self.wm.encoder, "rssm": self.wm.rssm, "actor": self.behavior.actor}

    def policy_snapshot(self) -> nn.ModuleDict:
        """A frozen copy of `acting_nets` for acting while the live ones train (issue 11,
        `overlap.py`); `refresh_snapshot` copies new weights into it."""
        rssm = self.wm.rssm
        # compile_loops sets compiled `observe`/`imagine` on the instance; acting needs neither.
        compiled = {k: rssm.__dict__.pop(k) for k in ("observe", "imagine") if k in rssm.__dict__}
        try:
            nets = copy.deepcopy(nn.ModuleDict(self.acting_nets()))
        finally:
            rssm.__dict__.update(compiled)
        return nets.requires_grad_(False)

    @torch.no_grad()
    def refresh_snapshot(self, nets: nn.ModuleDict) -> None:
        live = nn.ModuleDict(self.acting_nets())
        for mine, theirs in zip(nets.state_dict(keep_vars=True).values(),
                                live.state_dict(keep_vars=True).values()):
            mine.copy_(theirs)

    @torch.no_grad()
    def policy(self, obs: Mapping[str, np.ndarray], state=None, mode: str = "train",
               nets: Mapping[str, nn.Module] | None = None,
               generator: torch.Generator | None = None):
        """Actions for a batch of N observations. `state` = (latent, previous action) or None.

        `nets` (a `policy_snapshot`) act instead of the live networks, and `generator`, if given,
        draws every sample instead of torch's global stream (the overlap collector acts in its
        own thread on its own stream, so that the updates' draws do not depend on thread timing).
        """
        nets = self.acting_nets() if nets is None else nets
        rssm = nets["rssm"]
        data = self.wm.preprocess(self._tensors(obs))
        n = data["is_first"].shape[0]
        if state is None:
            state = (rssm.initial(n, self.device),
                     torch.zeros(n, self.act_space.shape[0], device=self.device))
        latent, prev_action = state
        with self.autocast(acting=True):
            embed = nets["encoder"](data)
            sample = mode != "eval" or not self.config.eval_state_mean
            latent, _ = rssm.obs_step(latent, prev_action, embed, data["is_first"],
                                      sample and generator is None)
            if sample and generator is not None:
                latent = {**latent, "stoch": draw(OneHotDist(latent["logit"], 1), generator)}
            dist = nets["actor"](rssm.feat(latent))
        if mode == "eval":
            action, noise = dist.mode(), self.config.eval_noise
        else:
            action = dist.sample() if generator is None else draw(dist, generator)
            noise = self.config.expl_noise
        action = self._noise(action.float(), noise, generator)
        return {"action": action.cpu().numpy()}, (latent, action)

    def _noise(self, action: torch.Tensor, amount: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
        if not amount:
            return action
        if self.act_space.discrete:  # resample from ε/n + (1 − ε)·one-hot
            probs = amount / action.shape[-1] + (1 - amount) * action
            index = torch.multinomial(probs, 1, generator=generator)[:, 0]
            return nn.functional.one_hot(index, action.shape[-1]).float()
        noise = (torch.randn_like(action) if generator is None else
                 torch.randn(action.shape, generator=generator, device=action.device))
        return (action + amount * noise).clamp(-1, 1)

    def train(self, batch: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """One update: world model, then actor and critic, then the slow critic."""
        data = self.wm.preprocess(self._tensors(batch))
        metrics, post = self.train_world_model(data)
        metrics.update(self.train_behavior(post, data["is_terminal"]))
        return metrics

    def train_world_model(self, data: Mapping[str, torch.Tensor]):
        """World-model loss and optimiser step on a preprocessed batch; returns the posteriors."""
        with self.autocast():
            model_loss, post, metrics = self.wm.loss(data)
        metrics.update(self.model_opt.step(model_loss))
        return metrics, post

    def train_behavior(self, post: Mapping[str, torch.Tensor], is_terminal: torch.Tensor,
                       rollout=None) -> dict[str, torch.Tensor]:
        """Actor and critic steps on imagined rollouts from `post` (or a given `rollout`)."""
        with self.autocast():
            feat, action, reward, disc, needs_grad = rollout or self.imagine(post, is_terminal)
            actor_loss, critic_loss, metrics = self.behavior.loss_terms(
                feat, action, reward, disc, self.step, needs_grad)
        metrics.update(self.actor_opt.step(actor_loss))
        metrics.update(self.critic_opt.step(critic_loss))
        self.behavior.update_slow_target()
        return metrics

    def imagine(self, post: Mapping[str, torch.Tensor], is_terminal: torch.Tensor):
        """The imagined rollout (feat, action, reward, discount, needs_grad) from `post`."""
        with self.autocast():
            return self.behavior.rollout(self.wm, post, is_terminal)

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
