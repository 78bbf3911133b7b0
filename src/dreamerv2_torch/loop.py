"""The training loop in order, with its counters (spec §3.2, §3.3, §7.1; official `train.py`).

`Loop` (built and wired by `training.train`) holds the counters and runs the training loop:
`Loop.run` reads top to bottom as the official `train.py` does: prefill, the first updates, then
the phases [evaluate → checkpoint → train up to the next evaluation]; `train_step` is the per-step
work (count, train every `train_every` steps, log every `log_every` steps); at an episode's last
step the train replay stores the episode first, then `train_step`, then `per_episode` (`attach`);
with `overlap` the due updates run while `overlap.Overlap` plays the next steps (issue 11). The
rest lives in modules named for what they own, bound here as methods: `episode_log.per_episode`
(a finished episode: logged; an eval one also stored), `run_state.save`/`restore` (the
checkpoint's contents) and
`skipped_updates.check_skipped` (non-finite updates).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import episode_log, run_state, skipped_updates
from .agent import Agent
from .config import Config
from .device_metrics import DeviceMetrics
from .driver import Driver, random_policy
from .logger import pixel_mse
from .overlap import Overlap, sampled_batches
from .prefetch import device_batches
from .replay import Replay
from .skipped_updates import SkippedUpdates

__all__ = ["Every", "Loop", "SkippedUpdates"]


class Every:
    """Fires on the first call, then whenever step ≥ last + every (official `Every`)."""

    def __init__(self, every: int, last: int | None = None):
        self.every, self.last = every, last

    def __call__(self, step: int) -> bool:
        if not self.every:
            return False
        if self.last is None:
            self.last = step
            return True
        if step >= self.last + self.every:
            self.last += self.every
            return True
        return False


class Loop:
    # Parts of the loop kept in their own modules (functions of the loop, bound as methods).
    per_episode = episode_log.per_episode
    check_skipped = skipped_updates.check_skipped
    save = run_state.save
    restore = run_state.restore
    save_by_the_clock = run_state.save_by_the_clock
    stored = run_state.stored

    def __init__(self, config: Config, agent: Agent, train_envs, eval_env, train_replay: Replay,
                 eval_replay: Replay, rng: np.random.Generator, logdir: Path):
        self.config, self.agent, self.logdir, self.rng = config, agent, logdir, rng
        self.train_replay, self.eval_replay = train_replay, eval_replay
        self.train_envs, self.eval_env = train_envs, eval_env
        self.train_driver = Driver(train_envs, "train", config.nonfinite)
        # No eval env (eval_eps 0, e.g. the Python API given a single env object): no eval episodes.
        self.eval_driver = Driver(eval_env, "eval", config.nonfinite) if eval_env else None
        # Crafter (spec §5.3): per-achievement counts of train episodes that unlocked it, for the
        # success rates and the Crafter score over all train episodes so far (checkpointed).
        self.crafter = {"episodes": 0, "counts": {}}
        self.step = 0  # training-env policy steps
        self.updates = 0
        self.pretrained = False  # the first 1 + pretrain updates are done
        self.every = {"train": Every(config.train_every), "log": Every(config.log_every),
                      "video_train": Every(config.eval_every),
                      "video_eval": Every(config.eval_every)}
        self.dataset = None
        # The updates due and not yet run, as the policy step each runs at (agent.step): run
        # at once, or with `overlap` while the collector plays the next block (issue 11).
        self.owed: list[int] = []
        self.overlap = Overlap(self) if config.overlap else None
        self.metrics = DeviceMetrics()  # issue 11: update metrics read once per write
        # issue 9: the step of the last finished evaluation phase and the episodes done in the
        # current one (a stop mid-phase continues it), the restart counter, the time of the last
        # checkpoint (checkpoint_every).
        self.last_eval: int | None = None
        self.eval_done = 0
        self.restarts = 0
        self.last_save = time.monotonic()
        self.last_write = (time.time(), 0)
        self.skipped_mark: tuple[dict, int] = ({}, 0)  # optimiser skip counts at the last check
        self.video_keys = [k for k in config.log_keys_video if k in train_envs.obs_space]
        # issue 8: the projected wall-clock line (`forecast.Forecast`), set by `training.train`.
        self.forecast = None
        self.image_shapes = {k: train_envs.obs_space[k].shape for k in agent.wm.image_keys}

    @property
    def frames(self) -> int:
        return self.step * self.config.action_repeat

    # ---- wiring ----
    def attach(self, logger, progress, stop) -> None:
        self.logger, self.progress, self.stop = logger, progress, stop
        for driver in (self.train_driver, self.eval_driver):
            if driver is None:
                continue
            driver.should_stop = lambda: stop.flag
        self.train_driver.on_safe_points.append(self.save_by_the_clock)
        # The official order at an episode's last step: stored, then the update due, then logged.
        self.train_driver.on_stores.append(lambda ep, worker: self.train_replay.add_episode(ep))
        self.train_driver.on_steps.append(self.train_step)
        self.train_driver.on_episodes.append(lambda ep, worker: self.per_episode(ep, "train"))
        if self.eval_driver is not None:
            self.eval_driver.on_episodes.append(lambda ep, worker: self.per_episode(ep, "eval"))
            # issue 9: a clock checkpoint keeps the phase's finished eval episodes (a resume plays
            # the unfinished one again); none before the first, whose resume would redo the report.
            self.eval_driver.on_safe_points.append(
                lambda: self.eval_done and self.save_by_the_clock())

    def _policy(self, mode: str):
        def policy(obs, state):
            self.agent.step = self.step  # schedules are evaluated at the policy-step counter
            return self.agent.policy(obs, state, mode)
        return policy

    # ---- phases ----
    def run(self) -> None:
        c = self.config
        if self.step < c.prefill or not self.train_replay.stats["loaded_episodes"]:
            self.prefill()  # at least one stored episode, even with --prefill 0
        if not self.pretrained:  # the official variable-creation update + pretrain; a clock
            while self.updates < 1 + c.pretrain and not self.stop.flag:  # checkpoint (issue 9)
                self.update()  # may hold some of them: `updates` counts those done
                self.save_by_the_clock()
            self.pretrained = self.updates >= 1 + c.pretrain
        while self.step < c.steps and not self.stop.flag:
            if self.last_eval is None or self.step >= self.last_eval + c.eval_every:
                self.write()
                self.evaluate()  # continues a phase that a stop interrupted
                if self.stop.flag:
                    break
                self.last_eval, self.eval_done = self.step, 0
                self.save()  # holds this evaluation: a resume does not repeat it
            end = min(self.last_eval + c.eval_every, c.steps)
            self.collect(end - self.step)
        self.write()
        self.save()

    def prefill(self) -> None:
        c = self.config
        print(f"Prefill: {c.prefill - self.step} random policy steps.", flush=True)
        act_space = self.train_envs.act_space
        policy = random_policy(act_space, self.train_envs.num_envs, self.rng)
        self.train_driver(policy, steps=c.prefill - self.step,
                          episodes=0 if self.train_replay.stats["total_episodes"] else 1)
        # Episodes shorter than replay.minlen are not stored; go on until one is (e.g. random
        # MinAtar episodes are often shorter than the debug preset's minlen of 10).
        for _ in range(1000):
            if self.train_replay.stats["loaded_episodes"] or self.stop.flag:
                break
            self.train_driver(policy, episodes=1)
        else:
            raise ValueError(f"no random episode reached replay.minlen={c.replay.minlen} steps "
                             "in 1000 tries; lower --replay.minlen")
        if self.eval_driver is None:
            self.train_driver.reset()
            return
        if not self.eval_replay.stats["total_episodes"] and not self.stop.flag:
            self.eval_driver(random_policy(act_space, 1, self.rng), episodes=1)
        self.train_driver.reset()
        self.eval_driver.reset()

    def evaluate(self) -> None:
        if self.eval_done == 0 and self.eval_replay.stats["loaded_episodes"] and self.video_keys:
            batch = self.eval_replay.sample(min(6, self.config.dataset.batch),
                                            self.config.dataset.length)
            self.logger.add(self.agent.report(batch), prefix="eval")
        if self.eval_driver is not None and self.eval_done < self.config.eval_eps:
            self.eval_driver.reset()  # an unfinished eval episode (a stop) is played again
            self.eval_driver(self._policy("eval"), episodes=self.config.eval_eps - self.eval_done)

    def collect(self, steps: int) -> None:
        """Play `steps` training policy steps; the due updates run in `train_step` (official
        order) or, with `overlap`, while the collector plays the next block."""
        if self.overlap is not None:
            self.overlap.collect(steps)
            return
        self.run_owed()  # a round queued by a checkpoint written with `overlap` on
        self.train_driver(self._policy("train"), steps=steps)

    def run_owed(self) -> None:
        for step in self.owed:
            self.agent.step = step  # the policy step the update fell due at
            self.update()
        self.owed = []

    def update(self) -> None:
        if self.dataset is None:
            c = self.config
            if self.overlap is not None:  # issue 11: the replay as the schedule leaves it
                self.dataset = sampled_batches(self.train_replay, c.dataset.batch,
                                               c.dataset.length)
            else:  # issue 11: on CUDA, copied ahead in a thread
                self.dataset = device_batches(
                    self.train_replay.dataset(c.dataset.batch, c.dataset.length),
                    self.agent.device, c.prefetch, self.train_replay)
        metrics = self.agent.train(next(self.dataset))
        self.updates += 1
        self.metrics.add(metrics)

    # ---- driver callbacks ----
    def train_step(self, transition: dict, worker: int) -> None:
        self.step += 1
        self.progress.update(self.frames)
        if not self.pretrained:  # random prefill steps only count
            return
        if self.forecast is not None:
            self.forecast(self.step, self.updates)
        if self.every["train"](self.step):
            self.owed += [self.agent.step] * self.config.train_steps
            if self.overlap is None:
                self.run_owed()
        if self.every["log"](self.step):
            if self.video_keys:
                batch = self.train_replay.sample(min(6, self.config.dataset.batch),
                                                 self.config.dataset.length)
                self.logger.add(self.agent.report(batch), prefix="train")
            self.write(fps=True)
            self.check_skipped()

    def write(self, fps: bool = False) -> None:
        if fps:
            now = time.time()
            then, frames = self.last_write
            if now > then:
                self.logger.scalar("fps", (self.frames - frames) / (now - then))
            self.last_write = (now, self.frames)
        means = self.metrics.pop()
        self.logger.add(means)
        # issue 8: a loss that visibly moves (linear in image_loss, so exact on the mean).
        self.logger.add(pixel_mse(means, self.image_shapes))
        self.progress.update(self.frames, self.logger.write(self.frames))

    def close(self) -> None:
        if self.overlap is not None:
            self.overlap.close()
        if self.dataset is not None:  # stop the sampling thread(s) now, not at garbage collection
            self.dataset.close()
            self.dataset = None
        for env in (self.train_envs, self.eval_env):
            if env is None:
                continue
            env.close()
