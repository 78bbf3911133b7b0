"""Support for tests/test_parity.py: load the official goldens (tools/parity/make_goldens.py), map
the official variables onto our modules, replay the official sampler draws, compare.

No TensorFlow here: the goldens are plain .npz files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from dreamerv2_torch import dists, presets
from dreamerv2_torch.agent import Agent
from dreamerv2_torch.config import flatten
from dreamerv2_torch.envs.base import Space

GOLDEN = Path(__file__).parent / "parity"
# Official keys that name the run, not the maths of an update; ours are set for a CPU test.
NOT_COMPARED = {"logdir", "task", "steps", "device", "precision", "jit", "threads", "envs",
                "render_size", "dmc_camera", "atari_grayscale", "time_limit", "action_repeat",
                "log_every", "eval_every", "eval_eps", "prefill", "pretrain", "train_every",
                "train_steps", "seed", "log_keys_video", "replay.capacity", "replay.minlen",
                "replay.maxlen", "replay.prioritize_ends", "dataset.batch", "dataset.length",
                "expl_noise", "eval_noise", "eval_state_mean"}


class Golden:
    """One golden file: `meta` (official config, versions, variable names) and its arrays."""

    def __init__(self, name: str):
        with np.load(GOLDEN / f"{name}.npz") as data:
            self.arrays = {k: data[k] for k in data.files}
        self.meta = json.loads(str(self.arrays.pop("meta")))
        self.name = name

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def config_overrides(self) -> dict:
        """Every official config value whose key our Config has (same names)."""
        ours = flatten(presets.resolve())
        return {k: v for k, v in self.meta["config"].items()
                if k in ours and k not in NOT_COMPARED}

    def spaces(self):
        obs = {"reward": Space((), np.float32), "is_first": Space((), bool),
               "is_last": Space((), bool), "is_terminal": Space((), bool)}
        batch = {k[len("u0/batch/"):]: v for k, v in self.arrays.items()
                 if k.startswith("u0/batch/")}
        for key in ("image", "position", "velocity"):
            if key in batch:
                obs[key] = Space(batch[key].shape[2:], batch[key].dtype)
        actions = batch["action"].shape[-1]
        discrete = self.meta["kind"] == "image"
        act = Space((actions,), np.float32, low=0 if discrete else -1, high=1, discrete=discrete)
        return obs, {"action": act}

    def agent(self, **overrides) -> Agent:
        """Our agent with the official config (fp32 CPU) and the official initial weights."""
        config = presets.resolve([], {**self.config_overrides(), "device": "cpu",
                                      "precision": 32, **overrides})
        obs, act = self.spaces()
        agent = Agent(obs, act, config)
        load_official(agent, {k[3:]: v for k, v in self.arrays.items() if k.startswith("w0/")})
        agent.step = int(self.meta["step"])
        return agent


def _dense(prefix: str, layer) -> dict:
    out = {f"{prefix}/kernel": (layer.weight, "dense")}
    if layer.bias is not None:
        out[f"{prefix}/bias"] = (layer.bias, "vec")
    return out


def _norm(prefix: str, norm) -> dict:
    if isinstance(norm, torch.nn.Identity):
        return {}
    norm = getattr(norm, "norm", norm)  # ChannelNorm wraps a LayerNorm
    return {f"{prefix}/gamma": (norm.weight, "vec"), f"{prefix}/beta": (norm.bias, "vec")}


def _mlp(prefix: str, mlp, dense: str = "dense", norm: str = "norm") -> dict:
    out = {}
    for i in range(len(mlp.net) // 3):
        out.update(_dense(f"{prefix}/{dense}{i}", mlp.net[3 * i]))
        out.update(_norm(f"{prefix}/{norm}{i}", mlp.net[3 * i + 1]))
    return out


def _head(prefix: str, head) -> dict:
    out = _mlp(prefix, head.trunk)
    out.update(_dense(f"{prefix}/out/out", head.dist.out))
    if hasattr(head.dist, "std"):
        out.update(_dense(f"{prefix}/out/std", head.dist.std))
    return out


def official_names(agent: Agent) -> dict[str, tuple[torch.nn.Parameter, str]]:
    """Official variable path → (our parameter, layout). Layouts: dense (in, out) → (out, in);
    conv (kh, kw, in, out) → (out, in, kh, kw); convT (kh, kw, out, in) → (in, out, kh, kw)."""
    wm, ac = agent.wm, agent.behavior
    out: dict = {}
    enc = wm.encoder
    if enc.cnn_keys:
        for i in range(len(enc.cnn) // 3):
            out[f"wm/encoder/conv{i}/kernel"] = (enc.cnn[3 * i].weight, "conv")
            out[f"wm/encoder/conv{i}/bias"] = (enc.cnn[3 * i].bias, "vec")
            out.update(_norm(f"wm/encoder/convnorm{i}", enc.cnn[3 * i + 1]))
    if enc.mlp_keys:
        out.update(_mlp("wm/encoder", enc.mlp, "dense", "densenorm"))
    r = wm.rssm
    out.update(_dense("wm/rssm/cell", r.gru.layer))
    out.update(_norm("wm/rssm/cell_norm", r.gru.norm))
    out.update(_dense("wm/rssm/img_in", r.img_in[0]))
    out.update(_norm("wm/rssm/img_in_norm", r.img_in[1]))
    out.update(_dense("wm/rssm/img_out_0", r.img_out[0]))
    out.update(_norm("wm/rssm/img_out_norm_0", r.img_out[1]))
    out.update(_dense("wm/rssm/img_dist_0", r.img_dist))
    out.update(_dense("wm/rssm/obs_out", r.obs_out))
    out.update(_norm("wm/rssm/obs_out_norm", r.obs_norm))
    out.update(_dense("wm/rssm/obs_dist", r.obs_dist))
    dec = wm.heads["decoder"]
    if dec.cnn_keys:
        out.update(_dense("wm/heads/decoder/convin", dec.convin))
        convs = [m for m in dec.cnn if hasattr(m, "weight") and m.weight.dim() == 4]
        for i, conv in enumerate(convs):
            out[f"wm/heads/decoder/conv{i}/kernel"] = (conv.weight, "convT")
            out[f"wm/heads/decoder/conv{i}/bias"] = (conv.bias, "vec")
            if i < len(convs) - 1:
                index = list(dec.cnn).index(conv)
                out.update(_norm(f"wm/heads/decoder/convnorm{i}", dec.cnn[index + 1]))
    if dec.mlp_keys:
        out.update(_mlp("wm/heads/decoder", dec.mlp, "dense", "densenorm"))
        for key, head in dec.mlp_out.items():
            out.update(_dense(f"wm/heads/decoder/dense_{key}/out", head.out))
    for name in ("reward", "discount"):
        if name in wm.heads:
            out.update(_head(f"wm/heads/{name}", wm.heads[name]))
    out.update(_head("ac/actor", ac.actor))
    out.update(_head("ac/critic", ac.critic))
    out.update(_head("ac/target_critic", ac.target_critic))
    return out


def to_ours(value: np.ndarray, layout: str) -> torch.Tensor:
    value = torch.as_tensor(np.asarray(value, np.float32))
    if layout == "dense":
        return value.t()
    if layout in ("conv", "convT"):
        return value.permute(3, 2, 0, 1)
    return value


def load_official(agent: Agent, weights: Mapping[str, np.ndarray]) -> None:
    """Copy official variables into our parameters; every one of ours and theirs is mapped."""
    names = official_names(agent)
    ours = {id(p) for p in agent.nets.parameters()}
    mapped = {id(p) for p, _ in names.values()}
    assert ours == mapped, f"{len(ours - mapped)} of our parameters have no official name"
    assert set(names) == set(weights), (
        f"official without ours: {sorted(set(weights) - set(names))}; "
        f"ours without official: {sorted(set(names) - set(weights))}")
    with torch.no_grad():
        for name, (param, layout) in names.items():
            value = to_ours(weights[name], layout)
            assert value.shape == param.shape, f"{name}: {tuple(value.shape)} vs {param.shape}"
            param.copy_(value)


def _official_layout(value: torch.Tensor, layout: str) -> np.ndarray:
    if layout == "dense":
        value = value.t()
    elif layout in ("conv", "convT"):
        value = value.permute(2, 3, 1, 0)
    return value.double().numpy()


def our_weights(agent: Agent) -> dict[str, np.ndarray]:
    """Our parameters in the official layouts, by official name."""
    return {name: _official_layout(param.detach(), layout)
            for name, (param, layout) in official_names(agent).items()}


def our_grads(agent: Agent, names: list[str]) -> dict[str, np.ndarray]:
    out = {}
    table = official_names(agent)
    for name in names:
        param, layout = table[name]
        grad = param.grad
        value = torch.zeros_like(param) if grad is None else grad.detach()
        out[name] = _official_layout(value, layout)
    return out


class Draws:
    """Replays the official draws through `dists.injected_samples`: latents (posterior per
    observe step, then prior per imagination step) and actions, in call order."""

    def __init__(self, golden: Golden, update: int):
        post = golden[f"u{update}/draw/post"]  # (B, T, S, K)
        self.post = [torch.as_tensor(post[:, t]) for t in range(post.shape[1])]
        self.prior = [torch.as_tensor(v) for v in golden[f"u{update}/draw/prior"]]
        self.action = [torch.as_tensor(v) for v in golden[f"u{update}/draw/action"]]
        self.reset()

    def reset(self, observe: bool = True) -> None:
        self.latents = (list(self.post) if observe else []) + list(self.prior)
        self.actions = list(self.action)

    def __call__(self, dist) -> torch.Tensor:
        latent = isinstance(dist, dists.OneHotDist) and dist.event_dims == 1
        queue = self.latents if latent else self.actions
        assert queue, "more draws than the official code made"
        value = queue.pop(0)
        want = dist.logits.shape if isinstance(dist, dists.OneHotDist) else dist.loc.shape
        assert value.shape == want, f"draw shape {tuple(value.shape)} vs {tuple(want)}"
        return value


def rel(ours, theirs) -> float:
    """max |ours − theirs| / max |theirs| (values; 0 when both are 0)."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = np.abs(theirs).max() if theirs.size else 0.0
    diff = np.abs(ours - theirs).max() if theirs.size else 0.0
    return float(diff / scale) if scale else float(diff)


def rel_l2(ours, theirs) -> float:
    """‖ours − theirs‖ / ‖theirs‖ (gradients and optimiser deltas)."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    norm = np.linalg.norm(theirs)
    diff = np.linalg.norm(ours - theirs)
    return float(diff / norm) if norm else float(diff)


def rel_l2_beyond_ulp(ours, theirs, new) -> float:
    """Relative L2 of a weight change beyond one float32 ulp of the new weight `new`: both sides
    store the new weight in float32, so a change is only defined up to one rounding of it (one
    ulp of |w| ~ 0.3 is ~1e-4 of a 2e-4 Adam step)."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    ulp = np.spacing(np.abs(np.asarray(new)).astype(np.float32)).astype(np.float64)
    excess = np.linalg.norm(np.maximum(np.abs(ours - theirs) - ulp, 0.0))
    norm = np.linalg.norm(theirs)
    return float(excess / norm) if norm else float(excess)
