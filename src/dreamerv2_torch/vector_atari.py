"""N Atari games stepped together in ale-py's C++ vector environment (issue 11; switch
`atari_vector`), behind the driver's `BatchEnv` interface.

Same protocol as `envs/atari.py` (spec §5.1): sticky actions 0.25 per emulator frame, 1..30 NOOP
frames on reset, no FIRE reset, `action_repeat` frames per step with raw rewards summed, the last
two screens max-pooled and resized with INTER_AREA, game over → is_last = is_terminal, the time
limit (policy steps, counted here as `TimeLimit` does) → is_last only. With sticky
actions and NOOPs off the frames and rewards are bit-identical to `envs/atari.py`
(`tests/test_vector_atari.py`); with them on, the random streams differ (C++ RNG instead of
gymnasium's), not their distribution. It has no `ram` observation (the official code stores it but
never uses it), so its replay files lack that key (docs/parity.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .envs.atari import rom_id
from .envs.base import FLAG_SPACES, Obs, Space, check_one_hot, require


class VectorAtari:
    """`num_envs` games with one `AtariVectorEnv`; env i is seeded with `seed + i`."""

    def __init__(self, game: str, num_envs: int, *, seed: int, action_repeat: int = 4,
                 size: tuple[int, int] = (64, 64), grayscale: bool = True,
                 all_actions: bool = True, time_limit: int = 0, sticky_prob: float = 0.25,
                 noop_max: int = 30, threads: int = 0):
        vector_env = require("ale_py.vector_env", "atari")
        self.env = vector_env.AtariVectorEnv(
            rom_id(game), num_envs, num_threads=threads, img_height=size[0], img_width=size[1],
            grayscale=grayscale, stack_num=1, frameskip=action_repeat, maxpool=True,
            noop_max=noop_max, reward_clipping=False, use_fire_reset=False,
            repeat_action_probability=sticky_prob, full_action_space=all_actions,
            episodic_life=False, autoreset_mode="NextStep",
            # ALE's own frame limit ends an episode inside the last frame skip (its final frame
            # differs from the per-env path): the limit is counted in policy steps instead.
            max_num_frames_per_episode=10**9)  # (0 would end every step)
        self.time_limit = int(time_limit)
        self._steps = np.zeros(num_envs, np.int64)
        self.num_envs, self.seed, self.grayscale = num_envs, int(seed), grayscale
        self._num_actions = int(self.env.single_action_space.n)
        self._started = False
        self.obs_space = {"image": Space((*size, 1 if grayscale else 3), np.uint8, 0, 255),
                          **FLAG_SPACES}
        self.act_space = {"action": Space((self._num_actions,), np.float32, 0.0, 1.0,
                                          discrete=True)}

    def _image(self, obs: np.ndarray, i: int) -> np.ndarray:
        frame = obs[i, 0]  # (H, W) or (H, W, 3): the one stacked frame
        return frame[..., None] if self.grayscale else frame

    def _obs(self, image, reward, first, last, terminal) -> Obs:
        return {"image": image, "reward": np.float32(reward), "is_first": bool(first),
                "is_last": bool(last), "is_terminal": bool(terminal)}

    def reset(self, indices: Sequence[int]) -> list[Obs]:
        if not self._started:  # one full reset seeds every game; later ones continue the streams
            obs, _ = self.env.reset(seed=np.arange(self.num_envs) + self.seed)
            self._started = True
        else:
            mask = np.zeros(self.num_envs, bool)
            mask[list(indices)] = True
            obs, _ = self.env.reset(options={"reset_mask": mask})
        self._steps[list(indices)] = 0
        return [self._obs(self._image(obs, i), 0.0, True, False, False) for i in indices]

    def step(self, actions: Sequence[dict[str, np.ndarray]]) -> list[Obs]:
        index = np.array([check_one_hot(a["action"], self._num_actions) for a in actions])
        obs, reward, terminated, truncated, _ = self.env.step(index)
        self._steps += 1
        if self.time_limit:
            truncated = truncated | (self._steps >= self.time_limit)
        return [self._obs(self._image(obs, i), reward[i], False, terminated[i] or truncated[i],
                          terminated[i]) for i in range(self.num_envs)]

    def close(self) -> None:
        self.env.close()

    def get_states(self) -> list[None]:
        # ALE's vector env exposes no per-game state to save: a resume starts fresh streams,
        # with new seeds (issue 9), rather than continuing the unfinished episodes.
        return [None] * self.num_envs

    def set_states(self, states) -> None:
        pass


def from_config(config, seed: int) -> VectorAtari:
    """`config.envs` games of `config.task` (atari_<game>) with the config's preprocessing."""
    if not config.task.startswith("atari_"):
        raise ValueError(f"atari_vector needs an atari_<game> task, not '{config.task}'")
    return VectorAtari(config.task[len("atari_"):], config.envs, seed=seed,
                       action_repeat=config.action_repeat, size=tuple(config.render_size),
                       grayscale=config.atari_grayscale, all_actions=config.atari_all_actions,
                       time_limit=config.time_limit)
