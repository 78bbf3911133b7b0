"""An update reads no tensor on the host: no `.item()`, `float()`, `bool()`, `.cpu()` (issue 11).

`no_host_sync` (the switchable guard) turns each such read into an error; on CUDA it also turns
on CUDA's sync debug mode (`tests/test_gpu.py`). Also the loop-side half: update metrics are
summed on the device and read once per log write.
"""

from __future__ import annotations

import pytest
import torch
from test_fastpath import make_agent, make_batch

from dreamerv2_torch.device_metrics import DeviceMetrics
from dreamerv2_torch.sync_guard import HostSyncError, no_host_sync

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("precision", [32, 16])
def test_update_has_no_host_sync(precision):
    agent = make_agent(precision=precision)
    batch = {k: torch.as_tensor(v) for k, v in make_batch().items()}
    agent.train(batch)  # the first update may set things up
    with no_host_sync():
        metrics = agent.train(batch)
    assert all(isinstance(v, torch.Tensor) for v in metrics.values())
    assert torch.isfinite(torch.stack([v.float() for v in metrics.values()])).all()


def test_guard_catches_each_kind_of_read():
    t = torch.ones(())
    for read in (lambda: t.item(), lambda: float(t), lambda: int(t), lambda: bool(t),
                 lambda: t.cpu(), lambda: t.numpy(), lambda: t.tolist()):
        with no_host_sync(), pytest.raises(HostSyncError):
            read()
    assert float(t) == 1.0 and t.item() == 1.0  # switched off again after the block


def test_device_metrics_means_once_per_pop():
    metrics = DeviceMetrics()
    metrics.add({"a": torch.tensor(1.0), "b": torch.tensor(4.0)})
    with no_host_sync():  # adding is device work only
        metrics.add({"a": torch.tensor(3.0)})
    assert metrics.pop() == {"a": 2.0, "b": 4.0}
    assert metrics.pop() == {}

