"""Replay batches moved to the training device ahead of use (issue 11).

The replay already samples the next numpy batch in its own thread (`Replay.dataset`). On CUDA the
remaining cost before an update is the host-to-device copy: from pageable memory it is a blocking
copy that also synchronises the stream. `DevicePrefetch` does it in a background thread instead:
the batch is copied into pinned (page-locked) memory and sent with `non_blocking=True` on a side
stream, and the update's stream waits on that copy's event, not the host. On the CPU there is no
copy to hide: `device_batches` then returns the replay's iterator unchanged (switch `prefetch`
`auto` = on for CUDA only; `on` forces the thread on any device, for tests).

The replay's checkpointed sampling state must be that after the last batch *used*, not the last
one prefetched, or a resumed run would skip the batches waiting here: each batch carries the
replay state read right after it was drawn, and `resume_state()` returns the one of the last batch
handed out (the loop checkpoints that instead of `Replay.state_dict()`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Mapping

import numpy as np
import torch


def device_batches(source: Iterator[Mapping[str, np.ndarray]], device: torch.device,
                   switch: str = "auto", replay=None, depth: int = 2):
    """`source` as is (`off`, or `auto` off CUDA), or a `DevicePrefetch` over it."""
    if switch == "off" or (switch == "auto" and device.type != "cuda"):
        return source
    return DevicePrefetch(source, device, replay, depth)


class DevicePrefetch:
    """Iterator of dicts of device tensors, prepared `depth` batches ahead by a daemon thread."""

    def __init__(self, source: Iterator[Mapping[str, np.ndarray]], device: torch.device,
                 replay=None, depth: int = 2):
        self.source, self.device, self.replay = source, torch.device(device), replay
        self.cuda = self.device.type == "cuda"
        # The stream state before anything is drawn (the replay's dataset starts at first next).
        self._resume = replay.state_dict() if replay is not None else None
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.items: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, name="device-prefetch", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                batch = next(self.source)
                state = self.replay.state_dict() if self.replay is not None else None
                self.items.put((self._to_device(batch), state))
        except Exception as error:  # noqa: BLE001 - re-raised in the consumer
            self.items.put((error, "error"))

    def _to_device(self, batch: Mapping[str, np.ndarray]):
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()
                   if not k.startswith("log_") and v.dtype != object}
        if not self.cuda:
            return {k: v.to(self.device) for k, v in tensors.items()}, None
        with torch.cuda.stream(self.stream):
            out = {k: v.pin_memory().to(self.device, non_blocking=True)
                   for k, v in tensors.items()}
            event = torch.cuda.Event()
            event.record(self.stream)
        return out, event

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        item, state = self.items.get()
        if isinstance(state, str) and state == "error":
            raise item
        batch, event = item
        if event is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(event)  # the update's stream waits on the copy; the host does not
            for value in batch.values():
                value.record_stream(stream)  # its memory is in use on this stream from now on
        self._resume = state
        return batch

    def resume_state(self) -> dict | None:
        """The replay's sampling state right after the last batch handed out."""
        return self._resume

    def close(self) -> None:
        self.stop.set()
        while self.thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self.items.get(timeout=0.01)
        with contextlib.suppress(AttributeError):
            self.source.close()
