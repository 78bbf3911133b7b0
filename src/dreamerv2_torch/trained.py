"""A trained agent from a run directory: `load(logdir)` → `TrainedAgent.act(obs, state)`.

Issue 8 (spec §3.3: the evaluation policy). `load` rebuilds the agent from the run's config.yaml
and its latest (or a named) checkpoint, and builds one env to learn the observation and action
spaces: the run's own task env, or the `env` passed (a gymnasium env, an env of this package, or a
factory, as `api.train` takes them; required for runs trained through the Python API on an env of
the user's code, whose task name is `api:<name>`).

`act(obs, state=None, mode="eval")` takes one observation as the env hands it out:

* for a Gymnasium env (a `gym:<id>` task or a gymnasium env given to `load`): the raw gymnasium
  observation (array or dict), converted as in training (`envs.gym`); the action comes back in the
  env's own format (an int for `Discrete`, an array within the `Box` bounds);
* for the package's own suites (Atari, DMC, Crafter, MinAtar, dummy): the observation dict of
  `agent.make_env()` (our preprocessing: frame skip, max-pool, resize, ...); the action comes back
  as that env's action (one-hot for discrete, [-1, 1] for continuous).

`state=None` starts an episode (the `is_first` flag); pass back the returned state on every
following step. `mode="eval"` is the mode policy the evaluation episodes use; "train" samples.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .envs.base import Env


def _unwrap(env: Any) -> Any:
    """The innermost env of our wrapper chain (wrappers keep theirs in `.env`)."""
    while hasattr(env, "env") and not hasattr(env, "_routes"):
        env = env.env
    return env


class TrainedAgent:
    """A loaded agent: `act` one observation at a time (see the module docstring)."""

    def __init__(self, agent, config: Config, env: Env, step: int, checkpoint: Path):
        self.agent, self.config, self.step, self.checkpoint = agent, config, step, checkpoint
        self.frames = step * config.action_repeat
        self._env = env
        inner = _unwrap(env)
        self._gym = inner if hasattr(inner, "_routes") else None  # an envs.gym.Gymnasium
        self.obs_space, self.act_space = env.obs_space, env.act_space

    def make_env(self) -> Env:
        """The env the agent was loaded with (the run's task env, or the one given to `load`)."""
        return self._env

    def act(self, obs: Any, state: Any = None, mode: str = "eval") -> tuple[Any, Any]:
        """(action, state) for one observation; `state=None` at the first step of an episode."""
        if mode not in ("eval", "train"):
            raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
        # Our env's observations carry the flags; anything else is a raw gymnasium observation.
        raw = not (isinstance(obs, dict) and "is_first" in obs)
        if raw and self._gym is None:
            raise TypeError(f"expected the observation dict of agent.make_env() (task "
                            f"{self.config.task}), got {type(obs).__name__}")
        ours = self._gym._observe(obs) if raw else obs
        keys = [k for k in self.obs_space
                if k not in ("reward", "is_first", "is_last", "is_terminal")]
        missing = [k for k in keys if k not in ours]
        if missing:
            raise ValueError(f"observation lacks {missing}; the agent was trained on {keys}")
        batch = {k: np.asarray(ours[k])[None] for k in keys}
        batch["is_first"] = np.array([state is None])
        action, state = self.agent.policy(batch, state, mode)
        action = action["action"][0]
        return (self._gym_action(action) if raw else action), state

    def _gym_action(self, action: np.ndarray) -> Any:
        """Our action (one-hot, or [-1, 1]) in the gymnasium env's own format."""
        gym = self._gym
        if gym._action_kind == "discrete":
            return int(np.argmax(action)) + gym._start
        space = gym._action_space
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        value = (np.asarray(action, np.float64) + 1) / 2 * (high - low) + low
        return value.astype(gym._env.action_space.dtype)


def build_env(config: Config, logdir: Path, env: Any, seed: int, mode: str = "eval") -> Env:
    """The env of a run: `env` (object or factory) with the training wrappers, else the task's."""
    from .api import _Factory, _is_env, wrap
    from .training import default_env_factory

    if env is None:
        if config.task.startswith("api:"):
            raise ValueError(
                f"the run in {logdir} was trained through the Python API on an env of your code "
                f"(task '{config.task}'), which cannot be rebuilt from its name; pass it: "
                f"dreamerv2_torch.evaluate('{logdir}', env=<env or factory>, episodes=10) or "
                f"dreamerv2_torch.load('{logdir}', env=<env or factory>)")
        return default_env_factory(config, logdir)(seed, mode)
    if _is_env(env) and not isinstance(env, type):
        return wrap(env, config, seed)
    if callable(env):
        return _Factory(env, config)(seed, mode)
    raise TypeError(f"env must be a gymnasium env, an env of this package or a factory, got "
                    f"{env!r}")


def load(logdir: str | Path, *, env: Any = None, checkpoint: str | Path | None = None,
         device: str | None = None, seed: int | None = None) -> TrainedAgent:
    """The trained agent of the run in `logdir` (see the module docstring)."""
    import torch

    from .agent import Agent
    from .evaluation import SEED_OFFSET, EvalError, _load_run, load_weights

    logdir = Path(logdir).expanduser()
    config, path, state = _load_run(logdir, checkpoint)
    if device:
        config = dataclasses.replace(config, device=device)
    elif config.device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalError(f"the run was trained on device '{config.device}', which this machine "
                        "lacks; pass device='cpu'")
    seed = config.seed + SEED_OFFSET if seed is None else int(seed)
    built = build_env(config, logdir, env, seed)
    agent = Agent(built.obs_space, built.act_space, config)
    load_weights(agent, state, path,
                 f"this env's spaces or the model of {logdir / 'config.yaml'}")
    return TrainedAgent(agent, config, built, int(state["step"]), path)
