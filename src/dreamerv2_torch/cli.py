"""Command line: `dreamerv2-torch {train,eval,sweep,scores,plot,presets}` (or `python -m ...`).

`train` composes presets in order (`--preset atari small` or `--preset atari,small`), then applies
`--<dotted.key> value` overrides through tyro, which also renders `--help` from the field
docstrings of `config.py` and suggests close matches for an unknown flag.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import interrupts, presets

USAGE = """usage: dreamerv2-torch COMMAND [ARGS]

commands:
  train     train DreamerV2 (rerun the same command on a logdir to resume)
  eval      play evaluation episodes with a run's checkpoint (mode policy), save videos
  sweep     train many (task, seed) runs as Ray tasks, with retries, then scores and plot
  scores    the paper's Atari score table for run directories
  plot      learning curves of run directories beside the official ones
  presets   list the presets and their values

Run `dreamerv2-torch COMMAND --help` for the options of a command; `--version` prints the
version.
"""


TRAIN_HELP = """Train DreamerV2, or resume the run in --logdir (`train --logdir DIR` alone resumes
it with its saved config.yaml).

start here:
  --preset NAME [NAME ...]  presets applied in order over the defaults (`--preset atari small`):
{presets}
  --config FILE.yaml        a config file (e.g. a run's config.yaml, or a few nested or dotted
                            keys) applied after the presets and before the flags below
  --task, --logdir, --steps, --seed, --device   the usual fields (all are listed below)

advanced (speed switches; `auto` is the measured best for the device, see
docs/performance.md): --threads, --precision, --jit, --malloc_reuse, --conv_matmul,
--policy_fp32, --batched_grads.
"""


def _split_presets(argv: list[str]) -> tuple[list[str], list[str | None], list[str]]:
    """(preset names, --config files, the remaining arguments for tyro)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--preset", "--presets", nargs="+", action="extend", default=[])
    parser.add_argument("--config", action="append", default=[])
    known, rest = parser.parse_known_args(argv)
    names = [n for item in known.preset for n in item.split(",") if n]
    return names, known.config, rest


def _logdir(argv: list[str]) -> str | None:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--logdir")
    return parser.parse_known_args(argv)[0].logdir


def load_config_file(path: str, base):
    """`base` with the keys of a YAML file applied (nested sections or dotted keys)."""
    from pathlib import Path

    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        raise presets.ConfigError(f"--config {path}: no such file")
    try:
        tree = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise presets.ConfigError(f"--config {path} is not valid YAML: "
                                  f"{str(error).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise presets.ConfigError(f"--config {path} does not hold a mapping of config keys")
    flat: dict = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[prefix + str(key)] = value

    walk(tree, "")
    try:
        return presets.apply(base, flat)
    except presets.ConfigError as error:
        raise presets.ConfigError(f"--config {path}: {error}") from None


def parse_train_args(argv: list[str]):
    """argv → resolved, validated Config (raises SystemExit on --help or bad flags)."""
    from pathlib import Path

    import tyro

    from .config import Config

    names, files, rest = _split_presets(argv)
    if "-h" in rest or "--help" in rest:
        lines = "\n".join(f"      {name:12s} {presets.PURPOSES.get(name, '')}"
                          for name in presets.PRESETS)
        print(TRAIN_HELP.format(presets=lines))
    logdir = _logdir(rest)
    saved = Path(logdir).expanduser() / "config.yaml" if logdir else None
    if not names and not files and saved is not None and saved.is_file():
        # `train --logdir DIR` alone: resume with the run's own config (flags still apply).
        base = presets.load(saved)
        print(f"Using the saved config of {logdir} ({saved}).", flush=True)
    else:
        base = presets.resolve(names)
        for file in files:
            base = load_config_file(file, base)
    config = tyro.cli(Config, args=rest, default=base, prog="dreamerv2-torch train",
                      description=(f"Presets given: {names or ['defaults']}; the values below "
                                   "are those after the presets."),
                      config=(tyro.conf.FlagConversionOff,), use_underscores=True)
    presets.validate(config)
    return config


def train_main(argv: list[str]) -> int:
    interrupts.defer()  # before torch and the envs load: a Ctrl-C there ends the command cleanly
    try:
        return _train_command(argv)
    finally:  # normally `StopRequested` has taken SIGINT over; else (an error) it is given back
        interrupts.restore()


def _train_command(argv: list[str]) -> int:
    from . import checkpoint, rundir
    from .envs.dmc import RenderingError
    from .training import train

    try:
        config = parse_train_args(argv)
        interrupts.raise_pending()
        result = train(config)
    except (presets.ConfigError, checkpoint.CheckpointError, ValueError, RenderingError,
            rundir.RunError, ImportError) as error:  # ImportError: a missing extra
        print(f"error: {error}", file=sys.stderr)
        return 2
    state = "stopped at" if result["stopped"] else "finished at"
    print(f"Training {state} {result['step']} policy steps ({result['frames']} frames); "
          f"logdir: {config.logdir}")
    return 0


def _show(value) -> str:
    """Integral floats as integers (5e7 → 50000000), tuples as lists of the same."""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def presets_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dreamerv2-torch presets", allow_abbrev=False)
    parser.add_argument("names", nargs="*", help="presets to show (default: all)")
    args = parser.parse_args(argv)
    for name in args.names or list(presets.PRESETS):
        if name not in presets.PRESETS:
            print(f"error: unknown preset '{name}' ({', '.join(presets.PRESETS)})",
                  file=sys.stderr)
            return 2
        print(f"{name}: {presets.PURPOSES.get(name, '')}")
        for key, value in presets.PRESETS[name].items():
            print(f"  {key}: {_show(value)}")
    return 0


# Commands whose module imports torch, loaded on use: command -> "module:function".
LOADED_COMMANDS = {"eval": "evaluation:eval_main", "sweep": "sweep:sweep_main",
                   "scores": "scores:scores_main", "plot": "plot:plot_main"}


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`dreamerv2-torch presets | head`): no traceback. Point stdout
        # at devnull so that the interpreter's final flush does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:  # issue 9: Ctrl-C before training installs its handler
        print("\ninterrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        from . import __version__

        print(f"dreamerv2-torch {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "train":
        return train_main(rest)
    if command == "presets":
        return presets_main(rest)
    if command in LOADED_COMMANDS:
        module, _, function = LOADED_COMMANDS[command].partition(":")
        with interrupts.deferred():  # importing torch: a Ctrl-C there is raised after it
            command_main = getattr(importlib.import_module(f".{module}", __package__), function)
        return command_main(rest)
    print(f"error: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
