"""`dreamerv2-torch eval`: play evaluation episodes with a saved agent (spec §3.3, §7.2).

The agent is rebuilt from the run's own `config.yaml` and environment settings (task, action
repeat, sticky actions, time limit, image size, all through `training.default_env_factory`) and
loaded from the run's latest checkpoint, or a named one. It acts with the **mode** policy
(`Agent.policy(..., mode="eval")`, `eval_noise` as configured), exactly as the training loop's
evaluation episodes do. Nothing of the run is modified except two appends:

* every episode is appended to `scores.jsonl` as `{"mode": "eval", "source": "eval_cmd",
  "return", "length", "frames", "checkpoint", "seed"}`, where `frames` is the checkpoint's frame
  count. Because the mode is "eval", `scores` and `plot` count these episodes into the learning
  curve at the checkpoint's frames, like the loop's own eval episodes (the paper's curves average
  about ten eval episodes per 1M-frame bin; ten episodes of the final checkpoint are such a bin);
* videos of the best and the worst episode: `videos/eval_cmd_best/<frames>.mp4` and `..._worst`.

Seeds: the eval env is seeded with `--seed`, by default `config.seed + 20_000`, distinct from the
training envs (`seed + i`) and the loop's eval env (`seed + 10_000`), so these episodes are not
replays of episodes seen during training. torch is seeded with the same number (it drives the
stochastic latent samples unless `eval_state_mean`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from . import presets
from .config import Config

SOURCE = "eval_cmd"
SEED_OFFSET = 20_000  # the training loop's eval env uses config.seed + 10_000


class EvalError(ValueError):
    """A logdir without a run, or a checkpoint that does not fit the run."""


def _load_run(logdir: Path, checkpoint: Path | None) -> tuple[Config, Path, dict]:
    """The run's config, checkpoint path and checkpoint; EvalError/ConfigError/CheckpointError."""
    config_path = logdir / "config.yaml"
    if not logdir.is_dir() or not config_path.exists():
        raise EvalError(f"{logdir} holds no dreamerv2-torch run (no config.yaml); pass the "
                        "--logdir of a training run")
    config = presets.load(config_path)
    path = Path(checkpoint) if checkpoint else ckpt.find(logdir)
    if path is None:
        raise EvalError(f"no checkpoint in {logdir}; a run saves one after its first training "
                        "phase")
    if not path.is_file():
        raise EvalError(f"no such checkpoint file: {path}")
    state = ckpt.load(path)
    saved = presets.from_tree(state["config"])
    if diffs := presets.differences(saved, config):
        lines = "\n  ".join(diffs)
        raise EvalError(f"checkpoint {path} was saved by a different config than "
                        f"{config_path}:\n  {lines}")
    return config, path, state


def evaluate(logdir: str | Path, episodes: int = 10, checkpoint: str | Path | None = None,
             seed: int | None = None, video: bool = True, device: str | None = None,
             verbose: bool = False, env: Any = None) -> dict:
    """Play `episodes` mode-policy episodes with a checkpoint of the run in `logdir`.

    `env`: a gymnasium env, an env of this package or a factory ``(seed, mode) -> env``, wrapped
    as in training; needed for a run trained through the Python API on an env of your code (task
    ``api:<name>``); by default the run's own task env.

    Appends them to `scores.jsonl`, writes best/worst videos if `video`; returns the statistics.
    Raises EvalError or presets.ConfigError (both ValueError) or checkpoint.CheckpointError, each
    with a message for the user.
    """
    from .driver import SerialEnvs
    from .trained import build_env

    if episodes < 1:
        raise EvalError(f"--episodes must be >= 1, got {episodes}")
    logdir = Path(logdir).expanduser()
    config, path, state = _load_run(logdir, checkpoint)
    if device:  # e.g. a run trained on a GPU, evaluated on a laptop
        config = dataclasses.replace(config, device=device)
    elif config.device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalError(f"the run was trained on device '{config.device}', which this machine "
                        "lacks; pass --device cpu")
    if config.threads:
        torch.set_num_threads(config.threads)
    seed = config.seed + SEED_OFFSET if seed is None else int(seed)
    try:
        built = build_env(config, logdir, env, seed)
    except ValueError as error:
        raise EvalError(str(error)) from None
    envs = SerialEnvs([built])
    try:
        return _play(config, envs, state, path, logdir, episodes, seed, video, verbose)
    finally:
        envs.close()


def load_weights(agent, state: dict, path: Path, what: str) -> None:
    """The checkpoint's weights into `agent`, or one EvalError saying what they do not fit."""
    try:
        agent.load_state_dict(state["agent"])
    except (RuntimeError, KeyError) as error:
        raise EvalError(f"the weights in {path} do not fit {what}: "
                        f"{str(error).splitlines()[0]}") from None


def _play(config: Config, envs, state: dict, path: Path, logdir: Path, episodes: int, seed: int,
          video: bool, verbose: bool) -> dict:
    from .agent import Agent
    from .driver import Driver
    from .logger import Logger

    step = int(state["step"])
    frames = step * config.action_repeat
    torch.manual_seed(seed)
    agent = Agent(envs.obs_space, envs.act_space, config)
    load_weights(agent, state, path, f"the model of {logdir / 'config.yaml'}")
    logger = Logger(logdir, tensorboard=False)
    video_key = next((k for k in config.log_keys_video if k in envs.obs_space), None)
    returns: list[float] = []
    lengths: list[int] = []
    extremes: dict[str, np.ndarray] = {}  # only the best and worst episodes' frames are kept

    def on_episode(episode: dict, worker: int) -> None:
        score = float(episode["reward"].astype(np.float64).sum())
        length = len(episode["reward"]) - 1
        returns.append(score)
        lengths.append(length)
        logger.episode(mode="eval", episode_return=score, length=length, frames=frames,
                       source=SOURCE, checkpoint=path.name, seed=seed)
        if video_key is not None:  # ties keep the first such episode
            first = len(returns) == 1
            if first or score > max(returns[:-1]):
                extremes["best"] = episode[video_key]
            if first or score < min(returns[:-1]):
                extremes["worst"] = episode[video_key]
        if verbose:
            print(f"episode {len(returns)}/{episodes}: return {score:g}, length {length}",
                  flush=True)

    driver = Driver(envs)
    driver.on_episodes.append(on_episode)
    driver(lambda obs, st: agent.policy(obs, st, mode="eval"), episodes=episodes)
    videos = []
    if video and extremes:
        for name, frames_ in extremes.items():
            logger.video(f"{SOURCE}_{name}", frames_)
            videos.append(str(logdir / "videos" / f"{SOURCE}_{name}" / f"{frames}.mp4"))
        logger.write(frames)  # no scalars were added: this writes the videos only
    logger.close()
    r, n = np.array(returns), np.array(lengths)
    return {"logdir": str(logdir), "checkpoint": str(path), "step": step, "frames": frames,
            "task": config.task, "seed": seed, "episodes": len(r), "returns": returns,
            "lengths": lengths, "mean": float(r.mean()), "std": float(r.std()),
            "min": float(r.min()), "max": float(r.max()), "mean_length": float(n.mean()),
            "min_length": int(n.min()), "max_length": int(n.max()), "videos": videos}


def eval_main(argv: list[str] | None = None) -> int:
    """`dreamerv2-torch eval --logdir DIR [--episodes N] ...`; exit 2 on a bad run/checkpoint."""
    from .envs.dmc import RenderingError

    parser = argparse.ArgumentParser(
        prog="dreamerv2-torch eval", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
        description="Play evaluation episodes (mode policy) with a checkpoint of a run; append "
                    "them to its scores.jsonl and save videos of the best and worst episode.")
    parser.add_argument("--logdir", required=True, help="the run directory")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to play")
    parser.add_argument("--checkpoint", help="checkpoint file; none: the run's latest")
    parser.add_argument("--seed", type=int, help=f"env seed; none: config seed + {SEED_OFFSET}")
    parser.add_argument("--video", action=argparse.BooleanOptionalAction, default=True,
                        help="save videos of the best and the worst episode")
    parser.add_argument("--device", help="override the run's device (auto, cpu, cuda, ...)")
    args = parser.parse_args(argv)
    print(f"Evaluating {args.checkpoint or 'the latest checkpoint'} of {args.logdir} for "
          f"{args.episodes} episodes (mode policy).", flush=True)
    try:
        result = evaluate(args.logdir, args.episodes, args.checkpoint, args.seed, args.video,
                          args.device, verbose=True)
    except (ValueError, ImportError, ckpt.CheckpointError, RenderingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{result['task']}, {Path(result['checkpoint']).name} at step {result['step']} "
          f"({result['frames']} frames), env seed {result['seed']}:\n"
          f"  return: mean {result['mean']:.2f}  std {result['std']:.2f}  "
          f"min {result['min']:g}  max {result['max']:g}  ({result['episodes']} episodes)\n"
          f"  length: mean {result['mean_length']:.1f}  min {result['min_length']}  "
          f"max {result['max_length']}")
    print(f"Appended {result['episodes']} episodes to {Path(args.logdir) / 'scores.jsonl'} "
          f"(mode eval, source {SOURCE}).")
    for video in result["videos"]:
        print(f"Video: {video}")
    return 0
