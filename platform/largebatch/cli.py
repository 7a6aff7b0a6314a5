"""The ``largebatch`` command line: one subcommand per user task, each a thin layer over the package API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from largebatch import __version__
from largebatch.dashboard.command import add_dashboard_command
from largebatch.records.runs import add_runs_command
from largebatch.reproduce.command import add_reproduce_command
from largebatch.sweep.command import add_sweep_command
from largebatch.train.command import add_noise_scale_command, add_train_command

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="largebatch",
        description="largebatch: large-batch training research (LARS, LAMB, batch-size sweeps, dashboards).",
    )
    parser.add_argument("--version", action="version", version=f"largebatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_train_command(commands)
    add_noise_scale_command(commands)
    add_runs_command(commands)
    add_sweep_command(commands)
    add_dashboard_command(commands)
    add_reproduce_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Command | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
