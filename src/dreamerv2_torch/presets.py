"""Presets as ordered deltas over `Config` defaults, dotted overrides, validation, YAML round trip.

Spec §6 (official `configs.yaml`). `atari`, `crafter`, `dmc_vision`, `dmc_proprio` carry the
official values (with the paper's choices where spec §10 recommends them); `debug`, `small` and
`minatar` are ours and documented in docs/parity.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .config import Config, flatten, to_dict

_IMAGE_ONLY = {
    "encoder.mlp_keys": "$^", "encoder.cnn_keys": "image",
    "decoder.mlp_keys": "$^", "decoder.cnn_keys": "image",
}
_LAYER_NORM = {f"{k}.norm": "layer" for k in (
    "rssm", "encoder", "decoder", "reward_head", "discount_head", "actor", "critic")}

PRESETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    # The paper's Atari setup (spec §6, §10): B=50, all 18 actions, γ=0.999, one update per 16
    # policy steps, evaluation every 1e5 frames as in the code that produced the released curves.
    "atari": {
        "task": "atari_pong", "time_limit": 27000, "action_repeat": 4, "steps": 5e7,
        "log_every": 1e4, "eval_every": 2.5e4, "prefill": 50000, "train_every": 16,
        "clip_rewards": "tanh", "rssm.hidden": 600, "rssm.deter": 600, **_IMAGE_ONLY,
        "model_opt.lr": 2e-4, "actor_opt.lr": 4e-5, "critic_opt.lr": 1e-4, "actor_ent": 1e-3,
        "discount": 0.999, "loss_scales.kl": 0.1, "loss_scales.discount": 5.0,
        "dataset.batch": 50, "atari_all_actions": True,
    },
    "crafter": {
        "task": "crafter_reward", **_IMAGE_ONLY, **_LAYER_NORM,
        "model_opt.lr": 1e-4, "actor_opt.lr": 1e-4, "critic_opt.lr": 1e-4, "actor_ent": 3e-3,
        "discount": 0.999,
    },
    "dmc_vision": {
        "task": "dmc_walker_walk", "action_repeat": 2, "eval_every": 1e4, "prefill": 1000,
        "pretrain": 100, "clip_rewards": "identity", "replay.prioritize_ends": False,
        "grad_heads": ("decoder", "reward"), "pred_discount": False,
        "rssm.hidden": 200, "rssm.deter": 200, **_IMAGE_ONLY, "kl.free": 1.0,
        "model_opt.lr": 3e-4, "actor_opt.lr": 8e-5, "critic_opt.lr": 8e-5, "actor_ent": 1e-4,
    },
    "dmc_proprio": {
        "task": "dmc_walker_walk", "action_repeat": 2, "eval_every": 1e4, "prefill": 1000,
        "pretrain": 100, "clip_rewards": "identity", "replay.prioritize_ends": False,
        "grad_heads": ("decoder", "reward"), "pred_discount": False,
        "rssm.hidden": 200, "rssm.deter": 200, "encoder.mlp_keys": ".*", "encoder.cnn_keys": "$^",
        "decoder.mlp_keys": ".*", "decoder.cnn_keys": "$^", "kl.free": 1.0,
        "model_opt.lr": 3e-4, "actor_opt.lr": 8e-5, "critic_opt.lr": 8e-5, "actor_ent": 1e-4,
    },
    # Ours: a model small enough to learn Atari on a laptop CPU in hours (docs/parity.md).
    "small": {
        "dataset.batch": 16, "rssm.hidden": 256, "rssm.deter": 256,
        "encoder.cnn_depth": 24, "decoder.cnn_depth": 24,
        "encoder.mlp_layers": (256, 256), "decoder.mlp_layers": (256, 256),
        **{f"{k}.{f}": v for k in ("reward_head", "discount_head", "actor", "critic")
           for f, v in (("layers", 2), ("units", 256))},
        "replay.capacity": 5e5, "prefill": 5000,
    },
    # Ours: MinAtar (10x10xC binary images, no official config; choices in docs/parity.md).
    # Encoder 10→4→1 with kernels (3, 3), decoder 1→4→10 with (4, 4); a smaller RSSM and heads;
    # Atari's loss scales, the default γ 0.99; minlen 1 because random MinAtar episodes are short
    # (Breakout ≈ 9 steps) and shorter ones would be dropped; chunks then span episodes.
    # MinAtar is cheap to step, so the budget is the update: one per 16 steps (replay ratio 50).
    "minatar": {
        "task": "minatar_breakout", "action_repeat": 1, "time_limit": 10000, "steps": 1e6,
        "log_every": 2500, "eval_every": 1e4, "eval_eps": 3, "prefill": 5000, "pretrain": 1,
        "train_every": 16, "clip_rewards": "tanh", **_IMAGE_ONLY,
        "encoder.cnn_depth": 32, "encoder.cnn_kernels": (3, 3),
        "decoder.cnn_depth": 32, "decoder.cnn_kernels": (4, 4),
        "rssm.hidden": 256, "rssm.deter": 256, "rssm.stoch": 16, "rssm.discrete": 16,
        **{f"{k}.{f}": v for k in ("reward_head", "discount_head", "actor", "critic")
           for f, v in (("layers", 2), ("units", 256))},
        "replay.capacity": 1e6, "replay.minlen": 1, "dataset.batch": 16,
        # Atari's actor lr and Crafter's entropy: with 1e-4 / 1e-3 the policy entropy of Breakout's
        # 3 actions fell from 1.06 to 0.35 nats within ~75 updates, before the model knew much.
        "model_opt.lr": 3e-4, "actor_opt.lr": 4e-5, "critic_opt.lr": 1e-4,
        "actor_ent": 3e-3, "discount": 0.99, "loss_scales.kl": 0.1, "loss_scales.discount": 5.0,
    },
    # Ours: a tiny model and short schedule for tests (the official debug keeps the full model).
    # issue 8: `steps` so that a debug run ends in seconds (it ran for ever with the default 1e8).
    "debug": {
        "steps": 500, "time_limit": 100, "eval_every": 300, "log_every": 300, "prefill": 100,
        "pretrain": 1,
        "train_steps": 1, "replay.minlen": 10, "replay.maxlen": 30, "dataset.batch": 10,
        "dataset.length": 10, "rssm.hidden": 32, "rssm.deter": 32, "rssm.stoch": 4,
        "rssm.discrete": 4, "encoder.cnn_depth": 4, "decoder.cnn_depth": 4,
        "encoder.mlp_layers": (32, 32), "decoder.mlp_layers": (32, 32), "imag_horizon": 5,
        **{f"{k}.{f}": v for k in ("reward_head", "discount_head", "actor", "critic")
           for f, v in (("layers", 2), ("units", 32))},
        "replay.capacity": 1e5,
    },
}

# issue 8: one line of purpose per preset (`dreamerv2-torch presets`, `train --help`).
PURPOSES: dict[str, str] = {
    "defaults": "the official configs.yaml defaults (what every other preset changes)",
    "atari": "the paper's Atari runs (2e8 frames; a GPU workload: weeks on a CPU)",
    "crafter": "Crafter: layer norm everywhere, logs achievements and the Crafter score",
    "dmc_vision": "DeepMind Control from 64x64 pixels",
    "dmc_proprio": "DeepMind Control from proprioceptive vectors (fast on a CPU)",
    "small": "ours: a smaller model for Atari on a CPU (add after atari: --preset atari small)",
    "minatar": "ours: MinAtar 10x10 games, learns on a CPU in hours",
    "debug": "ours: a tiny model and 500 steps, finishes in seconds (smoke tests)",
}

# Fields that may change when a run is resumed; any other difference is an incompatible config.
RESUMABLE = {"logdir", "steps", "log_every", "eval_every", "eval_eps", "log_keys_video", "device",
             "precision", "jit", "threads", "malloc_reuse", "conv_matmul", "batched_grads",
             "policy_fp32", "prefetch", "compile_loops",  # issue 11: the last two
             "tensorboard_videos", "wandb",  # issue 8: the last two
             "checkpoint_every", "nonfinite", "skip_limit",  # issue 9
             "overlap"}  # issue 11


class ConfigError(ValueError):
    """A bad preset, key, value or an incompatible run directory."""


def _field_types() -> dict[str, Any]:
    out = {}

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], prefix + f.name + ".")
            else:
                out[prefix + f.name] = hints[f.name]

    walk(Config, "")
    return out


FIELD_TYPES = _field_types()


def _unknown(key: str, choices: Sequence[str], what: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(choices), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown {what} '{key}'{hint}")


def coerce(key: str, value: Any) -> Any:
    """Convert `value` to the declared type of field `key`, or raise a ConfigError naming both."""
    if key not in FIELD_TYPES:
        raise _unknown(key, list(FIELD_TYPES), "config key")
    kind = FIELD_TYPES[key]
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    bad = ConfigError(f"config key '{key}' expects {kind}, got {value!r}")
    if origin is typing.Literal:
        for choice in args:
            if value == choice or str(value) == str(choice):
                return choice
        raise ConfigError(f"config key '{key}' must be one of {list(args)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):  # float | str: numbers stay numbers
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\s]+", value.strip("()[] ")) if v]
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(_scalar(key, args[0], v) for v in value)
    return _scalar(key, kind, value)


def _scalar(key: str, kind: Any, value: Any) -> Any:
    name = getattr(kind, "__name__", kind)
    bad = ConfigError(f"config key '{key}' expects {name}, got {value!r}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise bad
    if kind is int:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(number) or number != int(number) or isinstance(value, bool):
            raise bad
        return int(number)
    if kind is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad from None
    if kind is str:
        return str(value)
    raise bad


def apply(config: Config, overrides: Mapping[str, Any]) -> Config:
    """A new Config with dotted-key overrides applied (typed; unknown keys are errors)."""
    config = dataclasses.replace(config)  # shallow copy of the top level
    for key, value in overrides.items():
        value = coerce(key, value)
        *path, name = key.split(".")
        target = config
        for part in path:
            child = dataclasses.replace(getattr(target, part))
            setattr(target, part, child)
            target = child
        setattr(target, name, value)
    return config


def resolve(presets: Sequence[str] = (), overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults, then each preset in order, then the overrides; validated."""
    config = Config()
    for name in presets:
        if name not in PRESETS:
            raise _unknown(name, list(PRESETS), "preset")
        config = apply(config, PRESETS[name])
    config = apply(config, overrides or {})
    validate(config)
    return config


# issue 9: the valid range of every numeric field ("[a, b]" inclusive, ">= a", "> a" or "finite"),
# checked before anything else so that every refused value is one line naming its key, before the
# logdir is touched. Tuple fields are checked element by element. A test checks that every int and
# float field has a rule here.
_HEADS = ("reward_head", "discount_head", "actor", "critic")
RANGES: dict[str, str] = {
    "seed": f"[0, {2**62}]", "threads": ">= 0", "envs": ">= 1", "render_size": ">= 1",
    "dmc_camera": ">= -1", "time_limit": ">= 0", "action_repeat": ">= 1", "steps": ">= 1",
    "log_every": ">= 1", "eval_every": ">= 1", "eval_eps": ">= 0", "prefill": ">= 0",
    "pretrain": ">= 0", "train_every": ">= 1", "train_steps": ">= 0",
    "checkpoint_every": ">= 0", "skip_limit": "[0, 1]",
    "replay.capacity": ">= 1", "replay.minlen": ">= 1", "replay.maxlen": ">= 1",
    "dataset.batch": ">= 1", "dataset.length": ">= 2",
    "rssm.hidden": ">= 1", "rssm.deter": ">= 1", "rssm.stoch": ">= 1", "rssm.discrete": ">= 1",
    "rssm.ensemble": "[1, 1]",
    **{f"{part}.{key}": ">= 1" for part in ("encoder", "decoder")
       for key in ("cnn_depth", "cnn_kernels", "mlp_layers")},
    **{f"{head}.{key}": rule for head in _HEADS for key, rule in (
        ("layers", ">= 0"), ("units", ">= 1"), ("min_std", ">= 0"), ("init_std", "finite"))},
    **{f"loss_scales.{key}": ">= 0" for key in ("kl", "reward", "discount", "image", "proprio")},
    "kl.free": ">= 0", "kl.balance": "[0, 1]",
    **{f"{opt}.{key}": rule for opt in ("model_opt", "actor_opt", "critic_opt")
       for key, rule in (("lr", ">= 0"), ("eps", "> 0"), ("clip", ">= 0"), ("wd", "[0, 1]"))},
    "discount": "[0, 1]", "discount_lambda": "[0, 1]", "imag_horizon": ">= 2",
    "actor_grad_mix": "[0, 1]", "actor_ent": ">= 0", "slow_target_update": ">= 1",
    "slow_target_fraction": "[0, 1]", "expl_noise": ">= 0", "eval_noise": ">= 0",
}

_HINTS = {"rssm.ensemble": "only 1 prior head is supported",
          "rssm.discrete": "Gaussian latents (0) are not supported",
          "eval_every": "use --eval_eps 0 for no evaluation"}


def _in_range(value: float, rule: str) -> bool:
    if not math.isfinite(value):
        return False
    if rule == "finite":
        return True
    if rule.startswith("["):
        low, high = (float(x) for x in rule.strip("[]").split(","))
        return low <= value <= high
    op, bound = rule.split()
    return value >= float(bound) if op == ">=" else value > float(bound)


def check_ranges(config: Config) -> None:
    """A ConfigError naming the first field whose value is outside `RANGES`."""
    values = flatten(config)
    for key, rule in RANGES.items():
        value = values[key]
        if isinstance(value, str):  # a schedule string (actor_ent, actor_grad_mix): parsed later
            continue
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, bool) or not _in_range(float(item), rule):
                hint = f"; {_HINTS[key]}" if key in _HINTS else ""
                bound = f"in {rule}" if rule.startswith("[") else rule
                raise ConfigError(f"{key} must be {bound}, got {value!r}{hint}")


def validate(config: Config) -> None:
    """Reject values the agent cannot run with, naming the field (ranges first, then the
    combinations)."""
    from .schedules import parse  # local: schedules has no config dependency

    check_ranges(config)
    checks = [
        (config.replay.minlen <= config.replay.maxlen, "replay.minlen must be <= replay.maxlen"),
        (not config.time_limit or config.replay.minlen <= config.time_limit,
         f"replay.minlen ({config.replay.minlen}) must be <= time_limit ({config.time_limit}): "
         "shorter episodes are never stored"),
        (set(config.grad_heads) <= {"decoder", "reward", "discount"},
         "grad_heads: only decoder, reward, discount"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for key in ("actor_ent", "actor_grad_mix"):
        try:
            parse(getattr(config, key))
        except ValueError as error:
            raise ConfigError(f"{key}: {error}") from None


def save(config: Config, path: Path) -> None:
    """Write the resolved config as YAML (atomic)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    tmp.replace(path)


def load(path: Path) -> Config:
    """Read a config.yaml written by `save`."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a config")
    return from_tree(data)


def from_tree(tree: Mapping[str, Any]) -> Config:
    """A Config from the nested dict that `config.to_dict` made (e.g. a checkpoint's copy)."""
    flat: dict[str, Any] = {}

    def walk(d, prefix):
        for key, value in d.items():
            if isinstance(value, dict):
                walk(value, prefix + key + ".")
            else:
                flat[prefix + key] = value

    walk(tree, "")
    return apply(Config(), flat)


def differences(old: Config, new: Config, ignore: set[str] = RESUMABLE) -> list[str]:
    """Human-readable lines for every field that differs, except the `ignore`d ones."""
    a, b = flatten(old), flatten(new)
    return [f"{k}: saved {a[k]!r}, given {b[k]!r}" for k in a if k not in ignore and a[k] != b[k]]
