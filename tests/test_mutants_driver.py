"""Tests written for `driver.py` mutants that survived tools/parity/mutation.sh (docs/parity.md,
"Mutation testing", "env stepping: driver, parallel, prefetch").

The driver steps scripted in-process envs whose every observation says where it came from.
Expected values are spec §0 (an episode of N actions is N + 1 rows: the reset observation with an
all-zero action, then the t-th step's observation with the action that produced it) and the
official `common/driver.py` (finished envs reset at the start of the next call, without a policy
call; the policy state carried between calls; callbacks per reset, step and episode; `_convert`:
floats to float32, signed ints to int32, the rest unchanged), plus the module's own documented
rules (restarted envs, non-finite data, resume state, stream seeds)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from dreamerv2_torch.driver import (
    Driver,
    NonFiniteData,
    SerialEnvs,
    convert,
    nonfinite_keys,
    random_policy,
    stream_seed,
)
from dreamerv2_torch.envs.base import FLAG_SPACES, Space


class Scripted:
    """Episodes of `length` steps. Observation `vector` = [episode, t] (float64, converted to
    float32 by the driver), `count` = t (int64 → int32), `image` (uint8, unchanged); reward = t
    (a Python float). `bad` = {(episode, t): key(s)}: that observation holds a NaN in each key
    (t = 0 is the reset). `restart_at` = {(episode, t)}: that step answers with a reset
    observation (what `parallel.py` returns for a restarted worker)."""

    obs_space = {"vector": Space((2,), np.float32), "count": Space((), np.int32),
                 "image": Space((1, 1, 1), np.uint8), **FLAG_SPACES}
    act_space = {"action": Space((2,), np.float32, -1.0, 1.0)}

    def __init__(self, length=3, bad=None, restart_at=(), terminal=True):
        self.length, self.bad, self.restart_at = length, bad or {}, restart_at
        self.terminal = terminal
        self.episode, self.t, self.actions, self.resets, self.closed = -1, 0, [], 0, False
        self.state = None

    def _obs(self, first=False):
        ob = {"vector": np.array([self.episode, self.t], np.float64),
              "count": np.array(self.t, np.int64), "image": np.full((1, 1, 1), self.t, np.uint8),
              "reward": float(self.t) if not first else 0.0,
              "is_first": first, "is_last": not first and self.t == self.length,
              "is_terminal": not first and self.t == self.length and self.terminal}
        keys = self.bad.get((self.episode, self.t), ())
        for key in (keys,) if isinstance(keys, str) else keys:
            ob[key] = np.full_like(np.asarray(ob[key], np.float64), np.nan)
        return ob

    def reset(self):
        self.episode, self.t = self.episode + 1, 0
        self.resets += 1
        return self._obs(first=True)

    def step(self, action):
        self.actions.append(action)
        self.t += 1
        if (self.episode, self.t) in self.restart_at:
            return self.reset()
        return self._obs()

    def close(self):
        self.closed = True

    def get_state(self):
        return {"episode": self.episode, "t": self.t}

    def set_state(self, state):
        self.state = state


class Policy:
    """Action of env i at its k-th policy call = [k, i]; the state counts the calls."""

    def __init__(self):
        self.batches, self.states = [], []

    def __call__(self, obs, state):
        self.batches.append(obs)
        self.states.append(state)
        k = len(self.batches)
        n = len(obs["is_first"])
        return {"action": np.array([[k, i] for i in range(n)], np.float32)}, k


def recorded(driver: Driver) -> dict[str, list]:
    out = {"resets": [], "steps": [], "episodes": []}
    driver.on_resets.append(lambda tr, i: out["resets"].append((i, tr)))
    driver.on_steps.append(lambda tr, i: out["steps"].append((i, tr)))
    driver.on_episodes.append(lambda ep, i: out["episodes"].append((i, ep)))
    return out


def test_one_episode_is_stored_as_spec_section_0_lays_it_out():
    env, policy = Scripted(length=3), Policy()
    driver = Driver(SerialEnvs([env]))
    out = recorded(driver)
    assert driver(policy, episodes=1) == (3, 1)
    ((worker, reset),) = out["resets"]
    assert worker == 0 and reset["is_first"] and not reset["is_last"]
    assert reset["action"].tolist() == [0.0, 0.0] and reset["action"].dtype == np.float32
    assert reset["reward"] == 0 and reset["reward"].dtype == np.float32
    assert [i for i, _ in out["steps"]] == [0, 0, 0]
    for t, (_, tr) in enumerate(out["steps"], 1):
        assert tr["vector"].tolist() == [0.0, t] and tr["action"].tolist() == [t, 0.0]
    ((worker, ep),) = out["episodes"]
    assert worker == 0
    assert ep["vector"].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3]]
    assert ep["action"].tolist() == [[0, 0], [1, 0], [2, 0], [3, 0]]
    assert ep["reward"].tolist() == [0, 1, 2, 3]
    assert ep["is_first"].tolist() == [True, False, False, False]
    assert ep["is_last"].tolist() == [False, False, False, True]
    assert ep["is_terminal"].tolist() == [False, False, False, True]
    dtypes = {k: v.dtype for k, v in ep.items()}
    assert dtypes == {"vector": np.float32, "count": np.int32, "image": np.uint8,
                      "reward": np.float32, "is_first": bool, "is_last": bool,
                      "is_terminal": bool, "action": np.float32}
    # The env got exactly the policy's actions; the policy saw the batched observations.
    assert [a["action"].tolist() for a in env.actions] == [[1, 0], [2, 0], [3, 0]]
    assert policy.batches[0]["vector"].shape == (1, 2) and policy.batches[0]["is_first"].all()
    assert policy.states == [None, 1, 2]


def test_a_finished_episode_is_stored_before_its_last_steps_callbacks():
    """The official order at an episode's last step: the replay stores it (`add_step`, registered
    before `train_step`), then the step's callbacks (the update due may sample it), then
    `on_episode` (logging)."""
    driver, order = Driver(SerialEnvs([Scripted(length=2)])), []
    driver.on_stores.append(lambda ep, i: order.append(("store", i, ep["reward"].tolist())))
    driver.on_steps.append(lambda tr, i: order.append(("step", i, float(tr["reward"]))))
    driver.on_episodes.append(lambda ep, i: order.append(("episode", i, ep["reward"].tolist())))
    assert driver(Policy(), episodes=1) == (2, 1)
    assert order == [("step", 0, 1.0), ("store", 0, [0, 1, 2]), ("step", 0, 2.0),
                     ("episode", 0, [0, 1, 2])]


def test_runs_until_both_the_steps_and_the_episodes_are_reached():
    envs = [Scripted(length=3), Scripted(length=5)]
    driver, policy = Driver(SerialEnvs(envs)), Policy()
    assert driver(policy, steps=4) == (4, 0)  # two batched steps of two envs
    assert len(policy.batches) == 2
    driver, policy = Driver(SerialEnvs([Scripted(length=3), Scripted(length=5)])), Policy()
    assert driver(policy, steps=1, episodes=2) == (10, 2)  # env 0 ends at 3, env 1 at 5
    assert driver(policy, steps=0, episodes=0) == (0, 0)  # nothing asked, nothing done
    assert driver(policy) == (0, 0)  # the defaults ask for nothing (official `driver.py`)


def test_finished_envs_reset_at_the_next_call_without_a_policy_call_and_the_state_carries():
    env0, env1 = Scripted(length=2), Scripted(length=4)
    driver, policy = Driver(SerialEnvs([env0, env1])), Policy()
    out = recorded(driver)
    assert driver(policy, episodes=1) == (4, 1)
    assert (env0.resets, env1.resets) == (1, 1)  # env 0 finished; not reset yet
    assert driver(policy, steps=2) == (2, 0)
    assert (env0.resets, env1.resets) == (2, 1)
    assert len(policy.batches) == 3  # the reset needed no policy call
    assert policy.states == [None, 1, 2]  # carried over from the first call
    assert policy.batches[2]["is_first"].tolist() == [True, False]  # the policy zeroes env 0
    assert [i for i, _ in out["resets"]] == [0, 1, 0]
    assert driver.policy_state == 3
    driver.reset()  # forget everything: every env resets, the state starts again
    assert driver.policy_state is None
    driver(policy, steps=2)
    assert (env0.resets, env1.resets) == (3, 2) and policy.states[-1] is None


def test_a_restarted_env_starts_a_new_episode_and_its_broken_one_is_dropped():
    env0, env1 = Scripted(length=4), Scripted(length=4, restart_at={(0, 2)})
    driver, policy = Driver(SerialEnvs([env0, env1])), Policy()
    out = recorded(driver)
    assert driver(policy, steps=7) == (7, 1)  # env 1's second step is not counted
    assert [i for i, _ in out["resets"]] == [0, 1, 1]
    restart = out["resets"][2][1]
    assert restart["action"].tolist() == [0.0, 0.0] and restart["is_first"]
    assert restart["vector"].tolist() == [1.0, 0.0]  # the new episode's reset observation
    ((worker, ep),) = out["episodes"]
    assert worker == 0
    assert [i for i, _ in out["steps"]].count(1) == 3  # steps 1, then 1 and 2 of episode 1
    state = driver.state_dict()
    assert state[1]["episode"]["vector"].tolist() == [[1, 0], [1, 1], [1, 2]]


def test_should_stop_and_safe_points_come_before_each_batched_step():
    driver, policy = Driver(SerialEnvs([Scripted(length=10)])), Policy()
    log = []
    driver.on_safe_points.append(lambda: log.append(("safe", len(policy.batches))))
    driver.should_stop = lambda: len(policy.batches) >= 3
    assert driver(policy, steps=100) == (3, 0)
    assert log == [("safe", 0), ("safe", 1), ("safe", 2), ("safe", 3)]


def test_nonfinite_data_raises_naming_the_env_key_and_step_and_nothing_is_stored():
    env = Scripted(length=5, bad={(0, 2): "reward"})
    driver = Driver(SerialEnvs([Scripted(length=5), env]), name="eval")
    out = recorded(driver)
    message = ("eval env 1 returned non-finite reward at step 2 of its episode; nothing of it "
               "was stored (--nonfinite drop drops such episodes instead)")
    with pytest.raises(NonFiniteData, match=f"^{re.escape(message)}$"):
        driver(Policy(), steps=100)
    assert all(np.isfinite(tr["reward"]) for _, tr in out["steps"])
    assert Driver(SerialEnvs([Scripted()])).nonfinite == "error"  # the default
    assert Driver(SerialEnvs([Scripted()])).name == "train"


def test_nonfinite_data_in_a_reset_is_caught_too():
    env = Scripted(length=5, bad={(0, 0): "vector"})
    with pytest.raises(NonFiniteData, match="train env 0 returned non-finite vector at step 0 "):
        Driver(SerialEnvs([env]))(Policy(), steps=1)


def test_dropping_nonfinite_data_warns_counts_and_resets_that_env():
    env0, env1 = Scripted(length=3), Scripted(length=3, bad={(0, 2): "vector", (1, 0): "reward"})
    driver, policy = Driver(SerialEnvs([env0, env1]), nonfinite="drop"), Policy()
    out = recorded(driver)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert driver(policy, steps=12) == (13, 3)
    messages = [str(w.message) for w in caught]
    assert messages == [
        "train env 1 returned non-finite vector at step 2 of its episode; the episode is "
        "dropped (1 so far)",
        "train env 1 returned non-finite reward at step 0 of its episode; the episode is "
        "dropped (2 so far)"]
    assert all(w.category is RuntimeWarning for w in caught)
    assert driver.dropped == 2
    # env 1: episode 0 dropped at its 2nd step, episode 1's reset dropped (reset again at once,
    # without a policy call), episode 2 whole, episode 3 begun.
    assert env1.resets == 4 and len(policy.batches) == 7
    assert [ep["vector"][0, 0] for i, ep in out["episodes"] if i == 1] == [2.0]
    assert all(np.isfinite(tr["vector"]).all() and np.isfinite(tr["reward"])
               for _, tr in out["steps"] + out["resets"])
    assert [i for i, _ in out["resets"]].count(1) == 3  # the dropped reset is never reported


def test_dropping_gives_up_after_100_bad_observations_in_a_row():
    bad = {(e, 0): "reward" for e in range(200)}
    driver = Driver(SerialEnvs([Scripted(bad=bad)]), nonfinite="drop")
    with pytest.warns(RuntimeWarning), pytest.raises(
            NonFiniteData, match="train env 0 returned non-finite reward at step 0 of its "
                                 "episode, 100 times in a row; giving up"):
        driver(Policy(), steps=1)
    assert driver.dropped == 101
    # A good observation in between starts the count again.
    bad = {(e, 0): "reward" for e in range(400) if e != 100}
    driver = Driver(SerialEnvs([Scripted(length=1, bad=bad)]), nonfinite="drop")
    with pytest.warns(RuntimeWarning), pytest.raises(NonFiniteData, match="100 times in a row"):
        driver(Policy(), steps=100)
    assert driver.dropped == 100 + 101


def test_nonfinite_keys_checks_float_entries_but_not_log_ones():
    ob = {"a": np.array([1.0, np.inf]), "b": np.float32(np.nan), "c": np.array([1, 2]),
          "log_x": np.array(np.nan), "d": np.array([1j, np.nan]), "e": np.ones(2),
          "is_last": True}
    assert nonfinite_keys(ob) == ["a", "b", "d"]


def test_state_dict_round_trip_continues_the_unfinished_episodes():
    envs = [Scripted(length=3), Scripted(length=5)]
    driver, policy = Driver(SerialEnvs(envs)), Policy()
    driver(policy, steps=6)  # env 0 finished at step 3, env 1 is at step 3 of 5
    state = driver.state_dict()
    assert state[0] is None
    assert state[1]["obs"]["vector"].tolist() == [0, 3]
    assert state[1]["episode"]["vector"].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3]]
    assert state[1]["episode"]["action"].tolist() == [[0, 0], [1, 1], [2, 1], [3, 1]]
    assert Driver(SerialEnvs([Scripted()])).state_dict() == [None]  # nothing started yet
    fresh_envs = [Scripted(length=3), Scripted(length=5)]
    fresh_envs[1].episode, fresh_envs[1].t = 0, 3  # the env's own state, restored elsewhere
    resumed = Driver(SerialEnvs(fresh_envs))
    out = recorded(resumed)
    resumed.load_state_dict(state, "saved state")
    assert resumed.policy_state == "saved state"
    policy = Policy()
    assert resumed(policy, episodes=1) == (4, 1)
    assert policy.states[0] == "saved state"
    assert policy.batches[0]["is_first"].tolist() == [True, False]
    ((worker, ep),) = out["episodes"]
    assert worker == 1 and ep["vector"].tolist() == [[0, t] for t in range(6)]
    assert ep["action"].tolist() == [[0, 0], [1, 1], [2, 1], [3, 1], [1, 1], [2, 1]]


def test_take_unfinished_hands_out_and_forgets_an_episode():
    driver, policy = Driver(SerialEnvs([Scripted(length=3), Scripted(length=5)])), Policy()
    driver(policy, steps=6)
    assert driver.take_unfinished(0) is None  # finished: stored already
    taken = driver.take_unfinished(1)
    assert taken["vector"].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3]]
    assert taken["vector"].dtype == np.float32 and taken["count"].dtype == np.int32
    assert driver.take_unfinished(1) is None and driver.state_dict() == [None, None]
    driver(policy, steps=2)  # both reset; one step each
    assert driver.take_unfinished(0)["vector"].tolist() == [[1, 0], [1, 1]]
    driver = Driver(SerialEnvs([Scripted()]))
    driver(Policy(), steps=0)
    assert driver.take_unfinished(0) is None  # never started
    driver.load_state_dict([{"obs": {"is_last": False}, "episode": {"x": np.zeros((1, 2))}}],
                           None)
    assert driver.take_unfinished(0) is None  # only the reset row: nothing to store


def test_serial_envs_forward_to_each_env():
    envs = [Scripted(), Scripted(), Scripted()]
    serial = SerialEnvs(envs)
    assert serial.num_envs == 3 and serial.obs_space is envs[0].obs_space
    assert serial.act_space is envs[0].act_space
    assert [ob["is_first"] for ob in serial.reset([2, 0])] == [True, True]
    assert [e.resets for e in envs] == [1, 0, 1]
    assert serial.get_states() == [{"episode": 0, "t": 0}, {"episode": -1, "t": 0},
                                   {"episode": 0, "t": 0}]
    serial.set_states([{"s": 0}, None, {"s": 2}])
    assert [e.state for e in envs] == [{"s": 0}, None, {"s": 2}]
    serial.close()
    assert all(e.closed for e in envs)


def test_convert_is_the_official_one():
    cases = [(np.float64(1.5), np.float32), (np.zeros(2, np.float16), np.float32),
             (np.zeros(2, np.int64), np.int32), (np.zeros(2, np.int8), np.int32),
             (np.zeros(2, np.uint8), np.uint8), (np.zeros(2, np.uint32), np.uint32),
             (True, np.bool_), ([1.0, 2.0], np.float32), (3, np.int32)]
    for value, dtype in cases:
        assert convert(value).dtype == dtype
    assert convert([0.1]).tolist() == [np.float32(0.1)]


def test_random_policy_draws_one_hot_actions_per_env_from_the_given_stream():
    space = {"action": Space((4,), np.float32, discrete=True)}
    policy = random_policy(space, 3, np.random.default_rng(0))
    actions, state = policy({"is_first": np.ones(3, bool)}, "ignored")
    assert state is None and actions["action"].shape == (3, 4)
    assert (actions["action"].sum(-1) == 1).all()
    rng = np.random.default_rng(0)
    want = np.stack([space["action"].sample(rng) for _ in range(3)])
    np.testing.assert_array_equal(actions["action"], want)


def test_stream_seeds():
    assert stream_seed(7, 2, 0, 0) == 9 and type(stream_seed(np.int64(7), 2, 0, 0)) is int
    later = [stream_seed(7, 2, 1, 0), stream_seed(7, 2, 0, 1), stream_seed(7, 3, 1, 0),
             stream_seed(8, 2, 1, 0), stream_seed(9, 2, 1, 0), stream_seed(7, 2, 2, 0),
             stream_seed(7, 2, 0, 2)]
    assert len(set(later)) == len(later) and 9 not in later
    assert all(type(s) is int and 0 <= s < 2**32 for s in later)
    assert stream_seed(7, 2, 1, 0) == stream_seed(7, 2, 1, 0)  # derived, not drawn
    # The seed enters modulo 2**63 (SeedSequence takes non-negative words).
    assert stream_seed(2**63 + 7, 2, 1, 0) == stream_seed(7, 2, 1, 0)
    assert stream_seed(-1, 2, 1, 0) == stream_seed(2**63 - 1, 2, 1, 0)


class Recording(SerialEnvs):
    """SerialEnvs that records each `reset` call's indices."""

    def __init__(self, envs):
        super().__init__(envs)
        self.reset_calls = []

    def reset(self, indices):
        self.reset_calls.append(list(indices))
        return super().reset(indices)


def test_only_finished_envs_are_reset_and_never_with_an_empty_list():
    envs = Recording([Scripted(length=2), Scripted(length=4)])
    assert Driver(envs)(Policy(), steps=8) == (8, 3)  # env 0 ends twice, env 1 once
    assert envs.reset_calls == [[0, 1], [0]]


def test_a_dropped_reset_leaves_the_other_envs_resets_alone():
    env0, env1 = Scripted(length=3, bad={(0, 0): "reward"}), Scripted(length=3)
    driver = Driver(SerialEnvs([env0, env1]), nonfinite="drop")
    out = recorded(driver)
    with pytest.warns(RuntimeWarning, match="env 0 returned non-finite reward at step 0"):
        assert driver(Policy(), steps=2) == (2, 0)
    assert (env0.resets, env1.resets) == (2, 1)
    assert [(i, tr["vector"].tolist()) for i, tr in out["resets"]] == [(1, [0, 0]), (0, [1, 0])]


def test_a_restart_or_a_dropped_step_leaves_the_other_envs_steps_alone():
    for first in (Scripted(length=4, restart_at={(0, 2)}),
                  Scripted(length=4, bad={(0, 2): "vector"})):
        driver = Driver(SerialEnvs([first, Scripted(length=4)]), nonfinite="drop")
        out = recorded(driver)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert driver(Policy(), steps=3) == (3, 0)
        assert [tr["vector"].tolist() for i, tr in out["steps"] if i == 1] == [[0, 1], [0, 2]]
        state = driver.state_dict()
        assert state[1]["episode"]["vector"].tolist() == [[0, 0], [0, 1], [0, 2]]
        if first.restart_at:  # a checkpoint right after a restart: the new episode's first row
            assert state[0]["obs"]["is_first"]
            assert state[0]["episode"]["vector"].tolist() == [[1, 0]]
        else:  # the dropped episode is gone; env 0 resets at the next call
            assert state[0] is None


def test_the_message_names_every_nonfinite_key():
    env = Scripted(bad={(0, 1): ("reward", "vector")})
    with pytest.raises(NonFiniteData, match="^train env 0 returned non-finite vector, reward at "
                                            "step 1 of its episode;"):
        Driver(SerialEnvs([env]))(Policy(), steps=5)
