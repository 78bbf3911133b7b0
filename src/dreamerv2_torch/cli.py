"""Command line: `dreamerv2-torch {train,eval,sweep,scores,plot,presets}` (or `python -m ...`).

`train` composes presets in order (`--preset atari small` or `--preset atari,small`), then applies
`--<dotted.key> value` overrides through tyro, which also renders `--help` from the field
docstrings of `config.py` and suggests close matches for an unknown flag.
"""

from __future__ import annotations

import argparse
import sys

from . import presets

USAGE = """usage: dreamerv2-torch COMMAND [ARGS]

commands:
  train     train DreamerV2 (rerun the same command on a logdir to resume)
  eval      play evaluation episodes with a run's checkpoint (mode policy), save videos
  sweep     train many (task, seed) runs as Ray tasks, with retries, then scores and plot
  scores    the paper's Atari score table for run directories
  plot      learning curves of run directories beside the official ones
  presets   list the presets and their values

Run `dreamerv2-torch COMMAND --help` for the options of a command.
"""


def _split_presets(argv: list[str]) -> tuple[list[str], list[str]]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--preset", "--presets", "--configs", nargs="+", action="extend",
                        default=[])
    known, rest = parser.parse_known_args(argv)
    names = [n for item in known.preset for n in item.split(",") if n]
    return names, rest


def parse_train_args(argv: list[str]):
    """argv → resolved, validated Config (raises SystemExit on --help or bad flags)."""
    import tyro

    from .config import Config

    names, rest = _split_presets(argv)
    base = presets.resolve(names)
    config = tyro.cli(Config, args=rest, default=base, prog="dreamerv2-torch train",
                      description=(f"Train DreamerV2. Presets given: {names or ['defaults']}; "
                                   f"available: {', '.join(presets.PRESETS)}."),
                      config=(tyro.conf.FlagConversionOff,), use_underscores=True)
    presets.validate(config)
    return config


def train_main(argv: list[str]) -> int:
    from . import checkpoint, rundir
    from .loop import train

    try:
        config = parse_train_args(argv)
        result = train(config)
    except (presets.ConfigError, checkpoint.CheckpointError, ValueError, rundir.RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    state = "stopped at" if result["stopped"] else "finished at"
    print(f"Training {state} {result['step']} policy steps ({result['frames']} frames); "
          f"logdir: {config.logdir}")
    return 0


def presets_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dreamerv2-torch presets")
    parser.add_argument("names", nargs="*", help="presets to show (default: all)")
    args = parser.parse_args(argv)
    for name in args.names or list(presets.PRESETS):
        if name not in presets.PRESETS:
            print(f"error: unknown preset '{name}' ({', '.join(presets.PRESETS)})",
                  file=sys.stderr)
            return 2
        print(f"{name}:")
        for key, value in presets.PRESETS[name].items():
            print(f"  {key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # issue 9: Ctrl-C before training installs its handler
        print("\ninterrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "train":
        return train_main(rest)
    if command == "presets":
        return presets_main(rest)
    if command == "eval":
        from .evaluate import eval_main
        return eval_main(rest)
    if command == "sweep":
        from .sweep import sweep_main
        return sweep_main(rest)
    if command == "scores":
        from .scores import scores_main
        return scores_main(rest)
    if command == "plot":
        from .plot import plot_main
        return plot_main(rest)
    print(f"error: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
