"""Atari 2600 via ale-py and gymnasium's AtariPreprocessing, by the paper's protocol (spec §5.1).

Official counterpart: ``Atari`` in ``danijar/dreamerv2:dreamerv2/common/envs.py``, which wrapped old
gym's ``AtariEnv`` in old gym's ``AtariPreprocessing``. Here the same two layers come from ale-py's
``AtariEnv`` and gymnasium's ``AtariPreprocessing`` (the one recommended in environments.md §1):

* sticky actions p = 0.25 per emulator frame, in train AND eval envs: ALE's rule (each frame
  repeats the previous frame's action with probability p, NOOP after a reset), applied by
  `_StickyActions` here with ALE's own set to 0, because ALE keeps that previous action outside
  its `cloneState`: a restored emulator could not continue the stream (`get_state`, issue 9);
* the full 18-action set when ``all_actions`` (the paper; HEAD used the minimal set);
* reset: 1..30 NOOP frames drawn from the env's RNG; no FIRE on reset;
* step: the action is repeated ``action_repeat`` (4) frames, raw rewards are summed (no clipping),
  the last two screens are max-pooled and resized to ``size`` with cv2 INTER_AREA, no crop;
* game over → ``is_last = is_terminal = True``; lives are not signalled; the 27000-step limit is
  the generic ``TimeLimit`` applied by ``make_env`` (``is_last`` only); ALE's frame limit is off.
* ``ram`` (128 uint8) is returned as in the official code, stored but not encoded.

We build ``ale_py.env.AtariEnv`` directly rather than ``gym.make('ALE/<Game>-v5', ...)``: every v5
default is overridden anyway, and skipping ``gym.make``'s checker and order-enforcing wrappers
saves their per-step overhead (a policy step measured 0.81–0.87 ms on pong, 2-core Sapphire
Rapids under load, both before and after the sticky-action wrapper). Seeding: the first reset
passes ``seed`` to gymnasium, which seeds the env's ``np_random`` that draws the NOOPs and the
sticky actions; later resets continue it.
`get_state`/`set_state` save and restore the emulator, that RNG, the sticky action and the
max-pool buffers, so a stopped run continues the same frames bit for bit.
"""

from __future__ import annotations

import difflib
import functools
import json

import numpy as np

from .base import FLAG_SPACES, Obs, Space, check_one_hot, require, step_obs

# Names the paper and its score files use where the ROM id has no underscore.
_PAPER_NAMES = {"jamesbond": "james_bond"}


def list_games() -> list[str]:
    """Every game name bundled with the installed ale-py (snake_case, paper spelling)."""
    roms = require("ale_py.roms", "atari")
    return sorted(_PAPER_NAMES.get(rom, rom) for rom in roms.get_all_rom_ids())


def rom_id(game: str) -> str:
    """Our snake_case game name → ale-py's ROM id, ignoring underscores (james_bond → jamesbond)."""
    roms = require("ale_py.roms", "atari")
    by_key = {rom.replace("_", ""): rom for rom in roms.get_all_rom_ids()}
    rom = by_key.get(game.replace("_", "").lower())
    if rom is None:
        games = list_games()
        close = difflib.get_close_matches(game, games, n=5)
        hint = f" Did you mean: {', '.join('atari_' + g for g in close)}?" if close else ""
        raise ValueError(
            f"unknown Atari game {game!r} (task atari_{game}).{hint} "
            f"Valid games: {', '.join(games)}"
        )
    return rom


@functools.cache
def _sticky_actions():
    """The `_StickyActions` wrapper class (built on first use: gymnasium is an optional extra)."""
    import gymnasium

    class _StickyActions(gymnasium.Wrapper):
        """ALE's sticky actions one level up, per emulator frame: the new action with probability
        1 - p, else the previous frame's; NOOP (0) after a reset, as ALE's soft reset."""

        def __init__(self, env, prob: float):
            super().__init__(env)
            self.prob, self.previous = float(prob), 0

        def reset(self, **kwargs):
            self.previous = 0
            return self.env.reset(**kwargs)

        def step(self, action):
            if not self.prob or self.env.unwrapped.np_random.random() >= self.prob:
                self.previous = action
            return self.env.step(self.previous)

    return _StickyActions


class Atari:
    """One Atari game with DreamerV2's preprocessing; one-hot actions, dict observations."""

    def __init__(
        self,
        game: str,
        *,
        seed: int,
        action_repeat: int = 4,
        size: tuple[int, int] = (64, 64),
        grayscale: bool = True,
        all_actions: bool = True,
        sticky_prob: float = 0.25,
        noop_max: int = 30,
    ):
        rom = rom_id(game)
        require("cv2", "atari")  # AtariPreprocessing resizes with cv2
        ale_env = require("ale_py.env", "atari")
        from gymnasium.wrappers import AtariPreprocessing

        inner = ale_env.AtariEnv(
            game=rom,
            obs_type="grayscale" if grayscale else "rgb",
            frameskip=1,  # the preprocessing wrapper repeats, so that it can max-pool
            repeat_action_probability=0.0,  # sticky actions: `_StickyActions`, see above
            full_action_space=all_actions,
            max_num_frames_per_episode=None,  # the time limit is counted in policy steps instead
        )
        self._inner = inner
        self._sticky = _sticky_actions()(inner, sticky_prob)
        self._env = AtariPreprocessing(
            self._sticky,
            noop_max=noop_max,
            frame_skip=action_repeat,
            screen_size=(size[1], size[0]),  # (width, height), as cv2.resize wants it
            terminal_on_life_loss=False,
            grayscale_obs=grayscale,
            grayscale_newaxis=True,
        )
        self.ale = inner.ale
        self._seed: int | None = int(seed)
        self._num_actions = int(inner.action_space.n)
        self._image_shape = (*size, 1 if grayscale else 3)

    @property
    def obs_space(self) -> dict[str, Space]:
        return {
            "image": Space(self._image_shape, np.uint8, 0, 255),
            "ram": Space((128,), np.uint8, 0, 255),
            **FLAG_SPACES,
        }

    @property
    def act_space(self) -> dict[str, Space]:
        return {"action": Space((self._num_actions,), np.float32, 0.0, 1.0, discrete=True)}

    def reset(self) -> Obs:
        # Seed only once so that later episodes continue the seeded sticky-action and NOOP streams.
        image, _ = self._env.reset(seed=self._seed)
        self._seed = None
        flags = step_obs(0.0, is_first=True, is_last=False, is_terminal=False)
        return {"image": image, "ram": self.ale.getRAM(), **flags}

    def step(self, action: dict[str, np.ndarray]) -> Obs:
        index = check_one_hot(action["action"], self._num_actions)
        image, reward, terminated, truncated, _ = self._env.step(index)
        flags = step_obs(
            reward, is_first=False, is_last=terminated or truncated, is_terminal=terminated
        )
        return {"image": image, "ram": self.ale.getRAM(), **flags}

    def get_state(self) -> dict:
        """Emulator (ALE's `cloneState`), RNG, sticky action and max-pool buffers (`base.py`)."""
        pre = self._env
        ale = self.ale.cloneState(include_rng=True).serialize()
        return {
            "ale": np.frombuffer(ale, np.uint8).copy(),
            "rng": json.dumps(self._inner.np_random.bit_generator.state),
            "sticky": int(self._sticky.previous), "seed": self._seed,
            "buffers": np.stack(pre.obs_buffer), "lives": int(pre.lives),
            "game_over": bool(pre.game_over),
        }

    def set_state(self, state: dict) -> None:
        from ale_py import ALEState

        self.ale.restoreState(ALEState(np.asarray(state["ale"], np.uint8).tobytes()))
        self._inner.np_random.bit_generator.state = json.loads(state["rng"])
        self._sticky.previous = int(state["sticky"])
        self._seed = None if state["seed"] is None else int(state["seed"])
        pre = self._env
        for buffer, saved in zip(pre.obs_buffer, state["buffers"]):
            buffer[...] = saved
        pre.lives, pre.game_over = int(state["lives"]), bool(state["game_over"])

    def close(self) -> None:
        self._env.close()
