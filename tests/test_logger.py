"""Tests of the run outputs (spec §7.1–7.3): jsonl files, TensorBoard events, videos, progress."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dreamerv2_torch.logger import Logger, Progress, append_jsonl, read_jsonl


def test_metrics_lines_have_step_and_means(tmp_path: Path) -> None:
    logger = Logger(tmp_path, tensorboard=False)
    for value in (1.0, 2.0, 6.0):
        logger.add({"model_loss": np.float32(value)})
    logger.add({"return": 10, "length": np.array(100)}, prefix="train")
    logger.scalar("bad", float("nan"))
    assert logger.write(4000) == {
        "model_loss": 3.0,
        "train_return": 10.0,
        "train_length": 100.0,
        "bad": pytest.approx(float("nan"), nan_ok=True),
    }
    logger.scalar("fps", 12.5)
    logger.write(8000)
    assert logger.write(9000) == {}  # nothing added: no line
    logger.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(abs(line.pop("time") - time.time()) < 60 for line in lines)  # wall-clock seconds
    assert lines == [
        {"step": 4000, "model_loss": 3.0, "train_return": 10.0, "train_length": 100.0, "bad": None},
        {"step": 8000, "fps": 12.5},
    ]


def test_add_rejects_other_ranks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vector"):
        Logger(tmp_path, tensorboard=False).add({"vector": np.zeros(3)})


def test_scores_line_format_and_resume_appends(tmp_path: Path) -> None:
    logger = Logger(tmp_path, tensorboard=False)
    logger.episode(mode="train", episode_return=21.0, length=812, frames=3248)
    logger.scalar("a", 1.0)
    logger.write(10)
    logger.close()
    resumed = Logger(tmp_path, tensorboard=False)  # the same logdir again: append, not truncate
    resumed.episode(mode="eval", episode_return=-3.5, length=90, frames=4000, seed=2)
    resumed.scalar("a", 2.0)
    resumed.write(20)
    resumed.close()
    scores = read_jsonl(tmp_path / "scores.jsonl")
    assert all(abs(line.pop("time") - time.time()) < 60 for line in scores)
    assert scores == [
        {"mode": "train", "return": 21.0, "length": 812, "frames": 3248},
        {"mode": "eval", "return": -3.5, "length": 90, "frames": 4000, "seed": 2},
    ]
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [10, 20]


def test_read_jsonl_skips_a_truncated_last_line_and_append_starts_a_new_one(tmp_path: Path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "x": 0.5}\n{"step": 2, "x": 0.')  # a crash mid-line
    assert read_jsonl(path) == [{"step": 1, "x": 0.5}]
    append_jsonl(path, {"step": 3, "x": np.float64(1.5)})
    with pytest.warns(UserWarning, match="unreadable line"):
        assert read_jsonl(path) == [{"step": 1, "x": 0.5}, {"step": 3, "x": 1.5}]


def test_videos_to_mp4_and_tensorboard_with_scalars(tmp_path: Path) -> None:
    logger = Logger(tmp_path, video_fps=10, tensorboard_videos=True)
    gray = np.zeros((7, 64, 80, 1), np.uint8)
    gray[:, :, :40] = 200
    gray[np.arange(7), 63, np.arange(7) + 50] = 255  # frames differ, or GIF merges them
    rgb = np.random.default_rng(0).uniform(size=(5, 64, 64, 3)).astype(np.float32)
    logger.add({"policy_image": gray}, prefix="train")
    logger.video("policy_rgb", rgb)
    logger.scalar("model_loss", 2.5)
    logger.write(40_000)
    logger.close()

    movie = tmp_path / "videos" / "train_policy_image" / "40000.mp4"
    frames = imageio.mimread(movie, format="FFMPEG")
    assert len(frames) == 7 and frames[0].shape == (64, 80, 3)
    assert abs(int(frames[3][10, 5, 0]) - 200) < 12 and frames[3][10, 60, 0] < 12
    assert len(imageio.mimread(tmp_path / "videos" / "policy_rgb" / "40000.mp4")) == 5
    assert not list(tmp_path.glob("videos/*/.*"))  # no temporary files left

    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    (scalar,) = events.Scalars("world_model/model_loss")  # grouped tags in TensorBoard
    assert (scalar.step, scalar.value) == (40_000, 2.5)
    (image,) = events.Images("train/train_policy_image")
    assert (image.step, image.width, image.height) == (40_000, 80, 64)
    gif = Image.open(io.BytesIO(image.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == 7
    assert events.Images("policy_rgb")[0].width == 64


def test_tensorboard_gifs_are_off_by_default_and_tags_are_grouped(tmp_path: Path) -> None:
    from dreamerv2_torch.logger import tb_tag

    logger = Logger(tmp_path)
    logger.video("eval_policy_image", np.zeros((3, 64, 64, 1), np.uint8))
    logger.scalar("eval_return", 1.0)
    logger.write(10)
    logger.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == [] and events.Tags()["scalars"] == ["eval/eval_return"]
    assert list((tmp_path / "videos" / "eval_policy_image").glob("*.mp4"))
    groups = {name: tb_tag(name).split("/")[0] for name in (
        "train_return", "fps", "eval_return", "model_loss", "image_loss", "image_mse",
        "kl_loss", "post_ent", "actor_loss", "critic_loss", "reward_mean", "actor_grad_norm",
        "train_total_steps", "eval_loaded_episodes", "train_openl_image", "achievement_wood")}
    assert groups == {
        "train_return": "train", "fps": "train", "eval_return": "eval",
        "model_loss": "world_model", "image_loss": "world_model", "image_mse": "world_model",
        "kl_loss": "world_model", "post_ent": "world_model", "actor_loss": "actor_critic",
        "critic_loss": "actor_critic", "reward_mean": "actor_critic",
        "actor_grad_norm": "actor_critic", "train_total_steps": "replay",
        "eval_loaded_episodes": "replay", "train_openl_image": "world_model",
        "achievement_wood": "train"}


def test_small_frames_are_enlarged_and_open_loop_videos_labelled(tmp_path: Path) -> None:
    logger = Logger(tmp_path, tensorboard=False)
    minatar = np.zeros((4, 10, 10, 1), np.uint8)
    minatar[:, 3, 4] = 255
    logger.video("policy_image", minatar)
    openl = np.zeros((4, 3 * 10, 6 * 10, 1), np.uint8)  # rows truth/model/error, 6 columns
    logger.video("train_openl_image", openl)
    logger.write(5)
    frames = imageio.mimread(tmp_path / "videos" / "policy_image" / "5.mp4")
    assert frames[0].shape == (80, 80, 3)  # 10x10 → 70x70 (nearest) → padded to 80x80
    block = frames[0][3 * 7 : 4 * 7, 4 * 7 : 5 * 7, 0]
    assert block[1:-1, 1:-1].min() > 200  # one pixel became a sharp 7x7 block, not a smear
    frames = imageio.mimread(tmp_path / "videos" / "train_openl_image" / "5.mp4")
    assert frames[0].shape[:2] == (224, 464)  # 210x420 plus a 44-pixel label column, padded
    assert frames[0][:210, :44].max() > 100 and frames[0][:210, 44:420].max() < 30


def test_video_shape_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[T, H, W, C\]"):
        Logger(tmp_path, tensorboard=False).video("bad", np.zeros((4, 8, 8), np.uint8))


def test_progress_tracks_frames_and_shows_key_metrics(capsys) -> None:
    progress = Progress(1000, initial_frames=100, disable=True)
    progress.update(400, {"train_return": 3.0, "ignored": 1.0})
    progress.update(300)  # never backwards
    assert progress.frames == 400
    progress.close()
    assert capsys.readouterr().err == ""


def test_numpy_only_modules_do_not_import_torch() -> None:
    code = (
        "import sys, dreamerv2_torch.logger, dreamerv2_torch.replay; print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_video_with_object_layers_is_colourised(tmp_path):
    # MinAtar-like frames: 4 binary object layers, written as RGB (each layer its own colour).
    frames = np.zeros((5, 10, 10, 4), np.uint8)
    frames[:, 2, 3, 0] = 255
    frames[:, 5, 5, 3] = 255
    logger = Logger(tmp_path, tensorboard=False)
    logger.video("layers", frames)
    logger.write(0)
    video = imageio.mimread(tmp_path / "videos" / "layers" / "0.mp4")
    assert len(video) == 5 and video[0].shape[-1] == 3


def test_progress_prints_plain_lines_when_not_a_terminal(capsys) -> None:
    # Under pytest stderr is not a terminal: tqdm disables the bar, and one plain line is printed
    # per `every` frames (what a nohup'd or cluster run shows in its log), plus one at close.
    progress = Progress(4000, initial_frames=0, every=1000)
    progress.update(1000, {"train_return": -21.0})  # random prefill: no ETA from its rate
    progress.restart_rate()  # training starts
    progress.update(1500)  # no metrics: no line
    progress.update(1600, {"train_return": 1.0})  # before `every` more frames: no line
    progress.update(2000, {"train_return": 3.0, "model_loss": 12.5, "fps": 9.0, "ignored": 1.0})
    progress.update(2000, {"eval_return": 2.0})  # eval at the same frames: no second line
    progress.update(2500)
    progress.close()
    prefill, first, last = capsys.readouterr().err.strip().splitlines()
    assert prefill.startswith("train 1.00k/4.00k frames (25.0%) prefill ") and "ETA" not in prefill
    assert first.startswith("train 2.00k/4.00k frames (50.0%)")
    assert "frames/s ETA" in first and first.endswith("train_return=3 model_loss=12.5")
    assert last.startswith("train 2.50k/4.00k frames (62.5%)") and "eval_return=2" in last
    assert "fps" not in first + last  # one speed figure per line


def test_without_imageio_ffmpeg_videos_are_skipped_with_one_notice(tmp_path, monkeypatch, capsys):
    # issue 11: the offline GPU machine has no imageio-ffmpeg (68 MB); training must not crash.
    from dreamerv2_torch import logger as logger_module
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # `import imageio_ffmpeg` fails
    monkeypatch.setattr(logger_module, "_FFMPEG", [], raising=False)
    logger = Logger(tmp_path)
    for step in (1, 2):
        logger.video("policy_image", np.zeros((3, 16, 16, 3), np.uint8))
        logger.scalar("loss", 1.0)
        logger.write(step)
    logger.close()
    assert not list(tmp_path.glob("videos/**/*.mp4"))
    assert capsys.readouterr().out.count("imageio-ffmpeg is not installed") == 1
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 2


def test_pixel_mse_undoes_the_gaussian_constant_and_the_pixel_sum() -> None:
    from dreamerv2_torch.logger import pixel_mse

    pixels, mse = 64 * 64, 0.01
    loss = 0.5 * mse * pixels + pixels * 0.5 * np.log(2 * np.pi)  # the unit-variance Normal NLL
    out = pixel_mse({"image_loss": loss, "reward_loss": 1.0}, {"image": (64, 64, 1)})
    assert out == {"image_mse": pytest.approx(mse)}


def test_forecast_line_after_the_first_updates_and_advice_beyond_a_day() -> None:
    from dreamerv2_torch import forecast

    lines = []
    fc = forecast.Forecast(50_000_000, 4, "cpu", 2, small_model=True, updates=2,
                           train_every=16, train_steps=1, out=lines.append)
    # (time, step, updates): an update takes 9.9 s, a step 0.1 s, one update per 16 steps.
    calls = [(0.0, 1000, 2), (10.0, 1001, 3)]
    calls += [(10.0 + 0.1 * i, 1001 + i, 3) for i in range(1, 16)]
    calls += [(21.5, 1017, 4), (21.6, 1018, 4), (40.0, 1019, 5)]
    real = forecast.time.monotonic
    try:
        for now, step, updates in calls:
            forecast.time.monotonic = lambda now=now: now
            fc(step, updates)
    finally:
        forecast.time.monotonic = real
    (line,) = lines  # printed once, after the second update's interval
    # Not 1 step per update (the first window): 0.1 s + 9.9 s / 16 per step = 0.71875 s.
    assert line.startswith("Projected wall-clock: 1.1 years") and "9.9 s per update" in line
    assert "1.39 policy steps/s" in line and "--preset atari small" in line
    assert "--device cuda" in line and f"--steps {int(86400 / 0.71875)}" in line
