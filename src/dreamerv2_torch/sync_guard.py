"""A switch that makes host synchronisation inside a block an error (issue 11).

An update that reads a tensor's value on the host (`.item()`, `float()`, `int()`, `bool()` and
so `if tensor:`, `.cpu()`, `.numpy()`, `.tolist()`) makes the host wait for the device, so the
GPU idles while Python catches up. `no_host_sync()` raises `HostSyncError` on any of these calls
inside the block, on every device (so a CPU test catches them), and on CUDA also turns on
`torch.cuda.set_sync_debug_mode("error")`, which catches the synchronising operations that do not
pass through these Python methods (e.g. `nonzero`, blocking copies). For tests and
`benchmarks/gpu_check.py`; never switched on in training.
"""

from __future__ import annotations

import contextlib
import threading

import torch

GUARDED = ("item", "__float__", "__int__", "__bool__", "__index__", "cpu", "numpy", "tolist")
_local = threading.local()


class HostSyncError(RuntimeError):
    """A tensor's value was read on the host inside `no_host_sync()`."""


def _guard(name: str, original):
    def guarded(self, *args, **kwargs):
        if getattr(_local, "active", False) and threading.current_thread() is _local.thread:
            raise HostSyncError(f"Tensor.{name}() inside no_host_sync(): a host synchronisation "
                                f"(tensor of shape {tuple(self.shape)} on {self.device})")
        return original(self, *args, **kwargs)
    guarded.__wrapped__ = original
    return guarded


@contextlib.contextmanager
def no_host_sync(cuda: bool | None = None):
    """Raise `HostSyncError` on reading a tensor's value in the host inside the block.

    `cuda`: also CUDA's sync debug mode (default: when CUDA is initialised).
    """
    originals = {name: getattr(torch.Tensor, name) for name in GUARDED}
    for name, original in originals.items():
        setattr(torch.Tensor, name, _guard(name, original))
    _local.active, _local.thread = True, threading.current_thread()
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized() if cuda is None else cuda
    if cuda:
        torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        _local.active = False
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
