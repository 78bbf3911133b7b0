"""Run outputs (spec §7.1–7.3): metrics.jsonl, scores.jsonl, TensorBoard, videos (the progress
bar lives in `progress.py`).

Official counterpart: ``dreamerv2/common/logger.py``. numpy + stdlib + tensorboard/imageio/Pillow/
tqdm, never torch. TensorBoard events are written with tensorboard's own ``EventFileWriter`` and
protos (the ones ``torch.utils.tensorboard`` uses) rather than tensorboardX, whose ``writer.py``
imports torch whenever it is installed.

Files in the logdir, all appended to (a resumed run never truncates them):

* ``metrics.jsonl``: one object per ``write(step)`` with ``"step"`` (frames), ``"time"`` (Unix
  seconds of the write) and the mean of every scalar added since the previous write; non-finite
  means are written as ``null`` (``json.dumps`` would write the invalid token ``NaN``);
  TensorBoard gets the raw value under a grouped tag (`tb_tag`: ``train/``, ``eval/``,
  ``world_model/``, ``actor_critic/``, ``replay/``). docs/metrics.md explains every metric.
* ``scores.jsonl``: one object per finished episode (``mode``, ``return``, ``length``, ``frames``,
  ``time``).
* ``videos/<name>/<frames>.mp4`` (H.264, grayscale as RGB, padded to multiples of 16; frames
  smaller than 64 pixels, e.g. MinAtar's 10×10, enlarged by nearest neighbour; open-loop videos
  get a truth / model / error label column), and, only with ``tensorboard_videos``, an
  animated-GIF image summary per video in TensorBoard (spec §7.2; GIFs are large).
* ``trackers``: optional mirrors (e.g. `tracking.WandbTracker`) that get the same scalars and
  videos at every write.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from .progress import Progress  # noqa: F401 - re-exported: the training loop's progress bar


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars unwrapped, non-finite floats as None (null)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line with a single unbuffered write, so a crash cannot split it."""
    data = (json.dumps({k: _plain(v) for k, v in record.items()}, allow_nan=False) + "\n").encode()
    with open(path, "a+b", buffering=0) as f:
        size = f.seek(0, os.SEEK_END)
        if size and (f.seek(size - 1), f.read(1))[1] != b"\n":
            # A crash of some other writer left the last line open: keep ours whole and apart.
            data = b"\n" + data
        while data:  # one write on a regular file; the loop only guards against short writes
            data = data[f.write(data) :]


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; an unfinished last line (a crash mid-write) is skipped."""
    lines = Path(path).read_bytes().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):  # only the last line is expected to be cut short
                warnings.warn(f"{path}:{number}: skipping an unreadable line", stacklevel=2)
    return records


def _uint8_frames(frames: np.ndarray, name: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"video {name!r}: expected [T, H, W, C], got {frames.shape}")
    if frames.dtype != np.uint8:  # floats in [0, 1]
        frames = (np.nan_to_num(np.clip(frames, 0.0, 1.0)) * 255.0 + 0.5).astype(np.uint8)
    if frames.shape[-1] not in (1, 3):
        frames = _colourise(frames)
    return frames


def _colourise(frames: np.ndarray) -> np.ndarray:
    """C ∉ {1, 3} channels (e.g. MinAtar's object layers) → RGB: each channel gets a fixed colour
    from matplotlib's tab10 cycle and the layers are added (clipped), so every object is visible."""
    palette = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40],
                        [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127],
                        [188, 189, 34], [23, 190, 207]], np.float32) / 255.0
    weights = palette[np.arange(frames.shape[-1]) % len(palette)]  # (C, 3)
    rgb = np.einsum("thwc,ck->thwk", frames.astype(np.float32), weights)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _gif(frames: np.ndarray, fps: int) -> bytes:
    if frames.shape[-1] == 1:
        images = [Image.fromarray(f[..., 0]) for f in frames]
    else:  # a fast palette per frame: Pillow's default quantiser is ~15x slower
        fast = Image.Quantize.FASTOCTREE
        images = [Image.fromarray(f).quantize(method=fast) for f in frames]
    buffer = io.BytesIO()
    duration = max(1, round(1000 / fps))
    images[0].save(
        buffer, "GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
    )
    return buffer.getvalue()


_GROUPS = (  # (TensorBoard group, name patterns); the first match wins
    ("replay", ("train_loaded_", "train_total_", "eval_loaded_", "eval_total_")),
    ("world_model", ("model_", "kl_", "prior_ent", "post_ent", "train_openl_", "eval_openl_")),
    ("eval", ("eval_", "sum_eval_", "max_eval_")),
    ("actor_critic", ("actor_", "critic", "reward_mean", "reward_std")),
    ("train", ("train_", "sum_train_", "max_train_", "fps", "achievement_", "crafter_score")),
)


def tb_tag(name: str) -> str:
    """The TensorBoard tag of a metric: ``group/name`` (metrics.jsonl keeps the plain name)."""
    for group, prefixes in _GROUPS:
        if name.startswith(prefixes):
            return f"{group}/{name}"
    if name.endswith(("_loss", "_mse")):  # decoder heads: image_loss, image_mse, reward_loss, ...
        return f"world_model/{name}"
    return name


def _upscale(frames: np.ndarray, panel: tuple[int, int], minimum: int = 64) -> np.ndarray:
    """Enlarge by an integer factor (nearest neighbour) so a panel is >= `minimum` pixels:
    MinAtar's 10x10 frames become 70x70 blocks instead of a 16x16 smear in the encoder."""
    factor = math.ceil(minimum / max(1, min(panel)))
    if factor <= 1:
        return frames
    return frames.repeat(factor, axis=1).repeat(factor, axis=2)


def _label_rows(frames: np.ndarray, labels: Sequence[str], width: int = 44) -> np.ndarray:
    """A label column left of equal-height rows (open-loop videos: truth / model / error)."""
    from PIL import ImageDraw

    height, channels = frames.shape[1], frames.shape[-1]
    column = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(column)
    rows = len(labels)
    for i, label in enumerate(labels):
        draw.text((3, i * height // rows + height // (2 * rows) - 6), label, fill=255)
    strip = np.asarray(column)[None, :, :, None].repeat(channels, axis=-1)
    strip = np.broadcast_to(strip, (frames.shape[0], height, width, channels))
    return np.concatenate([strip, frames], axis=2)


class Logger:
    """Collects scalars and videos between writes and sends them to every output at ``write``."""

    def __init__(self, logdir: Path, *, tensorboard: bool = True, video_fps: int = 20,
                 tensorboard_videos: bool = False, trackers: Sequence[Any] = ()):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.video_fps = int(video_fps)
        self.tensorboard_videos = tensorboard_videos
        self.trackers = list(trackers)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._videos: dict[str, np.ndarray] = {}
        self._events = EventFileWriter(str(self.logdir)) if tensorboard else None

    def scalar(self, name: str, value: float) -> None:
        """Add one value; values of the same name are averaged at the next ``write``."""
        self._sums[name] = self._sums.get(name, 0.0) + float(value)
        self._counts[name] = self._counts.get(name, 0) + 1

    def add(self, metrics: Mapping[str, float | np.ndarray], prefix: str | None = None) -> None:
        """Add scalars (0-d) and videos (4-d ``[T, H, W, C]``); names become ``prefix_name``."""
        for key, value in metrics.items():
            name = f"{prefix}_{key}" if prefix else key
            array = np.asarray(value)
            if array.ndim == 0:
                self.scalar(name, float(array))
            elif array.ndim == 4:
                self.video(name, array)
            else:
                raise ValueError(f"{name!r}: expected a scalar or a video, got {array.shape}")

    def video(self, name: str, frames: np.ndarray) -> None:
        """Queue a video (uint8, or float in [0, 1]); the last one per name is written.

        Open-loop videos (``*openl*``: rows truth, model, error; 6 columns) get their labels."""
        frames = _uint8_frames(frames, name)
        openl = "openl" in name and frames.shape[1] % 3 == 0
        panel = (frames.shape[1] // 3, frames.shape[2] // 6) if openl else frames.shape[1:3]
        frames = _upscale(frames, panel)
        if openl:
            frames = _label_rows(frames, ("truth", "model", "error"))
        self._videos[name] = np.ascontiguousarray(frames)

    def write(self, step: int) -> dict[str, float]:
        """Flush everything added since the last write at x = ``step`` frames; returns scalars."""
        step = int(step)
        scalars = {k: self._sums[k] / self._counts[k] for k in self._sums}
        if scalars:
            append_jsonl(self.logdir / "metrics.jsonl",
                         {"step": step, "time": round(time.time(), 3), **scalars})
        values = [summary_pb2.Summary.Value(tag=tb_tag(k), simple_value=v)
                  for k, v in scalars.items()]
        paths = {}
        for name, frames in self._videos.items():
            path = self._write_mp4(name, frames, step)
            if path is not None:
                paths[tb_tag(name)] = path
            if self._events is None or not self.tensorboard_videos:
                continue
            height, width, channels = frames.shape[1:]
            image = summary_pb2.Summary.Image(
                height=height,
                width=width,
                colorspace=channels,
                encoded_image_string=_gif(frames, self.video_fps),
            )
            values.append(summary_pb2.Summary.Value(tag=tb_tag(name), image=image))
        if self._events is not None and values:
            summary = summary_pb2.Summary(value=values)
            self._events.add_event(
                event_pb2.Event(wall_time=time.time(), step=step, summary=summary)
            )
            self._events.flush()
        for tracker in self.trackers:
            tracker.write(step, {tb_tag(k): v for k, v in scalars.items()}, paths,
                          self.video_fps)
        self._sums, self._counts, self._videos = {}, {}, {}
        return scalars

    def _write_mp4(self, name: str, frames: np.ndarray, step: int) -> Path | None:
        if not _ffmpeg_available():  # issue 11: e.g. the offline GPU machine; GIFs still written
            return None
        if frames.shape[-1] == 1:
            frames = np.repeat(frames, 3, axis=-1)
        # H.264 in yuv420p wants sizes divisible by the encoder's 16-pixel macro blocks; padding
        # (rather than imageio's resize) keeps every pixel as it was.
        height, width = frames.shape[1:3]
        pad = ((0, 0), (0, -height % 16), (0, -width % 16), (0, 0))
        path = self.logdir / "videos" / name / f"{step}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.part.mp4")  # renamed once complete
        imageio.mimwrite(tmp, np.pad(frames, pad), format="FFMPEG", fps=self.video_fps)
        os.replace(tmp, path)
        return path

    def episode(
        self, *, mode: str, episode_return: float, length: int, frames: int, **extra: Any
    ) -> None:
        """Append one finished episode to ``scores.jsonl`` (return = sum of raw rewards)."""
        record = {"mode": mode, "return": float(episode_return), "length": int(length)}
        append_jsonl(self.logdir / "scores.jsonl", {**record, "frames": int(frames),
                                                    "time": round(time.time(), 3), **extra})

    def close(self) -> None:
        """Close TensorBoard's file; metrics not yet written are dropped (call ``write`` first)."""
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []
        if self._events is not None:
            self._events.close()
            self._events = None


_FFMPEG: list[bool] = []


def _ffmpeg_available() -> bool:
    """Whether imageio can write MP4 (imageio-ffmpeg installed); says so once when it cannot."""
    if not _FFMPEG:
        try:
            import imageio_ffmpeg  # noqa: F401 - imageio's FFMPEG plugin needs it
            _FFMPEG.append(True)
        except ImportError:
            _FFMPEG.append(False)
        if not _FFMPEG[0]:
            print("Note: imageio-ffmpeg is not installed, so no MP4 videos are written "
                  "(TensorBoard GIFs still are); `pip install imageio-ffmpeg` to get them.",
                  flush=True)
    return _FFMPEG[0]


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def pixel_mse(metrics: Mapping[str, Any], shapes: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """``<key>_mse``: mean squared error per pixel of each decoded image (pixels in [-0.5, 0.5]).

    ``<key>_loss`` is the unit-variance Gaussian NLL summed over the D = H·W·C pixels,
    ½·Σ(x − μ)² + D·log√(2π); the constant (≈ 3764 for a 64×64×1 frame) swamps the part that
    learns, so ``model_loss`` looks flat. This undoes the sum and the constant (docs/metrics.md).
    """
    out = {}
    for key, shape in shapes.items():
        if f"{key}_loss" in metrics:
            pixels = float(np.prod(shape))
            out[f"{key}_mse"] = 2.0 * (float(metrics[f"{key}_loss"]) / pixels - _LOG_SQRT_2PI)
    return out
