"""A resume continues the same streams (issue 9, bug 3): episode files reload in insertion
order, and a stopped Atari env continues its emulator, RNG and sticky action bit for bit."""

import json
import signal

import numpy as np
import pytest
import torch

from dreamerv2_torch import checkpoint, presets
from dreamerv2_torch.logger import read_jsonl
from dreamerv2_torch.training import train

# ---- episode file order (exact resume) ----

class _Clock:
    """Stands in for `replay.datetime`: `now()` gives the times in `stamps`, in turn."""

    def __init__(self, *stamps):
        self.stamps = list(stamps)
        self.datetime = self

    def now(self):
        return self.stamps.pop(0) if len(self.stamps) > 1 else self.stamps[0]


def _episode(eplen, ident):
    steps = np.arange(eplen + 1)
    return {"vector": np.stack([steps, np.full_like(steps, ident)], -1).astype(np.float32),
            "reward": np.ones(eplen + 1, np.float32), "is_first": steps == 0,
            "is_last": steps == eplen, "is_terminal": steps == eplen}


@pytest.mark.parametrize("clock", ["one second", "backwards"])
def test_episodes_reload_in_insertion_order(tmp_path, monkeypatch, clock):
    """Episodes stored within one second (or while the clock goes back: NTP, a DST change)
    reload in the order they were stored, so a resumed replay samples as the live one."""
    import datetime

    from dreamerv2_torch import replay as replay_module
    from dreamerv2_torch.replay import Replay

    t = datetime.datetime(2026, 10, 25, 2, 30, 0)
    stamps = [t] if clock == "one second" else [t - datetime.timedelta(minutes=i)
                                                for i in range(12)]
    monkeypatch.setattr(replay_module, "datetime", _Clock(*stamps))
    live = Replay(tmp_path, capacity=10_000, minlen=5, maxlen=12, seed=3)
    names = [live.add_episode(_episode(10 + i, i)).name for i in range(12)]
    live.sample(3, 7)  # leaves a sequence half used
    state = live.state_dict()
    resumed = Replay(tmp_path, capacity=10_000, minlen=5, maxlen=12, seed=3)
    resumed.load()
    assert resumed.episode_files() == names
    resumed.load_state_dict(state)
    for _ in range(5):
        np.testing.assert_array_equal(resumed.sample(4, 7)["vector"], live.sample(4, 7)["vector"])
    # Capacity keeps the newest episodes, by insertion order too.
    small = Replay(tmp_path, capacity=60, minlen=5, maxlen=12)
    small.load()
    assert small.episode_files() == names[-len(small.episode_files()):]


def test_official_episode_names_still_load_before_indexed_ones(tmp_path):
    from dreamerv2_torch.replay import Replay

    old = tmp_path / "20991231T235959-0123456789abcdef0123456789abcdef-10.npz"  # a later time
    np.savez_compressed(old, **_episode(10, 99))
    replay = Replay(tmp_path, capacity=10_000, minlen=5, maxlen=12)
    replay.load()
    new = replay.add_episode(_episode(11, 0)).name
    assert new.split("-")[1] == "00000001"  # the index goes on after the files already there
    reloaded = Replay(tmp_path, capacity=10_000, minlen=5, maxlen=12)
    reloaded.load()
    assert reloaded.episode_files() == [old.name, new]
    assert reloaded.stats["total_episodes"] == 2 and reloaded.stats["total_steps"] == 21


# ---- Atari: a stop continues the emulator's stream (bug 3) ----

def _atari_rollout(env, actions):
    out = []
    for index in actions:
        ob = env.step({"action": np.eye(18, dtype=np.float32)[index]})
        out.append(ob)
        if ob["is_last"]:
            out.append(env.reset())  # the next episode's NOOP start continues the RNG too
    return out


@pytest.mark.parametrize("game, saved_at", [("breakout", [0, 1, 37, 90]), ("pong", [5, 60])])
def test_atari_state_continues_the_same_frames_with_sticky_actions(game, saved_at):
    """Save the state after n steps, restore it into an env built with another seed: the next
    steps' frames, RAM, rewards and flags equal the original's, with sticky actions on (p=0.25,
    as in the `atari` preset) and through a game over and the next episode's NOOP start."""
    pytest.importorskip("ale_py")
    from dreamerv2_torch.envs import make_env

    actions = np.random.default_rng(0).integers(18, size=400)
    for n in saved_at:
        env = make_env(f"atari_{game}", seed=3, action_repeat=4, time_limit=150)
        env.reset()
        _atari_rollout(env, actions[:n])
        state = checkpoint.to_numpy(checkpoint.to_torch(env.get_state()))  # as in a checkpoint
        want = _atari_rollout(env, actions[n:])
        fresh = make_env(f"atari_{game}", seed=99, action_repeat=4, time_limit=150)
        fresh.reset()
        _atari_rollout(fresh, actions[:7])  # another position, another sticky action
        fresh.set_state(state)
        got = _atari_rollout(fresh, actions[n:])
        assert sum(ob["is_first"] for ob in want) >= 1  # the comparison crosses an episode end
        for t, (a, b) in enumerate(zip(want, got, strict=True)):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"n={n} t={t} {key}")


def _first_frame_is_sticky(state):
    """Whether the next emulator frame repeats the previous action: peek the saved RNG."""
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = json.loads(state["env"]["rng"])
    return rng.random() < 0.25


def test_atari_state_restores_the_action_a_sticky_first_frame_repeats():
    """ALE's rule (spec §9): a sticky frame repeats the previous frame's action. Restored at a
    position whose first frame is sticky and whose saved action differs from the next one, the
    restored env must repeat the saved action, not the new one nor nothing."""
    pytest.importorskip("ale_py")
    from dreamerv2_torch.envs import make_env

    actions = np.random.default_rng(2).integers(1, 18, size=300)
    env = make_env("atari_pong", seed=4, action_repeat=4, time_limit=0)
    env.reset()
    checked = 0
    for n in range(250):
        state = env.get_state()
        if _first_frame_is_sticky(state) and state["env"]["sticky"] != actions[n]:
            want = _atari_rollout(env, actions[n:n + 8])
            fresh = make_env("atari_pong", seed=99, action_repeat=4, time_limit=0)
            fresh.reset()
            fresh.set_state(checkpoint.to_numpy(checkpoint.to_torch(state)))
            got = _atari_rollout(fresh, actions[n:n + 8])
            for a, b in zip(want, got, strict=True):
                np.testing.assert_array_equal(a["ram"], b["ram"], err_msg=f"n={n}")
            checked += 1
            if checked == 3:
                break
            env = make_env("atari_pong", seed=4, action_repeat=4, time_limit=0)
            env.reset()
            _atari_rollout(env, actions[:n + 1])
            continue
        _atari_rollout(env, actions[n:n + 1])
    assert checked == 3  # the search found sticky first frames to test


def test_atari_state_of_an_env_never_reset_keeps_its_seed():
    """A checkpoint can come before an env's first reset (the eval env during prefill)."""
    pytest.importorskip("ale_py")
    from dreamerv2_torch.envs import make_env

    actions = np.random.default_rng(1).integers(18, size=120)
    env = make_env("atari_pong", seed=5, action_repeat=4, time_limit=50)
    fresh = make_env("atari_pong", seed=77, action_repeat=4, time_limit=50)
    fresh.set_state(env.get_state())
    want, got = ([e.reset()] + _atari_rollout(e, actions) for e in (env, fresh))
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])


class _AtariStopping:
    """atari_pong (sticky actions on, 100-step episodes) whose train env interrupts the process
    once at train step `stop_at`."""

    stop_at, steps = None, 0

    def __init__(self, seed, mode):
        from dreamerv2_torch.envs import make_env

        self.env = make_env("atari_pong", seed=seed, mode=mode, action_repeat=4, time_limit=100)
        self.mode = mode
        self.obs_space, self.act_space = self.env.obs_space, self.env.act_space
        self.reset, self.close = self.env.reset, self.env.close
        self.get_state, self.set_state = self.env.get_state, self.env.set_state

    def step(self, action):
        ob = self.env.step(action)
        if self.mode == "train":
            _AtariStopping.steps += 1
            if _AtariStopping.steps == _AtariStopping.stop_at:
                signal.raise_signal(signal.SIGINT)
        return ob


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="signals")
def test_atari_stop_and_resume_equals_an_uninterrupted_run(tmp_path, one_thread):
    pytest.importorskip("ale_py")
    from state_support import assert_same

    def run(logdir, stop_at=None):
        _AtariStopping.stop_at, _AtariStopping.steps = stop_at, 0
        config = presets.resolve(["debug"], {
            "task": "api:_AtariStopping", "logdir": str(logdir), "steps": 300, "prefill": 100,
            "eval_every": 150, "log_every": 100, "time_limit": 0, "eval_eps": 1,
            "threads": 1, "checkpoint_every": 0})
        return train(config, _AtariStopping, progress=False)

    whole = run(tmp_path / "whole")
    assert run(tmp_path / "stopped", stop_at=170)["step"] == 170
    assert run(tmp_path / "stopped")["step"] == whole["step"] == 300
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)
            for d in ("whole", "stopped"))
    assert_same(a["agent"], b["agent"])
    assert b["restarts"] == 1
    scores = [[{k: v for k, v in s.items() if k != "time"} for s in read_jsonl(tmp_path / d /
               "scores.jsonl")] for d in ("whole", "stopped")]
    assert scores[0] == scores[1]
