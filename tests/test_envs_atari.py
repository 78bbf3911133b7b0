"""Atari adapter (spec §5.1): contract, protocol settings, reward summing, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

import cv2  # noqa: E402
from ale_py import ALEInterface, LoggerMode, roms  # noqa: E402

from dreamerv2_torch.envs import make_env  # noqa: E402
from dreamerv2_torch.envs.atari import Atari, list_games, rom_id  # noqa: E402
from dreamerv2_torch.envs.contract import check_env  # noqa: E402

PAPER_GAMES = (
    "alien amidar assault asterix asteroids atlantis bank_heist battle_zone beam_rider berzerk "
    "bowling boxing breakout centipede chopper_command crazy_climber demon_attack double_dunk "
    "enduro fishing_derby freeway frostbite gopher gravitar hero ice_hockey james_bond kangaroo "
    "krull kung_fu_master montezuma_revenge ms_pacman name_this_game phoenix pitfall pong "
    "private_eye qbert riverraid road_runner robotank seaquest skiing solaris space_invaders "
    "star_gunner tennis time_pilot tutankham up_n_down venture video_pinball wizard_of_wor "
    "yars_revenge zaxxon"
).split()


def one_hot(index: int, n: int = 18) -> dict[str, np.ndarray]:
    return {"action": np.eye(n, dtype=np.float32)[index]}


def rollout(env, actions):
    return [env.reset()] + [env.step(one_hot(a, env.act_space["action"].n)) for a in actions]


def test_contract_shapes_and_spaces():
    env = make_env("atari_breakout", seed=0, action_repeat=4)
    history = check_env(env, steps=300)  # Breakout ends within 300 random steps at this seed
    assert env.obs_space["image"].shape == (64, 64, 1)
    assert env.obs_space["ram"].shape == (128,)
    assert env.act_space["action"].discrete and env.act_space["action"].n == 18
    assert any(obs["is_terminal"] for obs in history), "game over must set is_terminal"
    for obs in history:
        assert bool(obs["is_terminal"]) == bool(obs["is_last"])  # no time limit here


def test_rgb_and_minimal_action_set():
    env = make_env("atari_pong", seed=0, action_repeat=4, grayscale=False, all_actions=False)
    assert env.reset()["image"].shape == (64, 64, 3)
    assert env.act_space["action"].n == 6


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_sticky_actions_and_noop_starts(mode):
    env = make_env("atari_pong", seed=3, mode=mode, action_repeat=4)
    # ALE's rule applied one level up (envs/atari.py): ALE's own probability is 0.
    assert env.ale.getFloat("repeat_action_probability") == 0.0 and env._sticky.prob == 0.25
    env.reset()
    assert 1 <= env.ale.getEpisodeFrameNumber() <= 30  # 1..30 NOOP frames before the first obs
    applied, step = [], env._inner.step
    env._inner.step = lambda index: (applied.append(index), step(index))[1]  # per frame
    for t in range(500):
        env.step(one_hot(1 + t % 2))  # the commanded action changes every policy step
    firsts = applied[::4]  # the first frame of a step repeats the previous step's last frame
    kept = np.mean([a == b for a, b in zip(applied[3::4], firsts[1:])])
    assert 0.2 < kept < 0.3, kept


def test_time_limit_sets_last_not_terminal():
    env = make_env("atari_pong", seed=0, action_repeat=4, time_limit=5)
    history = rollout(env, [0] * 5)
    assert [bool(obs["is_last"]) for obs in history] == [False] * 5 + [True]
    assert not any(obs["is_terminal"] for obs in history)


def test_seeding_is_reproducible():
    actions = np.random.default_rng(0).integers(18, size=60)
    ram = {}
    for seed in (0, 0, 1):
        env = make_env("atari_breakout", seed=seed, action_repeat=4)
        ram.setdefault(seed, []).append(np.stack([o["ram"] for o in rollout(env, actions)]))
    np.testing.assert_array_equal(ram[0][0], ram[0][1])
    assert not np.array_equal(ram[0][0], ram[1][0])


def test_matches_raw_ale_without_sticky_actions():
    """Reward = sum over 4 frames; image = max of the last two screens, INTER_AREA to 64x64."""
    env = Atari("breakout", seed=0, sticky_prob=0.0, noop_max=0)
    ale = ALEInterface()
    ale.setLoggerMode(LoggerMode.Error)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(roms.get_rom_path("breakout"))
    ale.reset_game()
    legal = ale.getLegalActionSet()
    env.reset()
    rng = np.random.default_rng(1)
    total = 0.0
    for _ in range(150):
        index = int(rng.integers(18))
        obs = env.step(one_hot(index))
        reward, screens = 0.0, []
        for _ in range(4):
            reward += ale.act(legal[index])
            screens.append(ale.getScreenGrayscale())
        image = cv2.resize(
            np.maximum(screens[-2], screens[-1]), (64, 64), interpolation=cv2.INTER_AREA
        )
        assert obs["reward"] == reward
        np.testing.assert_array_equal(obs["image"][..., 0], image)
        total += reward
        if ale.game_over():
            break
    assert total > 0, "the comparison needs some reward to be meaningful"


def test_game_names():
    games = list_games()
    assert set(PAPER_GAMES) <= set(games)
    assert rom_id("james_bond") == "jamesbond" and rom_id("ms_pacman") == "ms_pacman"
    assert make_env("atari_james_bond", seed=0, action_repeat=4).act_space["action"].n == 18


def test_unknown_game_lists_valid_names():
    with pytest.raises(ValueError, match="atari_pong") as info:
        make_env("atari_pongg", seed=0)
    assert "space_invaders" in str(info.value)  # the full list of valid names follows


def test_rejects_non_one_hot_action():
    env = make_env("atari_pong", seed=0, action_repeat=4)
    env.reset()
    with pytest.raises(ValueError, match="one-hot"):
        env.step({"action": np.full(18, 1 / 18, np.float32)})
    with pytest.raises(ValueError, match="shape"):
        env.step({"action": np.zeros(6, np.float32)})
