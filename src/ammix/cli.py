"""The ``ammix`` command: a thin argparse dispatcher over sub-commands.

Each sub-command is an entry of ``COMMANDS``: ``name -> Command(help, add_arguments, run)``, where
``add_arguments(parser)`` declares its arguments and ``run(args) -> int | None`` does the work (the
return value is the exit code, None meaning 0). Another module adds one with ``register(...)`` (and an
import in ``_load_commands``), or by adding an entry here.

Exit codes: 0 success; 2 a usage or config mistake (one line, no traceback); 1 a runtime failure the
engine reports cleanly (unreadable checkpoint, missing data files, diverged loss); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    description: str | None = None
    accepts_overrides: bool = False  # stray key=value tokens are collected into args.overrides


COMMANDS: dict[str, Command] = {}


def register(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int | None],
    description: str | None = None,
    accepts_overrides: bool = False,
) -> None:
    """Add (or replace) the sub-command ``name``."""
    COMMANDS[name] = Command(help, add_arguments, run, description, accepts_overrides)


# --- ammix train -------------------------------------------------------------------------------------

TRAIN_DESCRIPTION = """\
Train one run from a YAML config, with dotted key=value overrides (values parsed as YAML):

  ammix train configs/smoke.yaml --run-dir runs/smoke
  ammix train configs/lt-cifar10.yaml optim.lr=0.05 mixing.method=am_mixup mixing.gamma=0.95
  torchrun --nproc_per_node=2 -m ammix train configs/smoke.yaml --run-dir runs/ddp

The run folder gets config.yaml (resolved), metrics.jsonl (one line per epoch), summary.json and
last.pt. A folder that already holds a run is refused unless --resume (continue from last.pt) or
--fresh (delete it and start again) is given.
"""


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file, e.g. configs/smoke.yaml")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides, e.g. optim.lr=0.05 mixing.gamma=0.95 train.epochs=3",
    )
    p.add_argument("--run-dir", help="run folder (default: runs/<config name>)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint"
    )
    mode.add_argument("--fresh", action="store_true", help="delete the run in --run-dir and start again")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def _train_run(args: argparse.Namespace) -> int:
    from ammix.engine import load_config, train

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / Path(args.config).stem
    summary = train(cfg, run_dir, resume=args.resume, fresh=args.fresh, command=args.command_line)
    return 0 if summary is not None else 1


register(
    "train",
    "train one run from a YAML config",
    _train_arguments,
    _train_run,
    description=TRAIN_DESCRIPTION,
    accepts_overrides=True,
)


# --- dispatch ----------------------------------------------------------------------------------------


def _load_commands() -> None:
    """Import the modules that register further sub-commands (none that fail to import)."""
    for module in ("ammix.experiments.cli",):
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise


def build_parser() -> argparse.ArgumentParser:
    from ammix import __version__

    parser = argparse.ArgumentParser(
        prog="ammix",
        description="Asymptotic Midpoint Mixup (AM-mixup) and baselines: training and experiments.",
        epilog="Run 'ammix COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"ammix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=cmd.help,
            description=cmd.description or cmd.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.add_arguments(p)
        p.set_defaults(_command=cmd)
    return parser


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def main(argv: list[str] | None = None) -> int:
    """Run the ``ammix`` command line; returns the exit code (argparse usage errors exit with 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _load_commands()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    cmd: Command | None = getattr(args, "_command", None)
    if cmd is None:
        parser.print_help(sys.stderr)
        return 2
    if extra:
        stray = [e for e in extra if e.startswith("-") or "=" not in e]
        if stray or not cmd.accepts_overrides:
            parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
        args.overrides = list(getattr(args, "overrides", None) or []) + extra
    args.command_line = " ".join(["ammix", *argv])
    try:
        code = cmd.run(args)
    except KeyboardInterrupt:
        if _is_main_rank():
            print("ammix: interrupted; continue the run with --resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early, e.g. `| head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        code = _report(exc)
        if code is None:
            raise
        return code
    return 0 if code is None else int(code)


def _report(exc: Exception) -> int | None:
    """Print a known error as one line and return its exit code; None for anything else (re-raised)."""
    from ammix.engine import (
        CAPTURE_FAILED_EXIT,
        CaptureFailed,
        CheckpointError,
        ConfigError,
        DataError,
        RunDirError,
        TrainingDiverged,
    )

    if isinstance(exc, ConfigError):
        kind, code = "config error", 2
    elif isinstance(exc, CaptureFailed):
        kind, code = "error", CAPTURE_FAILED_EXIT
    elif isinstance(exc, RunDirError):
        kind, code = "error", 2
    elif isinstance(exc, (CheckpointError, DataError, TrainingDiverged)):
        kind, code = "error", 1
    else:
        return None
    if _is_main_rank():
        print(f"ammix: {kind}: {exc}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
