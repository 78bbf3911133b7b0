"""Counters and callbacks of one training run (spec §3.2, §3.3, §7.1; the `train.py` closures).

`Loop` (built and wired by `loop.train`) holds the counters and runs the training loop:
`Loop.run` performs prefill, the first updates and the phases [evaluate → checkpoint → train up to
the next evaluation]; the driver callbacks `train_step` and `per_episode` do the per-step and
per-episode work. `save`/`restore` own the checkpoint's contents: besides weights and counters,
the eval schedule (a stop mid-phase continues it), the env states, unfinished episodes and policy
state (a stop resumes mid-episode), the restart counter that makes new env seeds, and the log
lengths that a resume cuts back to (issue 9; docs/parity.md).
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import numpy as np

from . import checkpoint, rundir
from .agent import Agent
from .config import Config, to_dict
from .device_metrics import DeviceMetrics
from .driver import Driver, random_policy
from .envs.crafter import ACHIEVEMENTS, crafter_score
from .logger import pixel_mse
from .prefetch import DevicePrefetch, device_batches
from .replay import Replay


class SkippedUpdates(rundir.RunError):
    """More than `skip_limit` of recent updates were skipped for non-finite gradients."""


def _count(value) -> int:
    """An optimiser counter as an int, whether it is kept as an int or as a 0-d tensor."""
    return int(value.item()) if hasattr(value, "item") else int(value)


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
        # issue 8: the projected wall-clock line (`forecast.Forecast`), set by `loop.train`.
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
        self.train_driver.on_steps.append(self.train_step)
        self.train_driver.on_episodes.append(lambda ep, worker: self.per_episode(ep, "train"))
        if self.eval_driver is not None:
            self.eval_driver.on_episodes.append(lambda ep, worker: self.per_episode(ep, "eval"))

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
        if not self.pretrained and not self.stop.flag:
            for _ in range(1 + c.pretrain):  # the official variable-creation update + pretrain
                self.update()
            self.pretrained = True
        while self.step < c.steps and not self.stop.flag:
            if self.last_eval is None or self.step >= self.last_eval + c.eval_every:
                self.write()
                self.evaluate()  # continues a phase that a stop interrupted
                if self.stop.flag:
                    break
                self.last_eval, self.eval_done = self.step, 0
                self.save()  # holds this evaluation: a resume does not repeat it
            end = min(self.last_eval + c.eval_every, c.steps)
            self.train_driver(self._policy("train"), steps=end - self.step)
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

    def update(self) -> None:
        if self.dataset is None:
            self.dataset = device_batches(  # issue 11: on CUDA, copied ahead in a thread
                self.train_replay.dataset(self.config.dataset.batch, self.config.dataset.length),
                self.agent.device, self.config.prefetch, self.train_replay)
        metrics = self.agent.train(next(self.dataset))
        self.updates += 1
        self.metrics.add(metrics)

    def check_skipped(self) -> None:
        """Warn about updates skipped for non-finite gradients since the last check; stop the run
        with `SkippedUpdates` when more than `skip_limit` of them were (learning has stalled)."""
        opts = {"world-model": self.agent.model_opt, "actor": self.agent.actor_opt,
                "critic": self.agent.critic_opt}
        counts = {name: _count(opt.skipped) for name, opt in opts.items()}
        last_counts, last_updates = self.skipped_mark
        self.skipped_mark = (counts, self.updates)
        done = self.updates - last_updates
        for name, count in counts.items():
            skipped = count - last_counts.get(name, count)
            if skipped <= 0 or done <= 0:
                continue
            text = (f"{skipped} of the last {done} {name} updates (up to frame {self.frames}) were "
                    "skipped: non-finite gradients")
            if done >= 10 and skipped > self.config.skip_limit * done:
                raise SkippedUpdates(f"{text}; learning has stalled, stopping (the replay or the "
                                     "weights hold non-finite values; the last checkpoint is "
                                     "unaffected)")
            warnings.warn(text, RuntimeWarning, stacklevel=2)

    # ---- driver callbacks ----
    def train_step(self, transition: dict, worker: int) -> None:
        self.step += 1
        self.progress.update(self.frames)
        if not self.pretrained:  # random prefill steps only count
            return
        if self.forecast is not None:
            self.forecast(self.step, self.updates)
        if self.every["train"](self.step):
            for _ in range(self.config.train_steps):
                self.update()
        if self.every["log"](self.step):
            if self.video_keys:
                batch = self.train_replay.sample(min(6, self.config.dataset.batch),
                                                 self.config.dataset.length)
                self.logger.add(self.agent.report(batch), prefix="train")
            self.write(fps=True)
            self.check_skipped()

    def per_episode(self, episode: dict, mode: str) -> None:
        replay = self.train_replay if mode == "train" else self.eval_replay
        replay.add_episode(episode)
        if mode == "eval" and self.pretrained:  # not the random eval episode of the prefill
            self.eval_done += 1
        length = len(episode["reward"]) - 1
        score = float(episode["reward"].astype(np.float64).sum())
        self.logger.scalar(f"{mode}_return", score)
        self.logger.scalar(f"{mode}_length", length)
        extra = {}
        for key, value in episode.items():
            if key == "log_reward":
                self.logger.scalar(f"sum_{mode}_{key}", float(value.sum()))
            elif re.match(r"^log_achievement_", key):
                extra[key[len("log_"):]] = int(value.max())
                self.logger.scalar(f"max_{mode}_{key}", float(value.max()))
        if mode == "train":
            self.logger.scalar("dropped_episodes", self.train_driver.dropped)
        if mode == "train" and extra:
            self._crafter_stats(extra)
        self.logger.episode(mode=mode, episode_return=score, length=length, frames=self.frames,
                            **extra)
        if self.every[f"video_{mode}"](self.step):
            for key in self.video_keys:
                self.logger.video(f"{mode}_policy_{key}", episode[key])
        self.logger.add(replay.stats, prefix=mode)
        self.write()

    def _crafter_stats(self, unlocked: dict[str, int]) -> None:
        """Log `achievement_<name>` success rates (%) and `crafter_score` over all train episodes
        so far (the Crafter paper's protocol); `unlocked` holds this episode's final counters."""
        stats = self.crafter
        stats["episodes"] += 1
        for key, count in unlocked.items():
            stats["counts"][key] = stats["counts"].get(key, 0) + int(count > 0)
        rates = {k: 100.0 * n / stats["episodes"] for k, n in stats["counts"].items()}
        for key, rate in rates.items():
            self.logger.scalar(key, rate)
        if len(rates) == len(ACHIEVEMENTS):  # only a full Crafter achievement set has a score
            self.logger.scalar("crafter_score", crafter_score(rates))

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

    # ---- checkpoints ----
    def save_by_the_clock(self) -> None:
        every = self.config.checkpoint_every * 60
        if every and time.monotonic() - self.last_save >= every:
            self.save()

    def stored(self) -> int:
        """Episode files on disk (train and eval): a restart with a different count than its
        checkpoint's must not replay the checkpoint's env streams (see `restore`)."""
        return self.train_replay.stats["total_episodes"] + self.eval_replay.stats["total_episodes"]

    def save(self) -> None:
        """A checkpoint of everything a resume needs, at a point where the drivers are whole."""
        self.write()  # scalars added so far are logged before the log sizes are recorded
        envs = {"train": self.train_envs.get_states(),
                "eval": self.eval_env.get_states() if self.eval_env else []}
        if self.stop.flag:  # a stop: envs that cannot save their state cannot continue their
            for i, state in enumerate(envs["train"]):  # episode, so keep what it has (a cut one)
                episode = self.train_driver.take_unfinished(i) if state is None else None
                if episode is not None:
                    self.train_replay.add_episode(episode)
        checkpoint.save(self.logdir, {
            "config": to_dict(self.config), "step": self.step, "updates": self.updates,
            "pretrained": self.pretrained,
            "every": {k: v.last for k, v in self.every.items()},
            "agent": self.agent.state_dict(),
            "train_replay": (self.dataset.resume_state()  # issue 11: not the prefetched one
                             if isinstance(self.dataset, DevicePrefetch)
                             else self.train_replay.state_dict()),
            "eval_replay": self.eval_replay.state_dict(),
            "rng": checkpoint.rng_state(), "loop_rng": checkpoint.generator_state(self.rng),
            "crafter": self.crafter,
            # issue 9: streams, the unfinished episodes, the eval schedule, the log lengths.
            "restarts": self.restarts, "stored": self.stored(),
            "env_states": checkpoint.to_torch(envs),
            "driver": checkpoint.to_torch(self.train_driver.state_dict()),
            "policy_state": self.train_driver.policy_state,
            "last_eval": self.last_eval, "eval_done": self.eval_done,
            "dropped": self.train_driver.dropped, "logs": rundir.log_sizes(self.logdir),
        })
        self.last_save = time.monotonic()

    def restore(self, state: dict) -> None:
        """Load a checkpoint. Its env streams, unfinished episodes and random-policy RNG continue
        only if no episode was stored since it was written (else they would repeat stored
        experience: the envs then keep the fresh seeds they were built with)."""
        self.step, self.updates = int(state["step"]), int(state["updates"])
        self.pretrained = bool(state["pretrained"])
        for key, last in state["every"].items():
            self.every[key].last = last
        self.agent.load_state_dict(state["agent"])
        self.train_replay.load_state_dict(state["train_replay"])
        self.eval_replay.load_state_dict(state["eval_replay"])
        checkpoint.set_rng_state(state["rng"])
        if "crafter" in state:  # absent in checkpoints written before it was added
            crafter = state["crafter"]
            self.crafter = {"episodes": int(crafter["episodes"]),
                            "counts": {k: int(v) for k, v in crafter["counts"].items()}}
        self.last_write = (time.time(), self.frames)  # the first fps after a resume
        self.restarts = int(state.get("restarts", 0)) + 1
        self.last_eval, self.eval_done = state.get("last_eval"), int(state.get("eval_done", 0))
        self.train_driver.dropped = int(state.get("dropped", 0))
        self.skipped_mark = ({}, self.updates)
        same = state.get("stored") == self.stored() and "env_states" in state
        how = "fresh env streams"
        if same:
            checkpoint.set_generator_state(self.rng, state["loop_rng"])
            envs = checkpoint.to_numpy(state["env_states"])
            self.train_envs.set_states(envs["train"])
            if self.eval_env is not None and len(envs["eval"]) == self.eval_env.num_envs:
                self.eval_env.set_states(envs["eval"])
            driver = checkpoint.to_numpy(state["driver"])
            driver = [d if s is not None else None for d, s in zip(driver, envs["train"])]
            policy = checkpoint.to_device(state["policy_state"], self.agent.device)
            self.train_driver.load_state_dict(driver, policy)
            # Envs without a savable state (ALE, DMC, ...) start a fresh stream on every resume.
            saved = sum(s is not None for s in envs["train"])
            continued = sum(d is not None for d in driver)
            how = (f"{saved} of {len(driver)} env streams continued, "
                   f"{continued} unfinished episode(s)")
        print(f"Resumed from step {self.step} ({self.frames} frames; restart {self.restarts}, "
              f"{how}).", flush=True)

    def close(self) -> None:
        if self.dataset is not None:  # stop the sampling thread(s) now, not at garbage collection
            self.dataset.close()
            self.dataset = None
        for env in (self.train_envs, self.eval_env):
            if env is None:
                continue
            env.close()
