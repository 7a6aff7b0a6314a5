"""``largebatch sweep SWEEP.yaml [--address ADDR] [--resume] [--name N] [--runs-root DIR]`` and
``largebatch sweep status NAME [--root DIR]``."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

DESCRIPTION = """\
Run a sweep: every grid cell x num_samples trials of the sweep's experiment, with Ray Tune (OptunaSearch or
random search, optional ASHA early stopping). Results go to RUNS_ROOT/NAME/ (runs/, trials.json, sweep.yaml,
optuna.journal, ray/); RUNS_ROOT defaults to the experiment's tracking.runs_root (./runs).

Ray: a local cluster using every CPU is started and stopped by the command (listening on 127.0.0.1 only, with
Ray's token authentication; it ends with the command, even a killed one), unless --address (or RAY_ADDRESS)
names an existing cluster, used as its owner configured it. A cluster of your own, with largebatch installed on
every node (pip install -e . from a shared checkout), on a private network with token authentication on:
  on the head node:    ray start --head --port 6379
  on each other node:  ray start --address HEAD:6379
  then, on the head:   largebatch sweep sweeps/X.yaml --address HEAD:6379
Multi-node clusters also need RUNS_ROOT on storage every node sees (NFS). (`ray job submit` needs Ray's job
server, i.e. pip install "ray[default]" on the cluster; largebatch itself installs only ray[tune].)

Interrupted (Ctrl-C, kill -9, power cut)? Run the same command with --resume: finished trials are kept as they
are, unfinished ones continue from their checkpoints, missing ones are added; the Optuna study is rebuilt from
the run directories.

  largebatch sweep status NAME [--root DIR]   the trials table of a sweep, from its results folder"""


def add_sweep_command(subparsers: Any) -> None:
    parser = subparsers.add_parser("sweep", help="run a sweep of experiments with Ray Tune, or show its status",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", metavar="SWEEP.yaml|status", help="a sweep file, or 'status' followed by NAME")
    parser.add_argument("status_name", nargs="?", metavar="NAME", help="with status: the sweep's name")
    parser.add_argument("--address", help="Ray cluster to use (default: RAY_ADDRESS, else a local cluster)")
    parser.add_argument("--resume", action="store_true", help="finish an interrupted sweep of the same name")
    parser.add_argument("--name", help="sweep name (default: the file's name key); names the results folder")
    parser.add_argument("--runs-root", "--root", dest="runs_root", metavar="DIR",
                        help="where sweep folders live (default: the experiment's tracking.runs_root, ./runs)")
    parser.set_defaults(run=run_sweep_command)


def _status(args: argparse.Namespace) -> int:
    from largebatch.records.reader import report_damage
    from largebatch.sweep.folder import SweepFolder
    from largebatch.sweep.status import format_sweep_status

    if not args.status_name:
        print("largebatch sweep status: give the sweep's NAME", file=sys.stderr)
        return 2
    text, damage = format_sweep_status(SweepFolder.of(args.runs_root or "runs", args.status_name))
    report_damage(damage)
    print(text)
    return 0


def _launch(args: argparse.Namespace) -> int:
    import optuna

    from largebatch.sweep.folder import SweepFolder
    from largebatch.sweep.launch import expected_trials, run_sweep
    from largebatch.sweep.progress import console_is_live
    from largebatch.sweep.space import load_sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = load_sweep(args.target, args.name)
    folder = SweepFolder.of(args.runs_root or sweep.base().tracking.runs_root, sweep.name)
    outcome = run_sweep(sweep, folder, resume=args.resume, address=args.address, live=console_is_live())
    counts = ", ".join(f"{n} {state}" for state, n in outcome.counts().items()) or "none"
    print(f"sweep {sweep.name}: {len(outcome.trials)} of {expected_trials(sweep)} trials ({counts})")
    resume = ["largebatch", "sweep", args.target, "--resume", *(["--name", args.name] if args.name else []),
              *(["--runs-root", args.runs_root] if args.runs_root else [])]
    if outcome.interrupted:
        how = f"stopped by {signal.Signals(outcome.stopped_by).name}" if outcome.stopped_by else "interrupted"
        print(f"{how}; finish it with: {' '.join(resume)}")
        return 128 + (outcome.stopped_by or signal.SIGINT)  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports
    print(f"results: {folder.root}\ntable:   largebatch sweep status {sweep.name} --root {folder.root.parent}")
    return 0


def run_sweep_command(args: argparse.Namespace) -> int:
    from largebatch.core.errors import ConfigError

    try:
        return _status(args) if args.target == "status" else _launch(args)
    except (ConfigError, FileNotFoundError, FileExistsError) as err:
        print(f"largebatch sweep: {err}", file=sys.stderr)
        return 2
