"""Contract tests of the replay (spec §4): files, reload, capacity, sampling rules, seeding."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from dreamerv2_torch.replay import Replay, time_sample

KEYS = {"image", "vector", "action", "reward", "is_first", "is_last", "is_terminal", "count"}


def make_episode(eplen: int, ident: int) -> dict[str, np.ndarray]:
    """An episode whose ``vector`` row t is (t, ident), so a sample reveals where it came from."""
    steps = np.arange(eplen + 1)
    is_first = steps == 0
    return {
        "image": np.full((eplen + 1, 4, 4, 1), ident % 256, np.uint8),
        "vector": np.stack([steps, np.full_like(steps, ident)], -1).astype(np.float64),
        "action": np.eye(3, dtype=np.float32)[steps % 3] * (~is_first)[:, None],
        "reward": np.ones(eplen + 1) * (~is_first),
        "is_first": is_first,
        "is_last": steps == eplen,
        "is_terminal": steps == eplen,
        "count": steps.astype(np.int64),
        "log_extra": steps.astype(np.float64),
    }


def fill(replay: Replay, eplens: list[int], first_ident: int = 0) -> list[Path]:
    return [replay.add_episode(make_episode(n, first_ident + i)) for i, n in enumerate(eplens)]


def test_write_reload_same_episodes(tmp_path: Path) -> None:
    writer = Replay(tmp_path, capacity=10_000)
    paths = fill(writer, [60, 75, 120])
    reader = Replay(tmp_path, capacity=10_000)
    reader.load()
    assert sorted(reader.episode_files()) == sorted(p.name for p in paths)
    assert (
        reader.stats
        == writer.stats
        == {
            "total_steps": 255,
            "total_episodes": 3,
            "loaded_steps": 255,
            "loaded_episodes": 3,
        }
    )
    for path in paths:
        loaded, written = reader.episode(path.name), writer.episode(path.name)
        assert set(loaded) == KEYS
        for key in KEYS:
            np.testing.assert_array_equal(loaded[key], written[key])
            assert loaded[key].dtype == written[key].dtype
    with np.load(paths[0]) as data:  # storage dtypes of spec §4; log_* keys kept on disk
        assert data["vector"].dtype == np.float32 and data["reward"].dtype == np.float32
        assert data["count"].dtype == np.int32 and data["image"].dtype == np.uint8
        assert "log_extra" in data.files


def test_file_names_carry_eplen_and_no_temp_files(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=10_000)
    for path, eplen in zip(fill(replay, [50, 64, 99]), [50, 64, 99], strict=True):
        assert re.fullmatch(rf"\d{{8}}T\d{{6}}-\d{{8}}-[0-9a-f]{{32}}-{eplen}\.npz", path.name)
    assert all(p.suffix == ".npz" for p in tmp_path.iterdir())
    (tmp_path / ".stale.npz.part").write_bytes(b"half an episode")  # a crash mid-write
    reader = Replay(tmp_path, capacity=10_000)
    reader.load()
    assert reader.stats["loaded_episodes"] == 3


def test_corrupt_file_skipped_with_warning_and_untouched(tmp_path: Path) -> None:
    good, bad = fill(Replay(tmp_path, capacity=10_000), [60, 70])
    content = bad.read_bytes()[: len(bad.read_bytes()) // 2]
    bad.write_bytes(content)  # a truncated, non-atomic copy
    reader = Replay(tmp_path, capacity=10_000)
    with pytest.warns(UserWarning, match=re.escape(bad.name)):
        reader.load()
    assert reader.episode_files() == [good.name]
    assert bad.read_bytes() == content
    assert reader.stats["total_episodes"] == 2  # its steps were taken, so they count


def test_short_episodes_dropped(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=10_000, minlen=50)
    assert replay.add_episode(make_episode(49, 0)) is None
    assert list(tmp_path.iterdir()) == []
    assert replay.stats == dict.fromkeys(replay.stats, 0)


def test_capacity_evicts_oldest_whole_episodes_in_memory_only(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=250)
    paths = fill(replay, [100, 100, 100, 100])
    assert replay.episode_files() == [p.name for p in paths[2:]]
    assert replay.stats == {
        "total_steps": 400,
        "total_episodes": 4,
        "loaded_steps": 200,
        "loaded_episodes": 2,
    }
    assert all(p.exists() for p in paths)
    reader = Replay(tmp_path, capacity=250)
    reader.load()  # newest by name first, up to and including the one that reaches capacity
    assert reader.episode_files() == sorted(p.name for p in paths)[1:]
    assert reader.stats["total_steps"] == 400
    assert reader.stats["loaded_steps"] == 300  # the official loader also keeps 3 here


@pytest.mark.parametrize(("capacity", "loaded"), [(99, 1), (100, 1), (101, 2), (200, 2),
                                                  (250, 3), (300, 3), (301, 4), (10_000, 4)])
def test_reload_keeps_the_official_number_of_episodes(tmp_path: Path, capacity: int,
                                                      loaded: int) -> None:
    """Official `load_episodes`: count newest first and stop after the episode at which the
    summed steps reach `capacity`; the next add_episode then evicts down to capacity."""
    paths = fill(Replay(tmp_path, capacity=10_000), [100, 100, 100, 100])
    reader = Replay(tmp_path, capacity=capacity)
    reader.load()
    assert reader.episode_files() == sorted(p.name for p in paths)[4 - loaded:]
    assert reader.stats["loaded_steps"] == 100 * loaded
    reader.add_episode(make_episode(100, 7))
    assert reader.stats["loaded_steps"] <= max(capacity, 100)
    assert reader.episode_files()[-1] != sorted(p.name for p in paths)[-1]


def test_episode_longer_than_capacity_is_kept(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=60)
    fill(replay, [55, 300, 55], first_ident=1)
    assert replay.stats["loaded_episodes"] == 1
    fill(replay, [300], first_ident=9)  # a lone long episode evicts the rest, but stays
    assert replay.stats["loaded_steps"] == 300
    batch = replay.sample(8, 50)
    assert (batch["vector"][..., 1] == 9).all()


def check_contiguous(batch: dict[str, np.ndarray], lengths: dict[int, int]) -> None:
    steps, ident = batch["vector"][..., 0], batch["vector"][..., 1]
    assert (np.diff(steps, axis=1) == 1).all()
    assert (ident == ident[:, :1]).all()
    assert (steps >= 0).all()
    assert all(steps[b, -1] <= lengths[int(ident[b, 0])] for b in range(len(steps)))


def test_standard_sample_shapes_dtypes_is_first_and_contiguity(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=10_000)
    lengths = {0: 50, 1: 80, 2: 200}
    fill(replay, list(lengths.values()))
    for _ in range(20):
        batch = replay.sample(16, 50)
        assert set(batch) == KEYS
        assert batch["image"].shape == (16, 50, 4, 4, 1) and batch["image"].dtype == np.uint8
        assert batch["action"].shape == (16, 50, 3) and batch["action"].dtype == np.float32
        assert batch["reward"].shape == (16, 50) and batch["count"].dtype == np.int32
        assert batch["is_first"][:, 0].all() and not batch["is_first"][:, 1:].any()
        check_contiguous(batch, lengths)
        # Images agree with the episode identity of the same rows.
        assert (batch["image"][:, :, 0, 0, 0] == batch["vector"][..., 1]).all()


@pytest.mark.parametrize("prioritize", [True, False])
def test_prioritize_ends_gives_the_final_window_more_mass(tmp_path: Path, prioritize) -> None:
    replay = Replay(tmp_path, capacity=10_000, prioritize_ends=prioritize, seed=1)
    fill(replay, [200])
    starts = np.concatenate([replay.sample(50, 50)["vector"][:, 0, 0] for _ in range(40)])
    final = np.mean(starts == 151)  # uniform: 1/152; prioritised: 51/202 ~ 0.25
    assert (final > 0.15) if prioritize else (final < 0.03)
    assert starts.max() == 151 and starts.min() == 0


def test_debug_config_chunks_continue_sequences_across_boundaries(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=10_000, minlen=10, maxlen=30, seed=2)
    lengths = {0: 12, 1: 45, 2: 60}
    fill(replay, list(lengths.values()))
    batches = [replay.sample(4, 10) for _ in range(30)]
    first = np.concatenate([b["is_first"].reshape(-1) for b in batches])
    vector = np.concatenate([b["vector"].reshape(-1, 2) for b in batches])
    assert first[0] and first.reshape(-1, 10)[:, 1:].any()  # is_first inside some chunks
    bounds = np.flatnonzero(first).tolist()
    for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
        segment = vector[begin:end]
        assert 10 <= len(segment) <= 30, len(segment)
        assert (np.diff(segment[:, 0]) == 1).all() and (segment[:, 1] == segment[0, 1]).all()
        assert segment[-1, 0] <= lengths[int(segment[0, 1])]


def test_eviction_drops_a_pending_leftover(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=100, minlen=10, maxlen=30, seed=0)
    fill(replay, [90])
    replay.sample(1, 7)  # leaves part of a sequence pending
    fill(replay, [90], first_ident=5)  # evicts its episode
    batch = replay.sample(4, 10)
    assert (batch["vector"][..., 1] == 5).all() and batch["is_first"][0, 0]


def loaded(directory: Path, **kwargs) -> Replay:
    replay = Replay(directory, capacity=10_000, **kwargs)
    replay.load()
    return replay


def test_same_seed_same_samples(tmp_path: Path) -> None:
    fill(Replay(tmp_path, capacity=10_000), [60, 90, 130])
    one, two, other = loaded(tmp_path, seed=3), loaded(tmp_path, seed=3), loaded(tmp_path, seed=4)
    a, b, c = (r.sample(8, 50)["vector"] for r in (one, two, other))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


@pytest.mark.parametrize("minlen,maxlen,length", [(50, 50, 50), (10, 30, 10)])
def test_state_dict_round_trip_continues_the_stream(tmp_path: Path, minlen, maxlen, length):
    fill(Replay(tmp_path, capacity=10_000, minlen=minlen), [60, 90, 130])
    kwargs = {"minlen": minlen, "maxlen": maxlen, "seed": 5}
    before = loaded(tmp_path, **kwargs)
    before.sample(3, 7)  # in the debug config this leaves a sequence half used
    state = json.loads(json.dumps(before.state_dict()))
    assert plain(state)
    expected = [before.sample(4, length)["vector"] for _ in range(3)]
    after = loaded(tmp_path, **kwargs)
    after.load_state_dict(state)
    for want in expected:
        np.testing.assert_array_equal(after.sample(4, length)["vector"], want)


def test_dataset_prefetches_and_stops(tmp_path: Path) -> None:
    fill(Replay(tmp_path, capacity=10_000), [60, 90, 130])
    direct = loaded(tmp_path, seed=7)
    expected = [direct.sample(4, 50)["vector"] for _ in range(4)]
    replay = loaded(tmp_path, seed=7)
    dataset = replay.dataset(4, 50, prefetch=2)
    for want in expected[:3]:
        batch = next(dataset)
        assert batch["image"].shape == (4, 50, 4, 4, 1)
        np.testing.assert_array_equal(batch["vector"], want)
    state = replay.state_dict()  # after the 3 batches handed out, not the prefetched ones
    dataset.close()
    assert not any(t.name == "replay-prefetch" for t in threading.enumerate())
    resumed = loaded(tmp_path, seed=0)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.sample(4, 50)["vector"], expected[3])


def test_time_sample_reports_seconds(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=10_000)
    fill(replay, [60])
    assert 0 < time_sample(replay, 4, 50, repeats=3) < 1
