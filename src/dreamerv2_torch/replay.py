"""Episode replay (spec §4; official ``dreamerv2/common/replay.py``): numpy + stdlib, never torch.

Finished episodes (N+1 rows, spec §0) go atomically to compressed ``.npz`` files (never deleted)
and stay in RAM up to ``capacity`` policy steps, FIFO by whole episodes; sequences come from
uniformly chosen episodes by the official length and end-prioritised start rules. RAM: one ring
per key in its own dtype (uint8 stays uint8; ``np.zeros``, so untouched pages cost nothing); an
episode takes N+1 consecutive rows (mod ``slots``). Loaded episodes have eplen >= minlen, so
``slots = capacity + capacity // minlen + 1`` always holds them; one longer episode is kept (spec:
at least one) by growing the ring. ``log_*`` keys are written to disk only (never sampled).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import queue
import re
import threading
import timeit
import uuid
import warnings
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

# `{time}-{index}-{uuid}-{eplen}.npz` (issue 9: `index` counts the directory's episodes, so the
# reload order is the insertion order even within one second or when the clock goes back); the
# official `{time}-{uuid}-{eplen}.npz` still loads, before any indexed name.
_NAME = re.compile(r"^\d{8}T\d{6}(?:-(\d+))?-[0-9a-f]{32}-(\d+)\.npz$")
Batch = dict[str, np.ndarray]


class _Span(NamedTuple):
    name: str
    start: int  # absolute row, growing with age order (unique); the ring row is start % slots
    size: int  # N + 1 rows


def convert(value: Any) -> np.ndarray:
    """Storage dtype of spec §4: floats -> float32, signed ints -> int32, the rest unchanged."""
    value = np.asarray(value)
    dtype = {"f": np.float32, "i": np.int32}.get(value.dtype.kind)
    return value.astype(dtype, copy=False) if dtype else value


class Replay:
    """Episodes on disk and in RAM; uniform-episode sequence sampling (spec §4)."""

    def __init__(
        self,
        directory: Path,
        capacity: int,
        minlen: int = 50,
        maxlen: int = 50,
        prioritize_ends: bool = True,
        seed: int = 0,
    ):
        assert capacity >= 1 and 1 <= minlen <= maxlen, f"bad {capacity=} {minlen=} {maxlen=}"
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.capacity, self.minlen, self.maxlen = int(capacity), int(minlen), int(maxlen)
        self.prioritize_ends = bool(prioritize_ends)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()  # the prefetch thread samples while add_episode writes
        self._slots = self.capacity + self.capacity // self.minlen + 1
        self._ring: Batch = {}
        self._spans: deque[_Span] = deque()
        self._table: tuple | None = None  # cached (starts, sizes, spans) of the loaded episodes
        self._leftover: tuple | None = None  # (span, offset, rows, fresh) to continue
        self._resume: dict | None = None  # stream state after the last prefetched batch used
        self._head = 0  # the absolute row after the newest episode
        self._loaded_steps = self._total_steps = self._total_episodes = 0
        self._index = 0  # the next file's index

    def add_episode(self, episode: Batch) -> Path | None:
        """Write a finished episode atomically and keep it in RAM; None if eplen < minlen."""
        episode = {k: convert(v) for k, v in episode.items()}
        sizes = {k: len(v) for k, v in episode.items()}
        assert len(set(sizes.values())) == 1, f"episode keys differ in length: {sizes}"
        eplen = max(sizes.values()) - 1
        if eplen < self.minlen:
            return None  # the official replay neither stores nor counts these
        kept = {k: v for k, v in episode.items() if not k.startswith("log_")}
        if self._ring:
            self._check(kept)  # before writing, so a mismatching episode leaves no file
        stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
        path = self.directory / f"{stamp}-{self._index:08d}-{uuid.uuid4().hex}-{eplen}.npz"
        # A temp name outside the *.npz glob, renamed once complete: a crash never leaves a
        # truncated episode file behind (a stale temp file is ignored by load()).
        tmp = path.with_name(f".{path.name}.part")
        with open(tmp, "xb") as f:
            np.savez_compressed(f, **episode)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._index += 1
        with self._lock:
            self._insert(path.name, kept)
            self._total_steps += eplen
            self._total_episodes += 1
        return path

    def load(self) -> None:
        """Load episodes from the directory, most recent first, up to ``capacity`` steps."""
        if self._spans:
            raise RuntimeError("load() must run before the first add_episode()")
        matches = [m for m in map(_NAME.match, (p.name for p in self.directory.glob("*.npz"))) if m]
        # Insertion order: unindexed (official) names by time, then indexed ones by index.
        matches.sort(key=lambda m: (m.group(1) is not None, int(m.group(1) or 0), m.group(0)))
        names = [(m.group(0), int(m.group(2))) for m in matches]
        self._index = max([len(names)] + [int(m.group(1)) + 1 for m in matches if m.group(1)])
        # Totals count every file by its name, like the official step counter, so episodes
        # that are unreadable or beyond capacity still count as steps taken.
        self._total_steps, self._total_episodes = sum(e for _, e in names), len(names)
        # Chosen by name, newest first, as the official loader does (an unreadable file leaves
        # its share empty); shorter than minlen could never yield a sequence.
        usable = [(name, eplen) for name, eplen in names if eplen >= self.minlen]
        newest = np.cumsum([eplen for _, eplen in reversed(usable)])
        # As the official loader: newest first up to and including the episode whose steps
        # reach `capacity`, so at capacity the loaded steps may exceed it by one episode until
        # the next add_episode evicts (the ring is sized for that below).
        count = int(np.searchsorted(newest, self.capacity, side="left")) + 1
        chosen = usable[max(0, len(usable) - count) :]
        self._slots = max(self._slots, sum(eplen + 1 for _, eplen in chosen))
        with self._lock:
            for name, eplen in chosen:
                episode = self._read(self.directory / name, eplen)
                if episode is not None:
                    self._insert(name, episode, enforce_capacity=False)

    def _read(self, path: Path, eplen: int) -> Batch | None:
        try:
            with np.load(path) as data:
                episode = {k: data[k] for k in data.files if not k.startswith("log_")}
            assert {len(v) for v in episode.values()} == {eplen + 1}, "lengths differ from name"
            if self._ring:
                self._check(episode)
        except Exception as error:  # truncated zip, bad zlib stream, other keys, ...
            warnings.warn(f"skipping unreadable episode file {path}: {error!r}", stacklevel=3)
            return None
        return episode

    def _check(self, ep: Batch) -> None:
        got, want = ({k: (v.shape[1:], v.dtype) for k, v in d.items()} for d in (ep, self._ring))
        if got != want:
            raise ValueError(f"episode keys/shapes/dtypes {got} differ from the replay's {want}")

    def _insert(self, name: str, episode: Batch, enforce_capacity: bool = True) -> None:
        """Copy into the ring as the newest episode, evicting the oldest ones first (only for
        room in the ring when `enforce_capacity` is False, as the official loader)."""
        size = len(next(iter(episode.values())))
        if not self._ring or size > self._slots:  # (re)allocate; a longer episode evicts all
            self._spans.clear()
            self._loaded_steps, self._slots = 0, max(self._slots, size)
            self._ring = {
                k: np.zeros((self._slots, *v.shape[1:]), v.dtype) for k, v in episode.items()
            }
        self._check(episode)
        # Evicting before inserting leaves the same set as the official insert-then-evict.
        while self._spans and (
            (enforce_capacity and self._loaded_steps + size - 1 > self.capacity)
            or self._head - self._spans[0].start + size > self._slots
        ):
            self._loaded_steps -= self._spans.popleft().size - 1
        self._spans.append(_Span(name, self._head, size))
        rows = np.arange(self._head, self._head + size) % self._slots
        for key, value in episode.items():
            self._ring[key][rows] = value
        self._head += size
        self._loaded_steps += size - 1
        self._table = None

    @property
    def stats(self) -> dict[str, int]:
        """Replay counters of spec §7.1 (steps are policy steps = sums of eplen)."""
        return {
            "total_steps": self._total_steps,
            "total_episodes": self._total_episodes,
            "loaded_steps": self._loaded_steps,
            "loaded_episodes": len(self._spans),
        }

    def episode_files(self) -> list[str]:
        """File names of the episodes in RAM, oldest first."""
        return [span.name for span in self._spans]

    def episode(self, name: str) -> Batch:
        """A copy of one loaded episode (without ``log_*`` keys)."""
        span = next(s for s in self._spans if s.name == name)
        rows = np.arange(span.start, span.start + span.size) % self._slots
        return {k: v[rows] for k, v in self._ring.items()}

    def sample(self, batch: int, length: int) -> Batch:
        """``batch`` chunks of ``length`` steps: arrays ``[batch, length, ...]``, dtypes kept."""
        with self._lock:
            self._resume = None  # the live generator is the resume point again
            return self._sample(batch, length)

    def _sample(self, batch: int, length: int) -> Batch:
        assert self._spans, "the replay holds no episodes yet"
        if self._table is None:
            spans = list(self._spans)
            starts, sizes = (np.array([s[i] for s in spans], np.int64) for i in (1, 2))
            self._table = (starts, sizes, spans)
        starts, sizes, spans = self._table
        if self._leftover is not None and self._leftover[0].start < spans[0].start:
            self._leftover = None  # its episode was evicted and its rows may be reused
        extra = self.minlen if self.prioritize_ends else 0
        if self.minlen == self.maxlen == length and self._leftover is None:
            # Every sequence is exactly one chunk: draw all episodes and starts at once.
            ids = self._rng.integers(len(sizes), size=batch)
            last = sizes[ids] - length  # the last start that fits
            index = np.minimum(self._rng.integers(0, last + 1 + extra), last)
            rows = (starts[ids] + index)[:, None] + np.arange(length)  # (B, T)
            first = np.zeros((batch, length), bool)
            first[:, 0] = True
        else:
            rows = np.empty((batch, length), np.int64)
            first = np.zeros((batch, length), bool)
            for b in range(batch):  # general case: concatenate sequences, carry leftovers
                filled = 0
                while filled < length:
                    if self._leftover is None:
                        self._leftover = self._sequence(spans, extra)
                    span, offset, left, fresh = self._leftover
                    take = min(left, length - filled)
                    rows[b, filled : filled + take] = span.start + offset + np.arange(take)
                    first[b, filled] = fresh
                    rest = (span, offset + take, left - take, False)
                    self._leftover = rest if left > take else None
                    filled += take
        rows %= self._slots
        out = {k: v[rows] for k, v in self._ring.items()}
        out["is_first"] = first
        return out

    def _sequence(self, spans: list[_Span], extra: int) -> tuple:
        """One sequence (span, offset, rows, fresh) by the official length and start rules."""
        span = spans[int(self._rng.integers(len(spans)))]
        # Random shortening keeps chunk boundaries of short episodes from aligning (official).
        size = max(self.minlen, min(span.size, self.maxlen) - int(self._rng.integers(self.minlen)))
        offset = min(int(self._rng.integers(span.size - size + 1 + extra)), span.size - size)
        return span, offset, size, True

    def dataset(self, batch: int, length: int, prefetch: int = 2) -> Iterator[Batch]:
        """Endless batches sampled ahead by a daemon thread (spec §4 step 6). The thread starts
        at the first ``next`` and stops when the iterator is closed or garbage collected."""
        items: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()

        def work() -> None:
            item: tuple = (None, {})
            while not stop.is_set() and item[1] is not None:
                try:
                    with self._lock:
                        item = (self._sample(batch, length), self._stream_state())
                except Exception as error:  # re-raised in the consumer
                    item = (error, None)
                items.put(item)  # the consumer drains the queue on close: never stuck here

        thread = threading.Thread(target=work, name="replay-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                data, state = items.get()
                if state is None:
                    raise data
                with self._lock:
                    self._resume = state
                yield data
        finally:
            stop.set()
            while thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    items.get(timeout=0.01)

    def _stream_state(self) -> dict:
        # The generator state as a JSON string keeps PCG64's 128-bit integers exact for JSON
        # readers and torch's weights_only loader alike.
        state = {"rng": json.dumps(self._rng.bit_generator.state), "leftover": None}
        if self._leftover is not None:
            span, offset, rows, fresh = self._leftover
            state["leftover"] = [span.name, offset, rows, fresh]
        return state

    def state_dict(self) -> dict:
        """Sampling stream state (plain ints/strings/bools). While a dataset prefetches, the
        state right after the last batch it handed out: unconsumed batches are redrawn."""
        with self._lock:
            return self._resume if self._resume is not None else self._stream_state()

    def load_state_dict(self, state: dict) -> None:
        """Continue the sampling stream saved by ``state_dict`` (call after ``load``)."""
        with self._lock:
            self._rng.bit_generator.state = json.loads(state["rng"])
            self._resume = None
            name, offset, rows, fresh = state.get("leftover") or ("", 0, 0, False)
            span = next((s for s in self._spans if s.name == name), None)
            # A leftover whose episode is not loaded is dropped: a fresh sequence starts.
            self._leftover = (span, offset, rows, fresh) if span else None


def time_sample(replay: Replay, batch: int, length: int, repeats: int = 20) -> float:
    """Median seconds of one ``replay.sample`` call (a benchmark aid; it consumes randomness)."""
    replay.sample(batch, length)  # builds the episode table outside the timing
    times = timeit.repeat(lambda: replay.sample(batch, length), number=1, repeat=repeats)
    return float(np.median(times))
