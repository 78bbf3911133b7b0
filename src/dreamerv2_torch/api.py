"""Python API: `train(env_or_factory, config)` on environments the user built (spec §5.4).

Official counterpart: ``dreamerv2/api.py`` (``dv2.train(env, config)``), which wrapped one gym env
and ran no evaluation. Here the env goes through the same adapters and wrappers as a task string
(`envs.gym.from_gymnasium`: observation routing, one-hot or [-1, 1] actions, action repeat, time
limit) and then through the same training loop as the CLI (`training.train`): replay on disk,
checkpoints, resume, logs.

What may be passed, best first:

* a **factory** ``(seed, mode) -> env`` (or ``(seed) -> env`` or ``() -> env``), returning a
  ``gymnasium.Env`` or an env of this package's interface (`envs.base.Env`). Training envs are
  built with seeds ``config.seed + i``; a separate evaluation env with mode ``"eval"``. With
  ``envs > 1`` each env is built in its own worker process, so the factory must pickle (a
  module-level function or a ``functools.partial``; closures need cloudpickle installed).
* a single **env object**, used for training. One object cannot be copied into an evaluation env
  or worker processes, so ``envs`` must be 1 and evaluation needs ``eval_env=``; without it no
  evaluation episodes are run (``eval_eps`` is set to 0 and a note is printed) and the learning
  curve is the training return.

``config`` is a `Config` (e.g. from ``resolve(["dmc_proprio"])``) or None for the defaults;
``presets`` are applied on top of the defaults when no config is given; ``overrides`` are dotted
keys, written with ``__`` for the dot in Python (``model_opt__lr=3e-4``) or passed as
``**{"model_opt.lr": 3e-4}``. ``logdir`` is required. ``task`` only names the run; it defaults to
the env's Gymnasium id (``gym:<id>``) or its class (``api:<Class>``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from . import presets as presets_module
from .config import Config
from .envs.base import ActionRepeat, Env, NormalizeAction, TimeLimit

EnvLike = Any  # a gymnasium.Env or an env of this package's interface


def train(env_or_factory: EnvLike | Callable[..., EnvLike], config: Config | None = None, *,
          presets: Sequence[str] = (), eval_env: EnvLike | None = None, progress: bool = True,
          **overrides: Any) -> dict:
    """Train DreamerV2 on a user-built env (see the module docstring). Returns the final
    counters (``step``, ``frames``, ``stopped``) and the ``logdir``."""
    from .training import train as train_loop  # torch is imported only when training starts

    overrides = {key.replace("__", "."): value for key, value in overrides.items()}
    if config is not None and presets:
        raise ValueError("pass either a config or preset names, not both")
    # A class is a factory too (its instances may look like envs through class attributes).
    is_factory = isinstance(env_or_factory, type) or (
        callable(env_or_factory) and not _is_env(env_or_factory))
    if not is_factory and not _is_env(env_or_factory):
        raise TypeError(f"expected a gymnasium.Env, an env with obs_space/act_space, or a "
                        f"factory returning one; got {env_or_factory!r}")
    if "task" not in overrides:
        overrides["task"] = (_task_name(env_or_factory) if not is_factory else
                             f"api:{getattr(env_or_factory, '__name__', 'factory')}")
    if not is_factory and eval_env is None:
        overrides.setdefault("eval_eps", 0)
    base = config if config is not None else presets_module.resolve(presets)
    config = presets_module.apply(base, overrides)
    presets_module.validate(config)
    if not config.logdir:
        raise ValueError("train() needs a logdir, e.g. train(env, logdir='runs/my_run')")
    if is_factory:
        factory: Callable[[int, str], Env] = _Factory(env_or_factory, config)
        if eval_env is not None:
            factory = _WithEval(factory, wrap(eval_env, config, config.seed + 10_000))
    else:
        if config.envs > 1:
            raise ValueError(
                f"envs={config.envs} needs a factory (seed, mode) -> env: a single env object "
                "cannot be copied into worker processes")
        train_env = wrap(env_or_factory, config, config.seed)
        eval_wrapped = wrap(eval_env, config, config.seed + 10_000) if eval_env else None
        if eval_wrapped is None:
            print("No eval env given: evaluation episodes are skipped (pass eval_env= or a "
                  "factory to evaluate).", flush=True)
        factory = _Fixed(train_env, eval_wrapped)
    result = train_loop(config, factory, progress=progress)
    return {**result, "logdir": config.logdir}


def wrap(env: EnvLike, config: Config, seed: int) -> Env:
    """The wrappers `make_env` applies, for a gymnasium env or an env of our interface."""
    if _is_gymnasium(env):
        from .envs.gym import from_gymnasium

        return from_gymnasium(env, seed=seed, size=tuple(config.render_size),
                              action_repeat=config.action_repeat, time_limit=config.time_limit)
    if not _is_ours(env):
        raise TypeError(f"{env!r} is neither a gymnasium.Env nor an env with obs_space, "
                        "act_space, reset and step (dreamerv2_torch.envs.base.Env)")
    if config.action_repeat > 1:
        env = ActionRepeat(env, config.action_repeat)
    if not env.act_space["action"].discrete:
        env = NormalizeAction(env)
    return TimeLimit(env, config.time_limit)


class _Factory:
    """A user factory of any supported arity, with our wrappers applied (picklable if it is)."""

    def __init__(self, make: Callable[..., EnvLike], config: Config):
        self.make, self.config = make, config
        try:
            params = inspect.signature(make).parameters.values()
            self.nargs = sum(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                             p.POSITIONAL_OR_KEYWORD) for p in params)
        except (TypeError, ValueError):  # builtins without a signature: assume (seed, mode)
            self.nargs = 2

    def __call__(self, seed: int, mode: str) -> Env:
        args = (seed, mode)[: min(self.nargs, 2)]
        return wrap(self.make(*args), self.config, seed)


class _WithEval:
    def __init__(self, factory: Callable[[int, str], Env], eval_env: Env):
        self.factory, self.eval_env = factory, eval_env

    def __call__(self, seed: int, mode: str) -> Env:
        return self.eval_env if mode == "eval" else self.factory(seed, mode)


class _Fixed:
    """Hands out the one training env (and the optional eval env) the user passed."""

    def __init__(self, train_env: Env, eval_env: Env | None):
        self.train_env, self.eval_env = train_env, eval_env

    def __call__(self, seed: int, mode: str) -> Env:
        env = self.train_env if mode == "train" else self.eval_env
        if env is None:
            # training.train builds no eval env with eval_eps 0
            raise RuntimeError("no eval env was given")
        return env


def _is_gymnasium(env: Any) -> bool:
    try:
        import gymnasium
    except ImportError:
        return False
    return isinstance(env, gymnasium.Env)


def _is_ours(env: Any) -> bool:
    return all(hasattr(env, name) for name in ("obs_space", "act_space", "reset", "step"))


def _is_env(obj: Any) -> bool:
    return _is_gymnasium(obj) or _is_ours(obj)


def _task_name(env: EnvLike) -> str:
    spec = getattr(env, "spec", None)
    if _is_gymnasium(env) and getattr(spec, "id", None):
        return f"gym:{spec.id}"
    return f"api:{type(getattr(env, 'unwrapped', env)).__name__}"
