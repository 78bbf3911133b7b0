"""Steps N environments with one batched policy call per step (spec §3.2; official `driver.py`).

numpy only. Transitions follow spec §0: the reset observation is stored with an all-zero action, and
the transition of step t holds the observation returned by the t-th `env.step` together with the
action that produced it. Finished envs are reset at the start of the next call, without a policy
call, and the policy state is zeroed for them through `is_first`. A `step` result with `is_first`
(an env that `parallel.py` restarted after a crash) starts a new episode; the broken one is dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from .envs.base import Env, Obs, Space, env_state

Policy = Callable[[dict[str, np.ndarray], object], tuple[dict[str, np.ndarray], object]]


class BatchEnv(Protocol):
    """N environments behind one interface (serial here; subprocess workers in `parallel.py`)."""

    num_envs: int
    obs_space: dict[str, Space]
    act_space: dict[str, Space]

    def reset(self, indices: Sequence[int]) -> list[Obs]: ...
    def step(self, actions: Sequence[dict[str, np.ndarray]]) -> list[Obs]: ...
    def close(self) -> None: ...


class SerialEnvs:
    """N in-process environments stepped one after another."""

    def __init__(self, envs: Sequence[Env]):
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self.obs_space, self.act_space = self.envs[0].obs_space, self.envs[0].act_space

    def reset(self, indices: Sequence[int]) -> list[Obs]:
        return [self.envs[i].reset() for i in indices]

    def step(self, actions: Sequence[dict[str, np.ndarray]]) -> list[Obs]:
        return [env.step(act) for env, act in zip(self.envs, actions)]

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def get_states(self) -> list[dict | None]:
        return [env_state(env) for env in self.envs]

    def set_states(self, states: Sequence[dict | None]) -> None:
        for env, state in zip(self.envs, states):
            if state is not None:
                env.set_state(state)


def stream_seed(seed: int, index: int, restarts: int, stored: int) -> int:
    """The seed of env `index` (or of another random stream) of a run.

    A fresh run (no checkpoint, no stored episode) uses ``seed + index``. Every later start mixes
    in the checkpoint's restart counter and the number of episode files on disk, so that no start
    replays the streams of an earlier one whose experience was stored (issue 9).
    """
    if restarts == 0 and stored == 0:
        return int(seed) + index
    words = [int(seed) % 2**63, index, restarts, stored]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def convert(value) -> np.ndarray:
    """float → float32, signed int → int32, everything else as is (official `_convert`)."""
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.floating):
        return value.astype(np.float32, copy=False)
    if np.issubdtype(value.dtype, np.signedinteger):
        return value.astype(np.int32, copy=False)
    return value


class NonFiniteData(ValueError):
    """An env returned a NaN or infinite reward or observation (with `nonfinite: error`)."""


def nonfinite_keys(ob: Obs) -> list[str]:
    """Keys of float entries with a NaN or inf (``log_*`` keys are never modelled: ignored)."""
    return [k for k, v in ob.items() if not k.startswith("log_")
            and np.asarray(v).dtype.kind in "fc" and not np.isfinite(v).all()]


class Driver:
    def __init__(self, envs: BatchEnv, name: str = "train", nonfinite: str = "error"):
        """`name` names the envs in messages; `nonfinite`: what a NaN/inf reward or observation
        does, 'error' (raise `NonFiniteData`) or 'drop' (warn, count in `dropped`, discard the
        episode and reset that env). Either way it is never stored or shown to the policy."""
        self.envs = envs
        self.name, self.nonfinite = name, nonfinite
        self.dropped = 0  # episodes dropped for non-finite data
        self._bad_in_a_row = [0] * envs.num_envs
        self.on_steps: list[Callable] = []    # fn(transition, worker)
        self.on_resets: list[Callable] = []   # fn(transition, worker)
        self.on_episodes: list[Callable] = []  # fn(episode, worker)
        # fn(episode, worker) with a finished episode *before* its last step's `on_steps`: where
        # the official replay stores it (`add_step`, registered before `train_step`), so the
        # update due at that step can sample it (spec §3.2; docs/parity.md).
        self.on_stores: list[Callable] = []
        self.should_stop: Callable[[], bool] = lambda: False
        # Called before each batched step, where the driver's state is whole (a checkpoint may be
        # written there, e.g. by the clock).
        self.on_safe_points: list[Callable[[], None]] = []
        self.reset()

    def reset(self) -> None:
        """Forget the current episodes and policy state (the next call resets every env)."""
        n = self.envs.num_envs
        self._obs: list[Obs | None] = [None] * n
        self._episodes: list[list[dict] | None] = [None] * n
        self._state = None

    def __call__(self, policy: Policy, steps: int = 0, episodes: int = 0) -> tuple[int, int]:
        """Run until at least `steps` env steps and `episodes` finished episodes (or a stop).

        Returns the steps and episodes done.
        """
        step = episode = 0
        zero_action = {k: v.zeros() for k, v in self.envs.act_space.items()}
        while step < steps or episode < episodes:
            for fn in self.on_safe_points:
                fn()
            if self.should_stop():
                break
            todo = [i for i, ob in enumerate(self._obs) if ob is None or ob["is_last"]]
            for i, ob in zip(todo, self.envs.reset(todo) if todo else []):
                if self._bad(i, ob, 0):
                    continue
                self._obs[i] = ob
                transition = {k: convert(v) for k, v in {**ob, **zero_action}.items()}
                for fn in self.on_resets:
                    fn(transition, i)
                self._episodes[i] = [transition]
            if any(ob is None for ob in self._obs):  # a reset gave non-finite data: reset again
                continue
            batch = {k: np.stack([ob[k] for ob in self._obs]) for k in self._obs[0]}
            actions, self._state = policy(batch, self._state)
            actions = [{k: np.asarray(v[i]) for k, v in actions.items()}
                       for i in range(self.envs.num_envs)]
            results = self.envs.step(actions)
            for i, (action, ob) in enumerate(zip(actions, results)):
                if ob["is_first"]:
                    # A restarted env (parallel.py) answered with a reset: the broken episode is
                    # dropped, not stored, and no step is counted for it.
                    transition = {k: convert(v) for k, v in {**ob, **zero_action}.items()}
                    for fn in self.on_resets:
                        fn(transition, i)
                    self._episodes[i] = [transition]
                    continue
                if self._bad(i, ob, len(self._episodes[i])):
                    results[i] = None  # reset at the next call: a fresh episode, zeroed state
                    continue
                transition = {k: convert(v) for k, v in {**ob, **action}.items()}
                self._episodes[i].append(transition)
                step += 1
                if ob["is_last"]:
                    eps = self._episodes[i]
                    ep = {k: convert([t[k] for t in eps]) for k in eps[0]}
                    for fn in self.on_stores:
                        fn(ep, i)
                for fn in self.on_steps:
                    fn(transition, i)
                if ob["is_last"]:
                    for fn in self.on_episodes:
                        fn(ep, i)
                    episode += 1
            self._obs = results
        return step, episode

    def state_dict(self) -> list[dict | None]:
        """Per env: its last observation and its unfinished episode (stacked per key), or None;
        plus the policy state, for a checkpoint (numpy arrays, see `checkpoint.to_torch`)."""
        out = []
        for ob, eps in zip(self._obs, self._episodes):
            if ob is None or eps is None or ob["is_last"]:
                out.append(None)
            else:
                out.append({"obs": dict(ob), "episode": {k: np.stack([t[k] for t in eps])
                                                         for k in eps[0]}})
        return out

    def load_state_dict(self, envs: Sequence[dict | None], policy_state) -> None:
        """Continue the unfinished episodes of the envs whose entry is not None (the others are
        reset at the next call) with the saved policy state."""
        self.reset()
        for i, item in enumerate(envs):
            if item is None:
                continue
            self._obs[i] = dict(item["obs"])
            episode = item["episode"]
            length = len(next(iter(episode.values())))
            self._episodes[i] = [{k: v[t] for k, v in episode.items()} for t in range(length)]
        self._state = policy_state

    def take_unfinished(self, i: int) -> dict[str, np.ndarray] | None:
        """Env i's unfinished episode (stacked per key, without the last transition's `is_last`),
        forgotten here: the env is reset at the next call. None if it has none."""
        eps, ob = self._episodes[i], self._obs[i]
        self._obs[i] = self._episodes[i] = None
        if eps is None or ob is None or ob["is_last"] or len(eps) < 2:
            return None
        return {k: convert([t[k] for t in eps]) for k in eps[0]}

    @property
    def policy_state(self):
        return self._state

    def _bad(self, i: int, ob: Obs, step: int) -> bool:
        """True if `ob` holds non-finite values and was dropped; raises with `nonfinite: error`."""
        keys = nonfinite_keys(ob)
        if not keys:
            self._bad_in_a_row[i] = 0
            return False
        where = (f"{self.name} env {i} returned non-finite {', '.join(keys)} at step {step} of "
                 "its episode")
        if self.nonfinite == "error":
            raise NonFiniteData(f"{where}; nothing of it was stored (--nonfinite drop drops such "
                                "episodes instead)")
        self.dropped += 1
        self._bad_in_a_row[i] += 1
        if self._bad_in_a_row[i] > 100:
            raise NonFiniteData(f"{where}, 100 times in a row; giving up")
        warnings.warn(f"{where}; the episode is dropped ({self.dropped} so far)",
                      RuntimeWarning, stacklevel=3)
        self._obs[i] = self._episodes[i] = None
        return True


def random_policy(act_space: dict[str, Space], num_envs: int,
                  rng: np.random.Generator) -> Policy:
    """Uniform random actions (one-hot for discrete spaces), for prefill."""
    def policy(obs, state):
        return {k: np.stack([s.sample(rng) for _ in range(num_envs)])
                for k, s in act_space.items()}, None
    return policy
