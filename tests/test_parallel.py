"""`envs: N` in worker processes (parallel.py): same transitions as in-process envs for the same
seeds and actions, and a crashed, raising or hung worker is restarted with a warning while the run
goes on (its broken episode is dropped, never stored)."""

from __future__ import annotations

import functools
import os
import sys
import time

import numpy as np
import pytest

from dreamerv2_torch.driver import Driver, SerialEnvs, random_policy
from dreamerv2_torch.envs import Wrapper, make_env
from dreamerv2_torch.parallel import ParallelEnvs, restart_seed


def task_env(task: str, seed: int, mode: str, time_limit: int = 0):
    """A picklable (seed, mode) -> Env factory (module level, used through functools.partial)."""
    return make_env(task, seed=seed, mode=mode, time_limit=time_limit)


class Faulty(Wrapper):
    """Fails at step `at` of its life if `armed` (faulty_env arms it only for `bad_seed`, so after
    a restart, which changes the seed, it runs normally; None arms it always)."""

    def __init__(self, env, fail: str, at: int, armed: bool):
        super().__init__(env)
        self.fail, self.at, self.armed, self.t = fail, at, armed, 0

    def step(self, action):
        self.t += 1
        if self.armed and self.t == self.at:
            if self.fail == "exit":
                os._exit(3)
            if self.fail == "hang":
                time.sleep(3600)
            raise RuntimeError(f"boom at step {self.t}")
        return self.env.step(action)


def faulty_env(seed: int, mode: str, fail: str, at: int, bad_seed: int | None):
    armed = bad_seed is None or seed == bad_seed
    return Faulty(make_env("dummy_reveal", seed=seed, mode=mode), fail, at, armed)


def rollout(envs, steps: int, seed: int = 0) -> list[list[dict]]:
    """Per env, every observation of a fixed random action sequence, resetting finished envs."""
    rng = np.random.default_rng(seed)
    space = envs.act_space["action"]
    history = [[ob] for ob in envs.reset(range(envs.num_envs))]
    for _ in range(steps):
        done = [i for i in range(envs.num_envs) if history[i][-1]["is_last"]]
        for i, ob in zip(done, envs.reset(done) if done else [], strict=True):
            history[i].append(ob)
        results = envs.step([{"action": space.sample(rng)} for _ in range(envs.num_envs)])
        for i, ob in enumerate(results):
            history[i].append(ob)
    return history


def assert_same(a: list[list[dict]], b: list[list[dict]]) -> None:
    assert len(a) == len(b)
    for env_a, env_b in zip(a, b, strict=True):
        assert len(env_a) == len(env_b)
        for ob_a, ob_b in zip(env_a, env_b, strict=True):
            assert ob_a.keys() == ob_b.keys()
            for key in ob_a:
                np.testing.assert_array_equal(ob_a[key], ob_b[key], err_msg=key)
                assert np.asarray(ob_a[key]).dtype == np.asarray(ob_b[key]).dtype


@pytest.mark.parametrize(("task", "steps"), [("dummy_reveal", 120), ("dummy_continuous", 60),
                                             ("atari_pong", 120)])
def test_parallel_gives_the_serial_transitions(task, steps):
    if task.startswith("atari"):  # sticky actions and no-op starts come from the seeded env RNG
        pytest.importorskip("ale_py")
    factory = functools.partial(task_env, task, time_limit=50)
    seeds = [7, 8, 9]
    serial = SerialEnvs([factory(s, "train") for s in seeds])
    parallel = ParallelEnvs(factory, seeds, "train")
    try:
        assert parallel.num_envs == 3
        assert parallel.obs_space == serial.obs_space and parallel.act_space == serial.act_space
        assert_same(rollout(serial, steps), rollout(parallel, steps))
    finally:
        parallel.close()
        serial.close()


def test_restart_seed():
    assert restart_seed(5, 0) == 5
    seeds = {restart_seed(5, n) for n in range(1, 20)} | {restart_seed(6, 1)}
    assert len(seeds) == 20 and 5 not in seeds


@pytest.mark.parametrize("fail", ["raise", "exit", "hang"])
def test_a_failed_worker_is_restarted_and_the_run_goes_on(fail):
    factory = functools.partial(faulty_env, fail=fail, at=30, bad_seed=1)
    envs = ParallelEnvs(factory, [0, 1], "train", timeout=2.0 if fail == "hang" else 60.0)
    driver = Driver(envs)
    episodes, resets = [], []
    driver.on_episodes.append(lambda ep, worker: episodes.append((worker, ep)))
    driver.on_resets.append(lambda tr, worker: resets.append(worker))
    try:
        with pytest.warns(RuntimeWarning, match=r"env 1 failed during step .*restart 1"):
            steps, _ = driver(random_policy(envs.act_space, 2, np.random.default_rng(0)),
                              steps=2 * 260)
    finally:
        envs.close()
    # The failed step is not counted, so one more batched step was needed: env 0 made 261 steps,
    # env 1 29 before its failure and 231 after its restart.
    assert steps == 2 * 260 + 1
    assert resets.count(1) == resets.count(0) + 1  # env 1 had one extra (restart) reset
    # Each finished two 100-step episodes; env 1's broken first episode was dropped. Every stored
    # episode is whole: 101 rows, is_first only at the start.
    assert sorted(w for w, _ in episodes) == [0, 0, 1, 1]
    for _, ep in episodes:
        assert len(ep["reward"]) == 101 and ep["is_first"].sum() == 1 and ep["is_first"][0]


def test_repeated_failures_give_up_with_an_error():
    factory = functools.partial(faulty_env, fail="raise", at=1, bad_seed=None)  # always fails
    envs = ParallelEnvs(factory, [0], "train", max_failures=2)
    action = {"action": np.eye(4, dtype=np.float32)[0]}
    try:
        envs.reset([0])
        with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="failed 3 times"):
            for _ in range(3):  # each step fails; its restart succeeds until the third failure
                envs.step([action])
    finally:
        envs.close()


def test_build_errors_are_raised_with_their_type():
    with pytest.raises(ValueError, match="unknown dummy env"):
        ParallelEnvs(functools.partial(task_env, "dummy_nope"), [0, 1])


def test_unpicklable_factory_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # `import cloudpickle` now fails
    with pytest.raises(ValueError, match="must be picklable"):
        ParallelEnvs(lambda seed, mode: make_env("dummy_reveal", seed=seed), [0, 1])
