"""``largebatch train EXPERIMENT.yaml [--set KEY=VALUE ...] [--resume RUN]``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_train_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train", help="train one experiment from a YAML file",
        description="Train one experiment. Results go to a run directory under tracking.runs_root (default ./runs).",
    )
    parser.add_argument("experiment", help="experiment YAML, e.g. experiments/mnist1d_cnn.yaml")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override keys, e.g. --set optimizer.name=lars batch_size=4096")
    parser.add_argument("--resume", metavar="RUN", help="continue a run (id, id prefix or path) from its last checkpoint")
    parser.add_argument("--runs-root", help="override tracking.runs_root")
    parser.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from largebatch.train.config import ConfigError, load_experiment, read_yaml, validate
    from largebatch.train.runner import train
    from largebatch.train.runs import resolve_run

    overrides = list(args.overrides) + ([f"tracking.runs_root={args.runs_root}"] if args.runs_root else [])
    try:
        config = load_experiment(args.experiment, overrides)
        run_dir = None
        if args.resume:
            run_dir = resolve_run(args.resume, config.tracking.runs_root)
            saved = read_yaml(run_dir / "config.yaml")
            saved.pop("plan", None)
            config = validate(saved, str(run_dir / "config.yaml"))
        result = train(config, run_dir=run_dir, resume=run_dir is not None)
    except (ConfigError, FileNotFoundError, LookupError) as err:
        print(f"largebatch train: {err}", file=sys.stderr)
        return 2
    if result.status == "child":  # an extra DDP rank: the first process reports
        return 0
    s = result.summary
    evaluation = s.get("eval") or {}
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in evaluation.items())
    print(f"run {result.run_id}: {result.status} in {s.get('wall_time_s', 0):.1f}s, {s.get('steps')} steps"
          + (f"; {metrics}" if metrics else "") + (f"; diverged at {s['diverged_at']}" if s.get("diverged_at") else ""))
    print(f"results: {result.run_dir}")
    return 0
