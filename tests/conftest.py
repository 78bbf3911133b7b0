"""Shared fixtures, and the thread budget of parallel test workers."""

from __future__ import annotations

import os

import pytest
import torch


def pytest_configure(config):
    """Under pytest-xdist (`pytest -n N`), split the cores between the N workers: each worker and
    the training processes its tests start get cores // N intra-op threads. Without this every
    worker takes all cores, and OpenMP threads that wait for a busy core make small ops ~1000x
    slower (a 1x32x32 softmax: 3 us on one thread, 3 ms on two threads of a busy 2-core box)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the tests' subprocesses
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    """Run a test on one intra-op thread: with tiny tensors a second thread only adds contention on
    a shared CPU. Request it with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
