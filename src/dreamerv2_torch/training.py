"""Training a run: the only module that sees the whole config (spec §3; official `train.py`).

`train` wires the run: validate the config and the logdir, seed and build envs, replay and
agent, resume from the checkpoint if there is one (cutting the log lines written after
it), then hand over to `loop.Loop`, which runs prefill, the first updates and the phases of
[write logs → eval report + `eval_eps` eval episodes → checkpoint → `eval_every` training steps]
(spec §3.2). Per training step: count, store, train every `train_every` steps, log every
`log_every` steps, checkpoint every `checkpoint_every` minutes. Counters are policy steps;
everything a user sees is in frames.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import interrupts, presets, tracking, vector_atari
from .agent import Agent
from .config import Config
from .driver import SerialEnvs, stream_seed
from .envs import make_env
from .envs.base import Env
from .forecast import Forecast
from .logger import Logger, Progress
from .loop import Loop
from .overlap import EnvThread
from .parallel import ParallelEnvs
from .replay import Replay
from .rundir import LOGS, RunError, open_rundir, remove_temporary, truncate_logs

EnvFactory = Callable[[int, str], Env]  # (seed, mode) -> env


def _make_task_env(config: Config, logdir: Path, seed: int, mode: str) -> Env:
    return make_env(config.task, seed=seed, mode=mode, action_repeat=config.action_repeat,
                    time_limit=config.time_limit, size=tuple(config.render_size),
                    grayscale=config.atari_grayscale, all_actions=config.atari_all_actions,
                    camera=config.dmc_camera, logdir=logdir,
                    pixels=bool(config.encoder.cnn_keys != "$^"))


def default_env_factory(config: Config, logdir: Path) -> EnvFactory:
    # A partial of a module-level function pickles, so envs > 1 can build it in worker processes.
    return functools.partial(_make_task_env, config, logdir)


class StopRequested:
    """SIGINT/SIGTERM set a flag that the loop checks at safe points (after a whole env step)."""

    def __init__(self):
        self.flag = False
        self._old = {}

    def __enter__(self):
        interrupts.release()  # the `train` command's Ctrl-C noted while the run was built
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a Ray worker): no handler
                pass
        return self

    def _handle(self, signum, frame):
        self.flag = True
        print("\nStopping after the current step and saving a checkpoint "
              "(interrupt again to abort without saving).", flush=True)
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(config: Config, env_factory: EnvFactory | None = None, *,
          progress: bool = True) -> dict:
    """Train, or resume the run in `config.logdir`. Returns the final counters.

    An OSError (disk full, read-only logdir) becomes one `rundir.RunError` line, after the
    temporary files of the failed write are removed; the last checkpoint stays intact.
    """
    presets.validate(config)
    tracking.check_available(config)  # issue 8: an optional tracker's install hint, early
    try:
        return _train(config, env_factory, progress)
    except OSError as error:
        logdir = Path(config.logdir).expanduser()
        remove_temporary(logdir)
        raise RunError(f"{error} (run in {logdir}; its last checkpoint is intact)") from None


def _train(config: Config, env_factory: EnvFactory | None, progress: bool) -> dict:
    run = open_rundir(config)  # validates the logdir; writes nothing yet
    if config.threads:
        torch.set_num_threads(config.threads)
    make = env_factory or default_env_factory(config, run.logdir)
    # The eval env first: building it in this process checks the task before workers start.
    # eval_eps 0 runs no evaluation and builds no eval env (the Python API without an eval env).
    # Seeds never repeat a stream whose experience was stored: a fresh run uses seed + i, every
    # later start mixes in the restart counter and the episode files on disk (driver.stream_seed).
    restarts = int(run.checkpoint.get("restarts", 0)) + 1 if run.checkpoint else 0
    stored = sum(len(list((run.logdir / d).glob("*.npz")))
                 for d in ("train_episodes", "eval_episodes") if (run.logdir / d).is_dir())
    seed = functools.partial(stream_seed, restarts=restarts, stored=stored)
    eval_seed = seed(config.seed + 10_000, 0)
    eval_env = SerialEnvs([make(eval_seed, "eval")]) if config.eval_eps else None
    seeds = [seed(config.seed, i) for i in range(config.envs)]
    if config.atari_vector:  # issue 11: ale-py's vector env for the training games
        train_envs = vector_atari.from_config(config, seeds[0])
    elif config.envs > 1:
        train_envs = ParallelEnvs(make, seeds, "train")
    elif config.overlap:  # issue 11: stepped from two threads, made and run in a third
        train_envs = EnvThread(lambda: SerialEnvs([make(seeds[0], "train")]))
    else:
        train_envs = SerialEnvs([make(seeds[0], "train")])
    run.commit()  # the config is valid and the task exists: now the logdir may change
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(seed(config.seed, 10**6))  # the random policy's stream
    logdir = run.logdir
    # Log lines past the checkpoint (or all, with none) belong to a killed start's timeline.
    sizes = run.checkpoint.get("logs", {}) if run.checkpoint else dict.fromkeys(LOGS, 0)
    if truncate_logs(logdir, sizes):
        print("Log lines written after the last checkpoint were dropped (a kill lost that work).")
    train_replay = Replay(logdir / "train_episodes", config.replay.capacity, config.replay.minlen,
                          config.replay.maxlen, config.replay.prioritize_ends, seed=config.seed)
    eval_replay = Replay(logdir / "eval_episodes", max(1, config.replay.capacity // 10),
                         config.dataset.length, config.dataset.length, False,
                         seed=config.seed + 1)
    train_replay.load()
    eval_replay.load()
    agent = Agent(train_envs.obs_space, train_envs.act_space, config)
    params = sum(p.numel() for p in agent.nets.parameters() if p.requires_grad)
    print(f"Task {config.task}, device {agent.device}, "
          f"{'bfloat16 autocast' if agent.bf16 else 'float32'}"
          f"{' (no native bf16 here)' if config.precision == 16 and not agent.bf16 else ''}, "
          f"threads {torch.get_num_threads()} (OpenMP wait policy "
          f"{os.environ.get('OMP_WAIT_POLICY', 'default').lower()}), "
          f"{params / 1e6:.2f}M trainable parameters, logdir {logdir}.", flush=True)
    loop = Loop(config, agent, train_envs, eval_env, train_replay, eval_replay, rng, logdir)
    if run.checkpoint is not None:
        loop.restore(run.checkpoint)
    else:
        loop.step = train_replay.stats["total_steps"]
    logger = Logger(logdir, tensorboard_videos=config.tensorboard_videos,
                    trackers=tracking.make_trackers(config, logdir))
    bar = Progress(config.steps * config.action_repeat, loop.step * config.action_repeat,
                   disable=None if progress else True,
                   every=config.log_every * config.action_repeat)
    # issue 8: one line with the projected wall-clock time, from the first updates' speed.
    big_atari = config.task.startswith("atari_") and config.rssm.deter > 256
    loop.forecast = Forecast(config.steps, config.action_repeat, agent.device.type,
                             torch.get_num_threads(), small_model=big_atari,
                             train_every=config.train_every, train_steps=config.train_steps,
                             on_start=bar.restart_rate)
    with StopRequested() as stop:
        loop.attach(logger, bar, stop)
        try:
            loop.run()
        finally:
            loop.close()
            bar.close()
            logger.close()
    return {"step": loop.step, "frames": loop.step * config.action_repeat,
            "stopped": stop.flag}
