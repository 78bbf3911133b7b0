"""Tests written for mutants of the Atari adapter and the checkpoint code that survived
tools/parity/mutation.sh (docs/parity.md, "Mutation testing", "replay, env and resume code"):
the protocol defaults of spec §5.1 (30 NOOPs, frame skip = action_repeat), non-square and RGB
images, the errors for a missing package or an unknown game."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from dreamerv2_torch.envs.atari import Atari, list_games, rom_id  # noqa: E402

EXTRA = r'pip install "dreamerv2-torch\[atari\]"'


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


def test_unknown_game_without_close_names_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        rom_id("zzzzzz")
    assert str(info.value) == ("unknown Atari game 'zzzzzz' (task atari_zzzzzz). Valid games: "
                               + ", ".join(list_games()))


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


def test_reset_takes_one_to_thirty_noop_frames_by_default() -> None:
    """Paper protocol: a uniform number of NOOP frames in 1..30 at every reset."""
    env = Atari("pong", seed=1)
    frames = []
    for _ in range(150):
        env.reset()
        frames.append(env.ale.getEpisodeFrameNumber())
    assert min(frames) >= 1 and max(frames) == 30 and len(set(frames)) >= 25


def test_one_policy_step_is_action_repeat_frames() -> None:
    env = Atari("pong", seed=0, action_repeat=2, noop_max=0, sticky_prob=0.0)
    env.reset()
    assert env.ale.getEpisodeFrameNumber() == 0
    env.step({"action": np.eye(18, dtype=np.float32)[0]})
    assert env.ale.getEpisodeFrameNumber() == 2


@pytest.mark.parametrize(("size", "grayscale"), [((48, 64), True), ((64, 64), False)])
def test_image_has_the_declared_height_width_and_channels(size, grayscale) -> None:
    env = Atari("pong", seed=0, size=size, grayscale=grayscale)
    image = env.reset()["image"]
    assert image.shape == env.obs_space["image"].shape == (*size, 1 if grayscale else 3)
