"""Tests for mutants of rundir.py, skipped_updates.py, episode_log.py and run_state.save that
survived tools/parity/mutation.sh (docs/parity.md, "Mutation testing"): issue 9's rules (one clear
error, nothing written before it; temporary files removed; logs cut back to the checkpoint; a
checkpoint holds everything a resume reads), spec §3.2 item 4 / §5.3 (per-episode logging), with
hand-computed values; no training run."""

from __future__ import annotations

import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamerv2_torch import checkpoint, presets, run_state, rundir
from dreamerv2_torch.config import to_dict
from dreamerv2_torch.envs.crafter import ACHIEVEMENTS, crafter_score
from dreamerv2_torch.episode_log import crafter_stats, per_episode
from dreamerv2_torch.loop import Every
from dreamerv2_torch.prefetch import DevicePrefetch
from dreamerv2_torch.rundir import CONFIG, RunDir, log_sizes, open_rundir, remove_temporary
from dreamerv2_torch.skipped_updates import SkippedUpdates, check_skipped


def _config(logdir, **overrides):
    return presets.resolve(["debug"], {"task": "dummy_vector", "logdir": str(logdir), **overrides})


def _checkpoint(logdir, config):
    payload = dict.fromkeys(checkpoint.REQUIRED, 0) | {"config": to_dict(config), "step": 7}
    checkpoint.save(logdir, payload)


def test_log_sizes_and_truncate_logs_cut_only_longer_files_and_count_the_bytes(tmp_path):
    (tmp_path / "metrics.jsonl").write_bytes(b'{"a": 1}\n{"b": 2}\n')  # 18 bytes
    assert log_sizes(tmp_path) == {"metrics.jsonl": 18, "scores.jsonl": 0}  # 0: missing
    (tmp_path / "scores.jsonl").write_bytes(b"abcdefg")
    sizes = {"metrics.jsonl": torch.tensor(9), "scores.jsonl": 5, "missing.jsonl": 0}
    cut = rundir.truncate_logs(tmp_path, sizes)
    assert cut == 9 + 2  # summed over both logs
    assert (tmp_path / "metrics.jsonl").read_bytes() == b'{"a": 1}\n'
    assert (tmp_path / "scores.jsonl").read_bytes() == b"abcde"
    assert not (tmp_path / "missing.jsonl").exists()
    assert rundir.truncate_logs(tmp_path, {"metrics.jsonl": 9, "scores.jsonl": 50}) == 0
    assert (tmp_path / "scores.jsonl").read_bytes() == b"abcde"  # shorter: never padded


def test_remove_temporary_deletes_only_interrupted_writes(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    doomed = ["checkpoint.pt.tmp", "sub/config.yaml.tmp", ".ep.npz.part1", "sub/.x.partial"]
    kept = ["a.tmpx", "part.txt", ".hidden", "ep.part.npz", "sub/tmp"]
    for name in doomed + kept:
        (tmp_path / name).write_text("x")
    remove_temporary(tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) \
        == sorted(kept)
    remove_temporary(tmp_path / "nothing")  # a logdir that does not exist yet: no error
    remove_temporary(tmp_path / "a.tmpx")  # nor a file
    # Another process (a second restart, a cleanup job) deletes a leftover between the listing
    # and the unlink: that is the goal reached, not an error.
    (tmp_path / "x.tmp").write_text("x")
    listing = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, p: [*listing(self, p), self / "gone.tmp"])
    remove_temporary(tmp_path)
    assert not (tmp_path / "x.tmp").exists()


def test_commit_creates_the_directory_writes_the_config_and_keeps_a_bad_checkpoint(tmp_path):
    logdir = tmp_path / "a" / "b"
    config = _config(logdir, steps=123)
    RunDir(logdir, config, None, resumed=False).commit()  # parents created
    assert presets.load(logdir / CONFIG) == config
    (logdir / "checkpoint.pt").write_bytes(b"garbage")
    (logdir / "checkpoint.pt.tmp").write_bytes(b"partial")
    RunDir(logdir, config, None, False, unreadable=logdir / "checkpoint.pt").commit()
    assert (logdir / "checkpoint.pt.bad").read_bytes() == b"garbage"
    assert not (logdir / "checkpoint.pt").exists() and not (logdir / "checkpoint.pt.tmp").exists()


def test_a_fresh_or_empty_logdir_opens_without_writing(tmp_path):
    for logdir in (tmp_path / "new", tmp_path):
        run = open_rundir(_config(logdir))
        assert run.resumed is False and run.checkpoint is None and run.unreadable is None
        assert run.logdir == logdir
    assert not (tmp_path / "new").exists() and not list(tmp_path.iterdir())


def test_no_logdir_or_a_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(presets.ConfigError, match="^no logdir given: pass --logdir DIR$"):
        open_rundir(_config(""))
    (tmp_path / "file").write_text("x")
    with pytest.raises(presets.ConfigError, match="^logdir .*file exists and is not a directory$"):
        open_rundir(_config(tmp_path / "file"))


def test_a_foreign_nonempty_logdir_is_refused_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(presets.ConfigError, match=r"is not empty but holds no dreamerv2-torch run "
                       r"\(config.yaml missing\); choose an empty or new directory$"):
        open_rundir(_config(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_changed_config_is_refused_naming_the_field_and_resumable_fields_may_change(tmp_path):
    saved = _config(tmp_path, steps=100)
    RunDir(tmp_path, saved, None, False).commit()
    run = open_rundir(_config(tmp_path, steps=500, eval_every=7))  # both in RESUMABLE
    assert run.resumed is False and run.checkpoint is None
    with pytest.raises(presets.ConfigError) as error:
        open_rundir(_config(tmp_path, seed=saved.seed + 1, train_every=saved.train_every + 2))
    text = str(error.value)
    first, *lines, _ = text.split("\n")
    assert first == f"{tmp_path} holds a run whose config.yaml differs from the given config:"
    assert sorted(lines) == [f"  seed: saved {saved.seed}, given {saved.seed + 1}", "  train_"
                             f"every: saved {saved.train_every}, given {saved.train_every + 2}"]
    assert f"(the saved ones are in {tmp_path / CONFIG})" in text
    assert text.endswith("Only these may change on resume: "
                         f"{', '.join(sorted(presets.RESUMABLE))}.")


def test_unreadable_config_is_one_line_naming_file_and_error(tmp_path, monkeypatch):
    (tmp_path / CONFIG).write_text("steps: [unclosed")  # yaml's message has 6 lines
    with pytest.raises(presets.ConfigError) as error:
        open_rundir(_config(tmp_path))
    assert str(error.value) == (
        f"{tmp_path / CONFIG} cannot be read as a run config (ConfigError: {tmp_path / CONFIG} "
        "is not valid YAML: while parsing a flow sequence); restore it, or choose a new --logdir")
    assert error.value.__cause__ is None and error.value.__suppress_context__
    def unreadable(path):
        raise OSError()  # no message at all
    monkeypatch.setattr(presets, "load", unreadable)
    with pytest.raises(presets.ConfigError, match=r"^\S+ cannot be read as a run config "
                       r"\(OSError: \); restore it, or choose a new --logdir$"):
        open_rundir(_config(tmp_path))


def test_resume_loads_the_checkpoint_and_refuses_a_different_one(tmp_path):
    config = _config(tmp_path)
    RunDir(tmp_path, config, None, False).commit()
    _checkpoint(tmp_path, config)
    run = open_rundir(_config(tmp_path, steps=999))
    assert run.resumed is True and run.checkpoint["step"] == 7 and run.unreadable is None
    _checkpoint(tmp_path, _config(tmp_path, seed=config.seed + 5))  # config.yaml still matches
    with pytest.raises(presets.ConfigError) as error:
        open_rundir(config)
    assert str(error.value).startswith(
        f"{tmp_path} holds a run whose checkpoint (checkpoint.pt) differs from the given config:"
        f"\n  seed: saved {config.seed + 5}, given {config.seed}\nRerun ")


def test_an_unreadable_checkpoint_is_reported_for_commit(tmp_path):
    config = _config(tmp_path)
    RunDir(tmp_path, config, None, False).commit()
    _checkpoint(tmp_path, config)
    _checkpoint(tmp_path, config)  # now also checkpoint.prev.pt
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.warns(RuntimeWarning):
        run = open_rundir(config)
    assert run.resumed and run.unreadable == tmp_path / "checkpoint.pt"


def _loop(limit=0.5):
    opts = {k: types.SimpleNamespace(skipped=0) for k in ("model", "actor", "critic")}
    agent = types.SimpleNamespace(**{f"{k}_opt": v for k, v in opts.items()})
    loop = types.SimpleNamespace(agent=agent, updates=0, frames=0, skipped_mark=({}, 0),
                                 config=types.SimpleNamespace(skip_limit=limit))
    return loop, opts


def _check(loop):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_skipped(loop)  # where a warning must point: the caller (the loop)
    return caught


def test_skips_are_counted_per_optimiser_since_the_last_check():
    loop, opts = _loop()
    opts["actor"].skipped = 4  # before the first check: the baseline, not a warning
    assert _check(loop) == [] and loop.skipped_mark == ({"world-model": 0, "actor": 4,
                                                         "critic": 0}, 0)
    loop.updates, loop.frames = 10, 32
    opts["actor"].skipped, opts["critic"].skipped = 6, torch.tensor(1, dtype=torch.int32)
    caught = _check(loop)
    assert [str(w.message) for w in caught] == [
        "2 of the last 10 actor updates (up to frame 32) were skipped: non-finite gradients",
        "1 of the last 10 critic updates (up to frame 32) were skipped: non-finite gradients"]
    for w in caught:
        assert w.category is RuntimeWarning
        if "mutmut" not in w.filename:  # mutmut's trampoline adds a frame
            assert (w.filename, w.lineno) == (__file__, _check.__code__.co_firstlineno + 3)
    assert loop.skipped_mark == ({"world-model": 0, "actor": 6, "critic": 1}, 10)
    opts["model"].skipped = 3  # no update since the last check: nothing to judge yet
    assert _check(loop) == []
    loop.updates, opts["model"].skipped = 20, 4
    assert [str(w.message)[:36] for w in _check(loop)] == ["4 of the last 10 world-model updates"]


def test_the_stop_needs_ten_updates_and_more_than_the_limit():
    loop, opts = _loop(limit=0.5)
    check_skipped(loop)
    loop.updates, opts["model"].skipped = 9, 9  # all skipped, but fewer than 10 updates: wait
    assert _check(loop) == [] and loop.skipped_mark[1] == 0
    loop.updates, opts["model"].skipped = 10, 5  # 5 of 10 (two checks together): the limit
    assert len(_check(loop)) == 1
    loop.updates, opts["model"].skipped = 20, 11  # 6 of 10
    with pytest.raises(SkippedUpdates, match=r"^6 of the last 10 world-model updates \(up to "
                       r"frame 0\) were skipped: non-finite gradients; learning has stalled, "
                       r"stopping \(the replay or the weights hold non-finite values; the last "
                       r"checkpoint is unaffected\)$"):
        check_skipped(loop)


def _logger():
    log = types.SimpleNamespace(scalars=[], episodes=[], videos=[], added=[])
    log.scalar = lambda name, value: log.scalars.append((name, value))
    log.episode = lambda **record: log.episodes.append(record)
    log.video = lambda name, frames: log.videos.append((name, frames))
    log.add = lambda metrics, prefix=None: log.added.append((dict(metrics), prefix))
    return log


def _episode_loop(video=False, pretrained=True):
    def replay(name):
        return types.SimpleNamespace(added=[], stats={"name": name},
                                     add_episode=lambda ep: replays[name].added.append(ep))
    replays = {m: replay(m) for m in ("train", "eval")}
    writes = []
    loop = types.SimpleNamespace(
        train_replay=replays["train"], eval_replay=replays["eval"], pretrained=pretrained,
        eval_done=0, logger=_logger(), train_driver=types.SimpleNamespace(dropped=2), frames=80,
        step=20, every={"video_train": lambda s: video and s == 20, "video_eval": lambda s: video},
        video_keys=["image"], write=lambda: writes.append(1), crafter={"episodes": 0, "counts": {}})
    return loop, writes


def _crafter_episode(unlocked):
    ep = {"reward": np.array([0.0, 1.5, 2.25, 0.25], np.float32),
          "log_reward": np.array([0.0, 1.0, 0.5, 0.5]), "image": np.zeros((4, 2, 2, 3), np.uint8)}
    for name in ACHIEVEMENTS:
        ep[f"log_achievement_{name}"] = np.array([0, 0, 0, int(name in unlocked)])
    return ep


def test_a_train_episode_logs_return_length_and_counters_and_is_not_stored_again():
    loop, writes = _episode_loop(video=True)
    ep = _crafter_episode({"collect_wood"})
    ep["log_achievement_collect_wood"] = np.array([0, 1, 3, 2])  # the max counts, not the last
    per_episode(loop, ep, "train")  # stored before its last step's update (Driver.on_stores)
    assert loop.train_replay.added == [] and loop.eval_replay.added == [] and writes == [1]
    assert loop.eval_done == 0
    scalars = dict(loop.logger.scalars)
    assert scalars["train_return"] == 4.0 and scalars["train_length"] == 3
    assert scalars["sum_train_log_reward"] == 2.0 and scalars["dropped_episodes"] == 2
    assert scalars["max_train_log_achievement_collect_wood"] == 3.0
    assert scalars["max_train_log_achievement_wake_up"] == 0.0
    (record,) = loop.logger.episodes
    assert record["mode"] == "train" and record["episode_return"] == 4.0 and record["length"] == 3
    assert record["frames"] == 80 and record["achievement_collect_wood"] == 3
    assert record["achievement_wake_up"] == 0
    assert len(record) == 4 + len(ACHIEVEMENTS)
    assert [(n, f is ep["image"]) for n, f in loop.logger.videos] == [("train_policy_image", True)]
    assert loop.logger.added == [({"name": "train"}, "train")]
    assert loop.crafter["episodes"] == 1 and scalars["achievement_collect_wood"] == 100.0


def test_an_eval_episode_counts_only_after_the_prefill_and_skips_the_train_statistics():
    loop, writes = _episode_loop(video=False)
    ep = {"reward": np.array([0.0, 1e8, 1.0, -1e8], np.float32),  # float32 sums would lose the 1
          "log_achievement_eat_cow": np.array([0, 0, 1, 1])}  # not a train episode: no rates
    per_episode(loop, ep, "eval")
    assert loop.eval_replay.added == [ep] and loop.train_replay.added == []
    assert loop.eval_done == 1 and loop.logger.videos == [] and loop.crafter["episodes"] == 0
    assert dict(loop.logger.scalars) == {"eval_return": 1.0, "eval_length": 3,
                                         "max_eval_log_achievement_eat_cow": 1.0}
    assert loop.logger.added == [({"name": "eval"}, "eval")]
    per_episode(loop, ep, "eval")
    loop.pretrained = False  # the prefill's random eval episode
    per_episode(loop, ep, "eval")
    assert loop.eval_done == 2 and loop.crafter["episodes"] == 0


def test_crafter_success_rates_and_score_over_all_train_episodes():
    loop, _ = _episode_loop()
    crafter_stats(loop, {f"achievement_{n}": 0 for n in ACHIEVEMENTS} | {"achievement_wake_up": 2})
    crafter_stats(loop, {f"achievement_{n}": 0 for n in ACHIEVEMENTS} | {"achievement_eat_cow": 1})
    assert loop.crafter["episodes"] == 2
    assert loop.crafter["counts"]["achievement_wake_up"] == 1  # unlocked in 1 episode, not 2 times
    last = dict(loop.logger.scalars[-(len(ACHIEVEMENTS) + 1):])
    assert last["achievement_wake_up"] == 50.0 and last["achievement_eat_cow"] == 50.0
    assert last["achievement_collect_wood"] == 0.0
    expected = np.exp(np.mean([np.log(51.0)] * 2 + [0.0] * 20)) - 1  # the Crafter paper's score
    assert last["crafter_score"] == pytest.approx(expected)
    assert crafter_score({f"achievement_{n}": 0.0 for n in ACHIEVEMENTS}) == 0.0


def test_a_partial_achievement_set_logs_rates_but_no_score():
    loop, _ = _episode_loop()
    crafter_stats(loop, {"achievement_wake_up": 1})
    assert loop.logger.scalars == [("achievement_wake_up", 100.0)]


# ---- run_state.save ----------------------------------------------------------------------------


def _save_loop(logdir, stop=False, eval_env=True, overlap=False):
    """The parts of a `loop.Loop` that `run_state.save` reads, with recognisable values."""
    calls = {"write": 0, "taken": []}
    stats = {"train": {"total_episodes": 2}, "eval": {"total_episodes": 3}}

    def replay(mode):
        def add_episode(episode):
            calls.setdefault("added", []).append(episode)
            stats[mode]["total_episodes"] += 1  # as `Replay.add_episode` (it is stored)
        return types.SimpleNamespace(stats=stats[mode], add_episode=add_episode,
                                     state_dict=lambda: {"mode": mode})

    def write():  # `Loop.write` logs the scalars added so far: the log grows
        calls["write"] += 1
        with open(logdir / "metrics.jsonl", "a") as f:
            f.write('{"frames": 48}\n')

    def take_unfinished(i):
        calls["taken"].append(i)
        return {"reward": np.array([0.0, 1.0, 2.0])} if i == 0 else None

    train_states = [None, {"x": np.array([1.0, 2.0])}, None]
    driver = types.SimpleNamespace(
        state_dict=lambda: [None, {"obs": {"image": np.arange(4, dtype=np.uint8)}}, None],
        policy_state={"h": torch.tensor([5.0])}, dropped=4, take_unfinished=take_unfinished)
    loop = types.SimpleNamespace(
        logdir=logdir, config=_config(logdir), step=12, updates=3, pretrained=True,
        every={"train": Every(5, 10), "log": Every(50)}, write=write,
        agent=types.SimpleNamespace(state_dict=lambda: {"w": torch.tensor([1.5])}),
        train_envs=types.SimpleNamespace(get_states=lambda: list(train_states)),
        eval_env=types.SimpleNamespace(get_states=lambda: [{"y": np.array(3.0)}]) if eval_env
        else None,
        stop=types.SimpleNamespace(flag=stop), train_replay=replay("train"),
        eval_replay=replay("eval"), dataset=None, rng=np.random.default_rng(3),
        crafter={"episodes": 2, "counts": {"collect_wood": 1}}, restarts=2,
        train_driver=driver, last_eval=10, eval_done=1, owed=(11, 11),
        overlap=types.SimpleNamespace(generator=torch.Generator().manual_seed(9)) if overlap
        else None, last_save=0.0)
    return loop, calls


def test_save_writes_everything_a_resume_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(run_state.time, "monotonic", lambda: 1234.5)
    loop, calls = _save_loop(tmp_path, overlap=True)
    rng_before = loop.rng.bit_generator.state
    torch.manual_seed(17)
    torch_rng = torch.get_rng_state()
    run_state.save(loop)
    state = checkpoint.load(tmp_path / "checkpoint.pt")  # weights_only: plain data only
    assert set(state) == {
        "version", "config", "step", "updates", "pretrained", "every", "agent", "train_replay",
        "eval_replay", "rng", "loop_rng", "crafter", "restarts", "stored", "env_states",
        "driver", "policy_state", "last_eval", "eval_done", "dropped", "logs", "owed",
        "overlap_rng"}
    assert state["config"] == to_dict(loop.config)
    assert (state["step"], state["updates"], state["pretrained"]) == (12, 3, True)
    assert state["every"] == {"train": 10, "log": None}  # `Every.last`: None before its first
    assert state["agent"]["w"].tolist() == [1.5]
    assert state["train_replay"] == {"mode": "train"} and state["eval_replay"] == {"mode": "eval"}
    assert torch.equal(state["rng"]["torch"], torch_rng)
    assert state["loop_rng"] == rng_before
    assert state["crafter"] == {"episodes": 2, "counts": {"collect_wood": 1}}
    assert (state["restarts"], state["stored"]) == (2, 5)  # 2 train + 3 eval episode files
    env_states = state["env_states"]
    assert set(env_states) == {"train", "eval"}
    assert env_states["train"][0] is None and env_states["train"][2] is None
    assert env_states["train"][1]["x"].tolist() == [1.0, 2.0]  # numpy → tensor
    assert env_states["eval"][0]["y"].item() == 3.0
    assert state["driver"][1]["obs"]["image"].tolist() == [0, 1, 2, 3]
    assert state["driver"][0] is None and state["driver"][2] is None
    assert state["policy_state"]["h"].tolist() == [5.0]
    assert (state["last_eval"], state["eval_done"], state["dropped"]) == (10, 1, 4)
    assert state["owed"] == [11, 11] and isinstance(state["owed"], list)
    assert torch.equal(state["overlap_rng"], torch.Generator().manual_seed(9).get_state())
    # The log was written first, so a resume keeps the line written at this checkpoint.
    assert calls["write"] == 1
    assert state["logs"] == {"metrics.jsonl": len('{"frames": 48}\n'), "scores.jsonl": 0}
    assert calls["taken"] == [] and "added" not in calls  # not a stop: episodes go on
    assert loop.last_save == 1234.5


def test_save_without_eval_env_overlap_and_with_the_prefetched_replay_state(tmp_path):
    loop, _ = _save_loop(tmp_path, eval_env=False)
    prefetch = object.__new__(DevicePrefetch)  # no thread: only its resume point is read
    prefetch._resume = {"mode": "after the last batch handed out"}
    loop.dataset = prefetch  # issue 11: not the replay's state, which is batches ahead
    run_state.save(loop)
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    assert state["train_replay"] == {"mode": "after the last batch handed out"}
    assert state["env_states"]["eval"] == [] and state["overlap_rng"] is None
    loop.dataset = iter([])  # the plain path (an iterator, not a DevicePrefetch)
    run_state.save(loop)
    assert checkpoint.load(tmp_path / "checkpoint.pt")["train_replay"] == {"mode": "train"}


def test_a_stop_stores_the_unfinished_episodes_of_envs_without_state(tmp_path):
    loop, calls = _save_loop(tmp_path, stop=True)
    run_state.save(loop)
    # Envs 0 and 2 cannot save their state: their episodes cannot continue, so what they played
    # is stored (env 0's; env 2 has none); env 1 continues its episode on resume.
    assert calls["taken"] == [0, 2]
    assert [ep["reward"].tolist() for ep in calls["added"]] == [[0.0, 1.0, 2.0]]
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    assert state["stored"] == 6  # counted: a resume then sees the same number of files


def _restore_loop(loaded, overlap=True):
    """A fresh `loop.Loop` stand-in for `run_state.restore`, recording what it is given."""
    def replay(mode, episodes):
        return types.SimpleNamespace(stats={"total_episodes": episodes},
                                     load_state_dict=lambda s: loaded.update({mode: s}))
    ns = types.SimpleNamespace
    return ns(
        every={"train": Every(5), "log": Every(50, last=7)}, frames=0, pretrained=False,
        owed=[], crafter=None, rng=np.random.default_rng(0),
        agent=ns(load_state_dict=lambda s: loaded.update(agent=s), device="cpu"),
        train_replay=replay("train", 2), eval_replay=replay("eval", 3),
        train_driver=ns(dropped=0, load_state_dict=lambda d, p: loaded.update(driver=d)),
        train_envs=ns(set_states=lambda s: loaded.update(train_envs=s)),
        eval_env=ns(num_envs=1, set_states=lambda s: loaded.update(eval_envs=s)),
        overlap=ns(generator=torch.Generator().manual_seed(1),
                   reseed=lambda restarts, stored: loaded.update(reseed=(restarts, stored)))
        if overlap else None)


def test_restore_reads_back_what_save_wrote(tmp_path, capsys):
    loop, _ = _save_loop(tmp_path, overlap=True)
    run_state.save(loop)
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    loaded = {}
    fresh = _restore_loop(loaded)
    run_state.restore(fresh, state)
    assert fresh.pretrained is True and fresh.step == 12 and fresh.updates == 3
    assert fresh.every["train"].last == 10 and fresh.every["log"].last is None
    assert loaded["agent"]["w"].tolist() == [1.5]
    assert (loaded["train"], loaded["eval"]) == ({"mode": "train"}, {"mode": "eval"})
    assert fresh.owed == [11, 11]  # issue 11: the round due when it was written
    # No episode stored since: the collector's random stream continues too.
    assert torch.equal(fresh.overlap.generator.get_state(),
                       torch.Generator().manual_seed(9).get_state())
    assert "reseed" not in loaded and loaded["train_envs"][1]["x"].tolist() == [1.0, 2.0]
    # One stored since (6 files, not 5): fresh env streams and a fresh collector stream.
    fresh = _restore_loop(loaded)
    fresh.train_replay.stats["total_episodes"] = 3
    run_state.restore(fresh, state)
    assert loaded["reseed"] == (3, 6)  # restart 2 + 1, 3 + 3 episode files
    assert torch.equal(fresh.overlap.generator.get_state(),
                       torch.Generator().manual_seed(1).get_state())
    plain = _restore_loop(loaded, overlap=False)  # a checkpoint with `overlap`, resumed without
    run_state.restore(plain, state)
    assert plain.owed == [11, 11]  # run first by `Loop.collect`
    older = {k: v for k, v in state.items() if k not in ("owed", "overlap_rng")}
    fresh = _restore_loop(loaded)  # written before issue 11 (or with `overlap` off)
    run_state.restore(fresh, older)
    assert fresh.owed == []
    assert torch.equal(fresh.overlap.generator.get_state(),
                       torch.Generator().manual_seed(1).get_state())
