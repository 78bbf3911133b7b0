"""Collection overlapped with training (issue 11; config `overlap`, off by default).

With `overlap`, a collector thread plays the training envs while the main thread runs the updates
that fell due, so the learner does not wait for the emulator, nor the emulator for the learner.
The schedule, never thread timing, decides what happens:

- The collector plays one *block* at a time: the policy steps up to the next step at which updates
  fall due (every `train_every` steps; a batched step of N envs may pass it, as in the plain
  loop). It acts with a snapshot of the acting networks (encoder, RSSM, actor) and draws its
  samples from its own torch generator, so the updates' random draws do not depend on it.
- Meanwhile the main thread runs the *round* of updates that fell due in the block before
  (`train_steps` per due step, queued in `loop.owed`). Each update samples its batch when it
  starts, so the replay holds exactly the episodes of the blocks before.
- Between blocks, with the collector waiting: the snapshot takes the new weights, then the
  block's transitions and episodes go through the loop's usual callbacks in order (counting,
  storing, logging; due updates are queued), and a clock checkpoint may be written.

So each block acts one update round behind the official order, and the replay ratio is exact:
every `train_every` policy steps get `train_steps` updates, the collector runs at most one block
ahead of the updates and waits otherwise. At the end of each training phase (before evaluation
and its checkpoint) the queued round runs first, so evaluation sees the official number of
updates. A stop (Ctrl-C) takes effect at the end of the block being played (at most
`train_every` policy steps later); the checkpoint keeps the queued round (`owed`) and the
collector's random stream, and a resume continues the schedule exactly.

`THREADED = False` plays each block in the main thread after its round: the same schedule
without a thread, which the tests compare bit for bit with the threaded one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import queue
import threading

import torch

from .driver import stream_seed

THREADED = True
POLICY_STREAM = 2 * 10**6  # `stream_seed` index of the collector's random stream


class Overlap:
    """The collector thread and the block/round schedule of one `loop.Loop`."""

    def __init__(self, loop):
        self.loop, self.agent = loop, loop.agent
        self.nets = self.agent.policy_snapshot()
        self.generator = torch.Generator(self.agent.device)
        self.reseed(restarts=0, stored=0)
        self.halt = threading.Event()  # stop a block now: the main thread is leaving
        self.requests: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None
        self.pending: int | None = None  # THREADED = False: the block to play in `wait`
        # On CUDA the collector's kernels go to their own stream, which would otherwise queue
        # behind the updates' on the default stream; it starts a block after the snapshot's copy
        # (`refreshed`). Not run on a GPU yet (docs/performance.md).
        cuda = self.agent.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.agent.device) if cuda else None
        self.refreshed = torch.cuda.Event() if cuda else None

    def reseed(self, restarts: int, stored: int) -> None:
        """A fresh acting stream (a new run, or a restart whose env streams are fresh too)."""
        seed = stream_seed(self.loop.config.seed, POLICY_STREAM, restarts, stored)
        self.generator.manual_seed(seed % 2**63)

    # ---- main thread ----
    def collect(self, steps: int) -> None:
        """Play at least `steps` policy steps, running the due updates meanwhile."""
        loop = self.loop
        end = loop.step + steps
        # Here no round is queued (a phase start) or it is a checkpoint's: both act with the
        # live weights (after pretraining, the previous phase's last round, or a restore).
        self.refresh()
        while loop.step < end and not loop.stop.flag:
            self.start(min(end, self._next_due()) - loop.step)
            loop.run_owed()  # the round due before this block, while the block is played
            events = self.wait()
            self.refresh()
            self._replay(events)
            loop.save_by_the_clock()
        if not loop.stop.flag:  # the phase ends: evaluation sees every update due so far
            loop.run_owed()
            self.refresh()

    def refresh(self) -> None:
        """The snapshot takes the live weights (the collector is waiting)."""
        self.agent.refresh_snapshot(self.nets)
        if self.refreshed is not None:
            self.refreshed.record()

    def _next_due(self) -> int:
        every = self.loop.every["train"]
        if every.last is None:  # the first training step is due (`Every` fires on first call)
            return self.loop.step + 1
        return max(every.last + every.every, self.loop.step + 1)

    def _replay(self, events: list[tuple]) -> None:
        """The block's events through the loop's callbacks, in the order they happened."""
        loop = self.loop
        for kind, *args in events:
            if kind == "act":
                self.agent.step = loop.step  # as `Loop._policy`: schedules use the policy step
            elif kind == "store":
                loop.train_replay.add_episode(args[0])
            elif kind == "step":
                loop.train_step(*args)
            else:
                loop.per_episode(args[0], "train")

    def start(self, steps: int) -> None:
        if not THREADED:
            self.pending = steps
            return
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name="overlap-collector",
                                           daemon=True)
            self.thread.start()
        self.requests.put(steps)

    def wait(self) -> list[tuple]:
        """The events of the block started last; an error of the collector is raised here."""
        if not THREADED:
            steps, self.pending = self.pending, None
            return self._play(steps)
        events, error = self.results.get()
        if error is not None:
            self.close()
            raise error  # its traceback shows where in the collector it happened
        return events

    def close(self) -> None:
        """Stop the collector (at its next batched step) and wait for it."""
        self.halt.set()
        if self.thread is not None:
            self.requests.put(None)
            self.thread.join(timeout=60)
            self.thread = None

    # ---- collector thread ----
    def _work(self) -> None:
        while (steps := self.requests.get()) is not None:
            try:
                self.results.put((self._play(steps), None))
            except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
                self.results.put((None, error))

    def _play(self, steps: int) -> list[tuple]:
        """Run the train driver for `steps` policy steps, recording instead of calling back."""
        driver, events = self.loop.train_driver, []
        saved = (driver.on_stores, driver.on_steps, driver.on_episodes, driver.on_safe_points,
                 driver.should_stop)
        driver.on_stores = [lambda episode, worker: events.append(("store", episode))]
        driver.on_steps = [lambda transition, worker: events.append(("step", transition, worker))]
        driver.on_episodes = [lambda episode, worker: events.append(("episode", episode))]
        driver.on_safe_points = []  # checkpoints are written between blocks
        # A stop (Ctrl-C) takes effect between blocks, where the snapshot equals the live
        # weights: the checkpoint then holds the whole schedule state (see the docstring).
        driver.should_stop = self.halt.is_set

        def policy(obs, state):
            events.append(("act",))
            return self.agent.policy(obs, state, "train", self.nets, self.generator)

        try:
            with (contextlib.nullcontext() if self.stream is None
                  else torch.cuda.stream(self.stream)):
                if self.stream is not None:
                    self.stream.wait_event(self.refreshed)
                driver(policy, steps=steps)
        finally:
            (driver.on_stores, driver.on_steps, driver.on_episodes, driver.on_safe_points,
             driver.should_stop) = saved
        return events


class EnvThread:
    """In-process training envs built and called in one thread of their own (a `BatchEnv`).

    With `overlap` the main thread (prefill, checkpoints) and the collector both use the training
    envs, but some envs only work in the thread that made them: DMC renders through an OpenGL
    context bound to its thread. Env processes (`envs` > 1) and ale-py's vector env need not this.
    """

    def __init__(self, build):
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="train-envs")
        self.envs = self._call(build)
        self.num_envs = self.envs.num_envs
        self.obs_space, self.act_space = self.envs.obs_space, self.envs.act_space

    def _call(self, fn, *args):
        return self.pool.submit(fn, *args).result()

    def reset(self, indices):
        return self._call(self.envs.reset, indices)

    def step(self, actions):
        return self._call(self.envs.step, actions)

    def get_states(self):
        return self._call(self.envs.get_states)

    def set_states(self, states):
        return self._call(self.envs.set_states, states)

    def close(self) -> None:
        try:
            self._call(self._release)
        finally:
            self.pool.shutdown()

    def _release(self) -> None:
        """Close and free the envs in their thread (DMC frees its OpenGL context on deletion)."""
        envs, self.envs = self.envs, None
        envs.close()
        del envs
        gc.collect()


def sampled_batches(replay, batch: int, length: int):
    """Batches sampled when asked for (no sampling ahead): with `overlap` each update's batch
    then comes from the replay as it stands when the update starts, which the schedule fixes."""
    while True:
        yield replay.sample(batch, length)
