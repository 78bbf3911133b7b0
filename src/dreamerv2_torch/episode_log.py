"""What happens when an episode ends (spec §3.2 item 4, §5.3; the official `per_episode`).

An eval episode goes to its replay here (a train episode was stored before its last step's
update: `Driver.on_stores`, as the official `add_step`); its return and length, the
`log_reward` sum, the Crafter achievement counters and (every `eval_every` steps) its video are
logged; train episodes also update the Crafter success rates and score over all train episodes
so far (the Crafter paper's protocol, checkpointed in `loop.crafter`).
"""

from __future__ import annotations

import re

import numpy as np

from .envs.crafter import ACHIEVEMENTS, crafter_score


def per_episode(loop, episode: dict, mode: str) -> None:
    replay = loop.train_replay if mode == "train" else loop.eval_replay
    if mode == "eval":  # no update runs in evaluation: stored with its logging
        replay.add_episode(episode)
    if mode == "eval" and loop.pretrained:  # not the random eval episode of the prefill
        loop.eval_done += 1
    length = len(episode["reward"]) - 1
    score = float(episode["reward"].astype(np.float64).sum())
    logger = loop.logger
    logger.scalar(f"{mode}_return", score)
    logger.scalar(f"{mode}_length", length)
    extra = {}
    for key, value in episode.items():
        if key == "log_reward":
            logger.scalar(f"sum_{mode}_{key}", float(value.sum()))
        elif re.match(r"^log_achievement_", key):
            extra[key[len("log_"):]] = int(value.max())
            logger.scalar(f"max_{mode}_{key}", float(value.max()))
    if mode == "train":
        logger.scalar("dropped_episodes", loop.train_driver.dropped)
    if mode == "train" and extra:
        crafter_stats(loop, extra)
    logger.episode(mode=mode, episode_return=score, length=length, frames=loop.frames, **extra)
    if loop.every[f"video_{mode}"](loop.step):
        for key in loop.video_keys:
            logger.video(f"{mode}_policy_{key}", episode[key])
    logger.add(replay.stats, prefix=mode)
    loop.write()


def crafter_stats(loop, unlocked: dict[str, int]) -> None:
    """Log `achievement_<name>` success rates (%) and `crafter_score` over all train episodes
    so far (the Crafter paper's protocol); `unlocked` holds this episode's final counters."""
    stats = loop.crafter
    stats["episodes"] += 1
    for key, count in unlocked.items():
        stats["counts"][key] = stats["counts"].get(key, 0) + int(count > 0)
    rates = {k: 100.0 * n / stats["episodes"] for k, n in stats["counts"].items()}
    for key, rate in rates.items():
        loop.logger.scalar(key, rate)
    if len(rates) == len(ACHIEVEMENTS):  # only a full Crafter achievement set has a score
        loop.logger.scalar("crafter_score", crafter_score(rates))
