"""Tests written for replay mutants that survived tools/parity/mutation.sh (docs/parity.md,
"Mutation testing", "replay, env and resume code"): the official defaults, the capacity boundary,
the start distributions of spec §4 (hand-computed), the chunk stream, errors, the prefetch thread
and the stream-state format."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from thread_support import Lingering, assert_closes_promptly

from dreamerv2_torch import replay as replay_module
from dreamerv2_torch.replay import Replay, time_sample


def episode(eplen: int, ident: int = 0) -> dict[str, np.ndarray]:
    """Row t holds (t, ident) in ``vector``, so a sample shows where it came from."""
    steps = np.arange(eplen + 1)
    return {"vector": np.stack([steps, np.full_like(steps, ident)], -1).astype(np.float32),
            "image": np.full((eplen + 1, 2, 3, 1), ident, np.uint8)}


def starts_of(batch: dict[str, np.ndarray]) -> np.ndarray:
    """The episode step at which each freshly started sequence of a batch begins."""
    return batch["vector"][..., 0][batch["is_first"]]


def test_defaults_are_the_official_replay_settings(tmp_path: Path) -> None:
    """Official config: minlen = maxlen = 50, prioritize_ends = True; the default seed is 0."""
    Replay(tmp_path, capacity=1000).add_episode(episode(120))
    default, explicit = Replay(tmp_path, 1000), Replay(tmp_path, 1000, 50, 50, True, 0)
    for replay in (default, explicit):
        replay.load()
    for _ in range(3):
        np.testing.assert_array_equal(default.sample(16, 50)["vector"],
                                      explicit.sample(16, 50)["vector"])


@pytest.mark.parametrize(("eplens", "kept"), [([50, 50], [0, 1]), ([50, 51], [1]),
                                              ([50, 50, 50], [1, 2])])
def test_capacity_boundary_and_stored_rows(tmp_path: Path, eplens, kept) -> None:
    """capacity = 100 steps holds two 50-step episodes (102 rows) but not 50 + 51 steps; the
    official insert-then-evict keeps the newest episodes whose steps fit."""
    replay = Replay(tmp_path, capacity=100)
    paths = [replay.add_episode(episode(n, i)) for i, n in enumerate(eplens)]
    assert replay.episode_files() == [paths[i].name for i in kept]
    assert replay.stats["loaded_steps"] == sum(eplens[i] for i in kept)
    for i in kept:
        got = replay.episode(paths[i].name)
        for key, value in episode(eplens[i], i).items():
            np.testing.assert_array_equal(got[key], value)


def test_errors_name_the_problem(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=1000)
    with pytest.raises(AssertionError, match="^the replay holds no episodes yet$"):
        replay.sample(1, 50)
    replay.add_episode(episode(60))
    with pytest.raises(RuntimeError, match=r"^load\(\) must run before the first add_episode\(\)$"):
        replay.load()
    wrong = episode(60)
    wrong["image"] = np.zeros((61, 3, 3, 1), np.uint8)  # differs in a non-leading dimension
    with pytest.raises(ValueError, match="^episode keys/shapes/dtypes .* differ from the replay's"):
        replay.add_episode(wrong)
    assert len(list(tmp_path.glob("*.npz"))) == 1  # refused before writing


def test_a_file_whose_name_lies_about_its_length_is_skipped_with_a_warning(tmp_path: Path):
    path = Replay(tmp_path, capacity=1000).add_episode(episode(60))
    path.rename(path.with_name(path.name.replace("-60.npz", "-61.npz")))
    reader = Replay(tmp_path, capacity=1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader.load()
    (warning,) = caught
    assert str(warning.message).endswith(": AssertionError('lengths differ from name')")
    # Attributed to the caller of load(), not to replay.py (mutmut's trampoline adds frames).
    assert Path(warning.filename) != Path(replay_module.__file__)
    if "mutmut" not in warning.filename:
        assert warning.filename == __file__
    assert reader.stats["loaded_episodes"] == 0


@pytest.mark.parametrize(("minlen", "length"), [(50, 50), (10, 5)])
def test_is_first_is_a_bool_array(tmp_path: Path, minlen, length) -> None:
    replay = Replay(tmp_path, capacity=1000, minlen=minlen, maxlen=minlen)
    replay.add_episode(episode(60))
    assert replay.sample(3, length)["is_first"].dtype == np.bool_


@pytest.mark.parametrize("prioritize", [False, True])
@pytest.mark.parametrize(("minlen", "eplen", "length"), [(50, 52, 50), (10, 12, 5)])
def test_start_distribution_of_the_official_rule(tmp_path: Path, prioritize, minlen, eplen,
                                                 length) -> None:
    """A sequence of `minlen` rows in an episode of `minlen + 3` rows starts at 0..3. Official:
    index = min(randint(rows - minlen + 1 + (minlen if prioritize_ends else 0)), rows - minlen),
    so uniform 1/4 each, or with prioritize_ends 1/(4 + minlen) for 0..2 and the rest at 3. The
    first case is one chunk per sequence, the second two chunks (the general path)."""
    replay = Replay(tmp_path, capacity=1000, minlen=minlen, maxlen=minlen,
                    prioritize_ends=prioritize, seed=4)
    replay.add_episode(episode(eplen))
    starts = np.concatenate([starts_of(replay.sample(400, length)) for _ in range(10)])
    assert len(starts) >= 2000
    share = np.bincount(starts.astype(int), minlength=4) / len(starts)
    low = 1 / (4 + minlen) if prioritize else 1 / 4
    np.testing.assert_allclose(share, [low, low, low, 1 - 3 * low], atol=0.025)


def test_sequences_of_varying_length_are_cut_into_chunks_of_maxlen(tmp_path: Path) -> None:
    """minlen < maxlen = length: sequences of 10..30 rows are concatenated, so sequence starts
    (is_first) fall inside chunks (official `_generate_chunks`)."""
    replay = Replay(tmp_path, capacity=1000, minlen=10, maxlen=30, seed=1)
    replay.add_episode(episode(80))
    batch = replay.sample(8, 30)
    assert batch["is_first"][:, 1:].any()
    assert (np.diff(batch["vector"][..., 0], axis=1)[~batch["is_first"][:, 1:]] == 1).all()


def test_a_sequence_longer_than_the_chunk_continues_in_the_next_row(tmp_path: Path) -> None:
    """minlen = maxlen = 50 and chunks of 25: each sequence fills two consecutive rows."""
    replay = Replay(tmp_path, capacity=1000, seed=2)
    replay.add_episode(episode(90))
    batch = replay.sample(4, 25)
    assert batch["is_first"][:, 0].tolist() == [True, False, True, False]
    steps = batch["vector"][..., 0]
    np.testing.assert_array_equal(steps[1], steps[0] + 25)
    np.testing.assert_array_equal(steps[3], steps[2] + 25)


def test_a_pending_sequence_is_finished_before_a_new_one(tmp_path: Path) -> None:
    """A chunk of 30 leaves 20 rows of a 50-row sequence; the next batch starts with them even
    at the standard length (then a new sequence starts at row 20)."""
    replay = Replay(tmp_path, capacity=1000, seed=3)
    replay.add_episode(episode(90))
    head = replay.sample(1, 30)["vector"][0, :, 0]
    batch = replay.sample(2, 50)
    np.testing.assert_array_equal(batch["vector"][0, :20, 0], head[-1] + 1 + np.arange(20))
    assert np.flatnonzero(batch["is_first"][0]).tolist() == [20]


def test_sampling_error_is_raised_in_the_consumer(tmp_path: Path) -> None:
    dataset = Replay(tmp_path, capacity=1000).dataset(2, 50)
    with pytest.raises(AssertionError, match="holds no episodes"):
        next(dataset)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "replay-prefetch"]


def test_prefetch_runs_in_one_named_daemon_thread(tmp_path: Path) -> None:
    """A daemon never keeps the interpreter alive at exit; the name makes it findable."""
    replay = Replay(tmp_path, capacity=1000)
    replay.add_episode(episode(60))
    dataset = replay.dataset(2, 50)
    next(dataset)
    (thread,) = prefetch_threads()
    assert thread.daemon
    dataset.close()
    assert not thread.is_alive()


def test_close_waits_out_a_worker_that_puts_nothing_more(tmp_path: Path, monkeypatch) -> None:
    """The worker can still be alive after its last put (between the put and its exit): close
    must poll, neither block on an empty queue nor fail on `queue.Empty`, nor wait long."""
    monkeypatch.setattr(replay_module.threading, "Thread", Lingering)
    replay = Replay(tmp_path, capacity=1000)
    replay.add_episode(episode(60))
    dataset = replay.dataset(2, 50, prefetch=1)
    next(dataset)
    assert_closes_promptly(dataset.close)


def test_stream_state_format_and_round_trip(tmp_path: Path) -> None:
    """The checkpoint's replay entry: {"rng": JSON text, "leftover": None or [name, ...]}."""
    replay = Replay(tmp_path, capacity=1000, minlen=10, maxlen=30, seed=6)
    replay.add_episode(episode(60))
    fresh = replay.state_dict()
    assert set(fresh) == {"rng", "leftover"} and fresh["leftover"] is None
    assert json.loads(fresh["rng"])["bit_generator"] == "PCG64"
    replay.sample(1, 7)
    pending = replay.state_dict()
    assert set(pending) == {"rng", "leftover"}
    assert pending["leftover"][0] == replay.episode_files()[0]
    other = Replay(tmp_path, capacity=1000, minlen=10, maxlen=30)
    other.load()
    other.load_state_dict(pending)
    assert other.state_dict() == pending


def test_time_sample_times_one_call_per_repeat(tmp_path: Path, monkeypatch) -> None:
    """One untimed warm-up call, then `repeats` (default 20) single timed calls."""
    replay = Replay(tmp_path, capacity=1000)
    replay.add_episode(episode(60))
    calls = []
    sample = replay.sample
    monkeypatch.setattr(replay, "sample", lambda *args: calls.append(args) or sample(*args))
    assert time_sample(replay, 2, 50) > 0
    assert calls == [(2, 50)] * 21
    calls.clear()
    time_sample(replay, 2, 50, repeats=3)
    assert len(calls) == 4
