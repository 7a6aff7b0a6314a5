"""``largebatch train EXPERIMENT.yaml [--set KEY=VALUE ...] [--resume RUN]``."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Any


def quiet_libraries() -> None:
    """Keep the console to our own lines: Lightning's banners, tips and deprecation chatter are noise here."""
    import lightning.pytorch  # noqa: F401  (it sets its loggers' levels on import; override after)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


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


def _notes(err: BaseException) -> str:
    """The notes the runner added to ``err`` (how the run was recorded), as the tail of one line."""
    return "".join(f"; {note}" for note in getattr(err, "__notes__", ()))


def run_train(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from largebatch.core.errors import ConfigError
    from largebatch.core.yaml_io import read_yaml
    from largebatch.records.runs import resolve_run
    from largebatch.records.store import RunBusyError
    from largebatch.train.config import load_experiment, validate
    from largebatch.train.runner import ResumeRefused, train

    quiet_libraries()
    if args.resume and args.overrides:
        print(f"largebatch train: --set cannot change a run being resumed (--resume {args.resume} continues with the "
              "config in its config.yaml); drop --set, or start a new run with it", file=sys.stderr)
        return 2
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
    except (ConfigError, FileNotFoundError, LookupError, ResumeRefused, RunBusyError) as err:
        print(f"largebatch train: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only runs root: the file and the cause, not a traceback
        target = err.filename2 or err.filename  # a failed copy or rename names its source first
        cause = f"{target}: {err.strerror}" if target and err.strerror else str(err)
        print(f"largebatch train: {cause}{_notes(err)}", file=sys.stderr)
        return 1
    except SystemExit as stop:  # Lightning ends fit with SIGTERMException on SIGTERM, SystemExit(1) on Ctrl-C
        by = "SIGTERM" if isinstance(stop, SIGTERMException) else "Ctrl-C"
        print(f"largebatch train: stopped by {by}{_notes(stop)}", file=sys.stderr)
        return 143 if by == "SIGTERM" else 130
    if result.status == "child":  # an extra DDP rank: the first process reports
        return 0
    s = result.summary
    evaluation = s.get("eval") or {}
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in evaluation.items())
    print(f"run {result.run_id}: {result.status} in {s.get('wall_time_s', 0):.1f}s, {s.get('steps')} steps"
          + (f"; {metrics}" if metrics else "") + (f"; diverged at {s['diverged_at']}" if s.get("diverged_at") else ""))
    print(f"results: {result.run_dir}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def add_noise_scale_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "noise-scale", help="predict the critical batch size from the gradient noise scale (short probe run)",
        description="Train a short probe run with NoiseScaleMonitor (McCandlish et al. 2018) and print the simple "
                    "noise scale B_simple over training and the predicted critical batch size. With "
                    "max_micro_batch below batch_size the estimate comes free from gradient accumulation; "
                    "otherwise an extra gradient on a quarter of the micro-batch is taken every few steps.",
    )
    parser.add_argument("experiment", help="experiment YAML, e.g. experiments/mnist1d_cnn.yaml")
    parser.add_argument("--steps", type=int, default=300, help="probe length in optimizer steps (default 300)")
    parser.add_argument("--every", type=int, default=5, help="measure every N steps (default 5)")
    parser.add_argument("--ema", type=float, default=0.99, help="EMA factor of both estimates (default 0.99)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--runs-root", help="override tracking.runs_root")
    parser.set_defaults(run=run_noise_scale)


def probe_flags_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the probe's ``--steps``, ``--every`` and ``--ema`` (one line), or None."""
    for flag, value in (("--steps", args.steps), ("--every", args.every)):
        if value < 1:
            return f"{flag} must be a whole number of steps >= 1 (got {value})"
    if not 0 <= args.ema < 1:
        return f"--ema must lie in [0, 1): the weight of the past in the moving average (got {args.ema})"
    return None


def run_noise_scale(args: argparse.Namespace) -> int:
    from largebatch.core.errors import ConfigError
    from largebatch.train.callbacks import NoiseScaleMonitor
    from largebatch.train.config import load_experiment
    from largebatch.train.runner import train

    problem = probe_flags_problem(args)
    if problem:
        print(f"largebatch noise-scale: {problem}", file=sys.stderr)
        return 2
    quiet_libraries()
    overrides = [*args.overrides, f"budget={{steps: {args.steps}}}", "tracking.wandb.mode=disabled"]
    overrides += [f"tracking.runs_root={args.runs_root}"] if args.runs_root else []
    monitor = NoiseScaleMonitor(every_n_steps=args.every, probe_every_n_steps=args.every, ema=args.ema)
    try:
        config = load_experiment(args.experiment, overrides)
        result = train(config, callbacks=[monitor])
    except (ConfigError, FileNotFoundError, LookupError) as err:
        print(f"largebatch noise-scale: {err}", file=sys.stderr)
        return 2
    plan, s = result.summary["plan"], result.summary
    if not monitor.history:
        print(f"largebatch noise-scale: no estimate (run {result.status} after {s.get('steps')} steps)", file=sys.stderr)
        return 1
    print(f"noise scale of {config.name}: batch {plan['batch_size']} = micro {plan['micro_batch']} × "
          f"{plan['accumulate']} accumulation × {plan['devices']} device(s); {s['steps']} steps in "
          f"{s['wall_time_s']:.1f} s (run {result.run_id}, status {result.status})")
    print("| step | B_simple | |G|² | tr(Σ) |\n|---|---|---|---|")
    rows = monitor.history
    shown = sorted({round(i * (len(rows) - 1) / 9) for i in range(10)})
    for row in (rows[i] for i in shown):
        print(f"| {row['step']} | {row['noise_scale/b_simple']:.1f} | {row['noise_scale/grad_sq']:.4g} | "
              f"{row['noise_scale/trace']:.4g} |")
    last = rows[-1]
    if last["noise_scale/grad_sq"] <= 0 or last["noise_scale/trace"] <= 0:
        print("predicted critical batch size: not resolved — the |G|² estimate is not positive, i.e. gradient noise "
              "dominates at these batch sizes; probe with a larger batch_size or a longer --ema window")
    else:
        print(f"predicted critical batch size B_crit ≈ B_simple = {last['noise_scale/b_simple']:.0f} at the end of the "
              "probe (McCandlish et al. 2018, §2.2: B_crit ≈ B_noise, estimated here without the Hessian; the noise "
              "scale grows as training progresses, so a longer probe predicts a larger B_crit)")
    step_ms = s.get("throughput", {}).get("step_ms", float("nan"))
    if plan["accumulate"] > 1:
        print("cost: none beyond the run itself (estimated from the accumulation micro-batches)")
    else:
        probe_ms = rows[-1].get("noise_scale/probe_ms", float("nan"))
        print(f"cost: {probe_ms:.2f} ms per extra-gradient probe every {args.every} steps "
              f"(≈ {100 * probe_ms / args.every / step_ms:.1f}% of the {step_ms:.2f} ms step time)")
    return 0
