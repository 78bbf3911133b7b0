"""Tests written for mutants of the Atari adapter and the checkpoint code that survived
tools/parity/mutation.sh (docs/parity.md, "Mutation testing", "replay, env and resume code").
Atari: the protocol defaults of spec §5.1 (30 NOOPs, frame skip = action_repeat), non-square
and RGB images, the errors for a missing package or an unknown game. Checkpoints (spec §3.4):
CUDA generator states, tree conversions, a GPU-written file read on a CPU, weights-only
reading, the error messages, the fallback to the previous file, the temporary file's name."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamerv2_torch import checkpoint
from dreamerv2_torch.checkpoint import CheckpointError
from dreamerv2_torch.rundir import remove_temporary

atari = pytest.importorskip("dreamerv2_torch.envs.atari")
Atari, list_games, rom_id = atari.Atari, atari.list_games, atari.rom_id
needs_ale = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("ale_py", "cv2")),
    reason="needs the atari extra")

EXTRA = r'pip install "dreamerv2-torch\[atari\]"'


@needs_ale
def test_missing_packages_name_the_atari_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ale_py.roms", None)  # makes the import fail
    with pytest.raises(ImportError, match=EXTRA):
        list_games()
    monkeypatch.undo()
    for module in ("cv2", "ale_py.env"):
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(ImportError, match=EXTRA):
            Atari("pong", seed=0)
        monkeypatch.undo()


@needs_ale
def test_unknown_game_without_close_names_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        rom_id("zzzzzz")
    assert str(info.value) == ("unknown Atari game 'zzzzzz' (task atari_zzzzzz). Valid games: "
                               + ", ".join(list_games()))


@needs_ale
def test_unknown_game_suggests_up_to_five_close_names() -> None:
    """'astenis' is close to six games (difflib ratio >= 0.6): five are suggested."""
    with pytest.raises(ValueError) as info:
        rom_id("astenis")
    match = re.search(r"\(task atari_astenis\)\. Did you mean: ([^?]*)\? Valid games: ",
                      str(info.value))
    assert match, str(info.value)
    names = match.group(1).split(", ")
    assert len(names) == 5 and all(re.fullmatch(r"atari_\w+", n) for n in names), names
    assert {"atari_tennis", "atari_asteroids", "atari_asterix"} <= set(names)


@needs_ale
def test_reset_takes_one_to_thirty_noop_frames_by_default() -> None:
    """Paper protocol: a uniform number of NOOP frames in 1..30 at every reset."""
    env = Atari("pong", seed=1)
    frames = []
    for _ in range(150):
        env.reset()
        frames.append(env.ale.getEpisodeFrameNumber())
    assert min(frames) >= 1 and max(frames) == 30 and len(set(frames)) >= 25


@needs_ale
def test_one_policy_step_is_action_repeat_frames() -> None:
    env = Atari("pong", seed=0, action_repeat=2, noop_max=0, sticky_prob=0.0)
    env.reset()
    assert env.ale.getEpisodeFrameNumber() == 0
    env.step({"action": np.eye(18, dtype=np.float32)[0]})
    assert env.ale.getEpisodeFrameNumber() == 2


@needs_ale
@pytest.mark.parametrize(("size", "grayscale"), [((48, 64), True), ((64, 64), False)])
def test_image_has_the_declared_height_width_and_channels(size, grayscale) -> None:
    env = Atari("pong", seed=0, size=size, grayscale=grayscale)
    image = env.reset()["image"]
    assert image.shape == env.obs_space["image"].shape == (*size, 1 if grayscale else 3)


def test_cuda_generator_states_are_saved_and_restored_when_cuda_is_there(monkeypatch) -> None:
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: ["gpu0-state"])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    state = checkpoint.rng_state()
    assert state["cuda"] == ["gpu0-state"]
    checkpoint.set_rng_state(state)
    assert restored == [["gpu0-state"]]
    checkpoint.set_rng_state({k: v for k, v in state.items() if k != "cuda"})  # a CPU run's file
    assert restored == [["gpu0-state"]]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a GPU run's file on a CPU
    checkpoint.set_rng_state(state)
    assert restored == [["gpu0-state"]] and "cuda" not in checkpoint.rng_state()


def test_tree_conversions_keep_values_shapes_and_containers() -> None:
    reversed_ = np.arange(4.0)[::-1]  # negative strides: torch.from_numpy refuses those
    tree = {"a": reversed_, "b": np.float32(2.5), "c": [np.arange(6).reshape(2, 3).T, 3],
            "d": (np.ones(2, bool), "x")}
    torched = checkpoint.to_torch(tree)
    assert torched["a"].tolist() == [3.0, 2.0, 1.0, 0.0]
    assert torched["b"].shape == () and float(torched["b"]) == 2.5
    assert torched["c"][0].tolist() == [[0, 3], [1, 4], [2, 5]] and torched["c"][1] == 3
    assert isinstance(torched["d"], list) and torched["d"][1] == "x"
    back = checkpoint.to_numpy(torched)
    np.testing.assert_array_equal(back["c"][0], tree["c"][0])
    assert back["d"][0].dtype == bool and back["c"][1] == 3
    moved = checkpoint.to_device({"w": torch.ones(2), "l": [torch.ones(1), (torch.ones(1), 4)]},
                                 "meta")
    assert moved["w"].is_meta and moved["l"][0].is_meta and moved["l"][1][0].is_meta
    assert isinstance(moved["l"][1], tuple) and moved["l"][1][1] == 4


def payload(**extra) -> dict:
    return {**dict.fromkeys(checkpoint.REQUIRED, 0), **extra}


def test_a_checkpoint_written_on_a_gpu_loads_on_a_cpu(tmp_path: Path, monkeypatch) -> None:
    """The storages of a CUDA run are tagged 'cuda:0' in the file; reading maps them to CPU."""
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        checkpoint.save(tmp_path, payload(agent={"w": torch.arange(3.0)}))
    data = checkpoint.load(tmp_path / checkpoint.NAME)
    assert data["agent"]["w"].device.type == "cpu" and data["agent"]["w"].tolist() == [0, 1, 2]


def test_only_plain_data_is_read(tmp_path: Path) -> None:
    """weights_only: a file holding an arbitrary Python object is refused, not unpickled."""
    path = tmp_path / "checkpoint.pt"
    torch.save({"version": checkpoint.VERSION, **payload(config=Path("x"))}, path)
    with pytest.raises(CheckpointError, match=r"^cannot read checkpoint .*: UnpicklingError: "):
        checkpoint.load(path)


@pytest.mark.parametrize(("error", "tail"), [(ValueError("first\nsecond"), "ValueError: first"),
                                             (ValueError(), "ValueError: ")])
def test_unreadable_file_error_names_the_path_type_and_first_line(tmp_path, monkeypatch, error,
                                                                  tail) -> None:
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(tmp_path / "c.pt")
    assert str(info.value) == f"cannot read checkpoint {tmp_path / 'c.pt'}: {tail}"


@pytest.mark.parametrize(("data", "message"), [
    (payload(version=2), "{} is not a dreamerv2-torch checkpoint of format 1"),
    ([1, 2], "{} is not a dreamerv2-torch checkpoint of format 1"),
    ({k: v for k, v in payload(version=1).items() if "rng" not in k}, "{} lacks loop_rng, rng"),
])
def test_foreign_or_incomplete_checkpoints_are_refused(tmp_path: Path, data, message) -> None:
    path = tmp_path / "c.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    assert str(info.value) == message.format(path)


def test_find_and_load_latest_fall_back_to_the_previous_file(tmp_path: Path) -> None:
    assert checkpoint.find(tmp_path) is None
    assert checkpoint.load_latest(tmp_path / "absent") == (None, None, None)
    checkpoint.save(tmp_path, payload(step=1))
    checkpoint.save(tmp_path, payload(step=2))
    latest, previous = tmp_path / checkpoint.NAME, tmp_path / checkpoint.PREVIOUS
    latest.write_bytes(b"")  # damaged
    with pytest.warns(RuntimeWarning) as caught:
        state, path, unreadable = checkpoint.load_latest(tmp_path)
    assert (state["step"], path, unreadable) == (1, previous, latest)
    (warning,) = caught
    assert str(warning.message).endswith(
        "; resuming from checkpoint.prev.pt instead (step 1): the work after it is lost")
    assert Path(warning.filename) != Path(checkpoint.__file__)
    if "mutmut" not in warning.filename:  # mutmut's trampoline adds frames
        assert warning.filename == __file__  # attributed to the caller
    previous.write_bytes(b"")
    with pytest.raises(CheckpointError) as both:
        checkpoint.load_latest(tmp_path)
    assert re.fullmatch(rf"cannot read checkpoint {re.escape(str(latest))}: .*; and cannot read "
                        rf"checkpoint {re.escape(str(previous))}: .*", str(both.value))
    latest.unlink()  # only the previous file exists (a crash between the renames of save)
    assert checkpoint.find(tmp_path) == previous
    with pytest.raises(CheckpointError) as alone:
        checkpoint.load_latest(tmp_path)
    assert "; and" not in str(alone.value)
    previous.unlink()
    latest.write_bytes(b"")  # an unreadable file and no previous one
    with pytest.raises(CheckpointError) as single:
        checkpoint.load_latest(tmp_path)
    assert "; and" not in str(single.value) and str(latest) in str(single.value)


def test_a_failed_save_keeps_its_own_error_and_leaves_only_a_cleanable_file(tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "open", no_space, raising=False)  # fails before creating
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(tmp_path, payload())
    monkeypatch.undo()
    monkeypatch.setattr(checkpoint.os, "replace", no_space)  # killed before the final rename
    with pytest.raises(OSError):
        checkpoint.save(tmp_path, payload())
    monkeypatch.undo()
    assert len(list(tmp_path.iterdir())) == 1  # the temporary file
    remove_temporary(tmp_path)  # what a restart does with the leftovers of interrupted writes
    assert list(tmp_path.iterdir()) == []
