"""Replay batches prefetched to the device give the same batches, the same resume point and the
same update as the plain path (issue 11). On the CPU `auto` is a no-op; `on` forces the thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_replay import fill

from dreamerv2_torch.prefetch import DevicePrefetch, device_batches
from dreamerv2_torch.replay import Replay


def replay_with_data(path) -> Replay:
    replay = Replay(path, capacity=10_000, minlen=10, maxlen=10, seed=3)
    fill(replay, [60, 75, 90])
    return replay


def test_auto_is_a_no_op_on_cpu(tmp_path):
    source = iter([{"a": np.zeros(1)}])
    assert device_batches(source, torch.device("cpu"), "auto") is source
    assert device_batches(source, torch.device("cpu"), "off") is source
    assert isinstance(device_batches(source, torch.device("cpu"), "on"), DevicePrefetch)


def test_same_batches_and_resume_point_as_the_plain_path(tmp_path):
    plain_replay = replay_with_data(tmp_path / "a")
    plain = plain_replay.dataset(4, 10)
    fast_replay = replay_with_data(tmp_path / "b")
    fast = device_batches(fast_replay.dataset(4, 10), torch.device("cpu"), "on", fast_replay)
    for _ in range(5):
        a, b = next(plain), next(fast)
        assert set(b) == {k for k, v in a.items() if v.dtype != object}
        for key, value in b.items():
            assert isinstance(value, torch.Tensor)
            np.testing.assert_array_equal(value.numpy(), a[key])
    # The prefetcher has drawn further ahead, but the checkpointed stream state is the one
    # after the 5 batches used: a resumed run continues with batch 6.
    assert fast.resume_state() == plain_replay.state_dict()
    fast.close()


def test_errors_reach_the_consumer():
    def broken():
        yield {"a": np.zeros(2)}
        raise RuntimeError("replay broke")

    batches = DevicePrefetch(broken(), torch.device("cpu"))
    assert next(batches)["a"].shape == (2,)
    with pytest.raises(RuntimeError, match="replay broke"):
        next(batches)


def test_training_with_prefetch_on(tmp_path):
    """The whole loop (debug preset, CPU) with the thread forced on: the same losses as off while
    the replay does not change (prefill, then the first updates); afterwards batches are drawn up
    to `depth` + 1 updates earlier, so they may lack the newest episodes (docs/parity.md)."""
    import subprocess
    import sys

    from dreamerv2_torch.logger import read_jsonl

    def train(switch):
        logdir = tmp_path / switch
        subprocess.run([sys.executable, "-m", "dreamerv2_torch", "train", "--preset", "debug",
                        "--task", "dummy_discrete", "--threads", "1", "--steps", "250",
                        "--log_keys_video", "--logdir", str(logdir), "--prefetch", switch],
                       check=True, capture_output=True, timeout=300)
        return [m["model_loss"] for m in read_jsonl(logdir / "metrics.jsonl")
                if "model_loss" in m]

    on, off = train("on"), train("off")
    assert on[0] == off[0] and len(on) == len(off) >= 3
