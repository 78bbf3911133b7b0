"""Issue 8: the optional Weights & Biases mirror (`--wandb offline`), and its install hint."""

import sys

import pytest

from dreamerv2_torch.cli import main


def test_missing_wandb_is_one_line_before_anything_is_written(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    logdir = tmp_path / "run"
    code = main(["train", "--preset", "debug", "--task", "dummy_discrete", "--wandb", "offline",
                 "--logdir", str(logdir)])
    assert code == 2 and "pip install wandb" in capsys.readouterr().err
    assert not logdir.exists()


def test_wandb_offline_mirrors_scalars_and_videos(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    from dreamerv2_torch.logger import Logger
    from dreamerv2_torch.presets import resolve
    from dreamerv2_torch.tracking import make_trackers

    config = resolve(["debug"], {"wandb": "offline", "logdir": str(tmp_path)})
    logger = Logger(tmp_path, trackers=make_trackers(config, tmp_path))
    logger.scalar("model_loss", 2.5)
    logger.video("train_policy_image", __import__("numpy").zeros((3, 64, 64, 1), "uint8"))
    logger.write(100)
    run_dir = logger.trackers[0].run.dir
    logger.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    # Offline runs keep their history in the binary run-*.wandb log (uploaded by `wandb sync`).
    log = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert b"world_model/model_loss" in log and b"train/train_policy_image" in log
    assert list((runs[0] / "files" / "media" / "videos" / "train").glob("*.mp4"))
    assert run_dir
