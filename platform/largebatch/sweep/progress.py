"""Driver-side bookkeeping of a running sweep: the trial index (``trials.json``) and a live console table.

A Ray Tune callback runs in the driver, so the index is written by one process and knows each trial's real
outcome: ``completed``/``diverged`` from the trial's last result, ``stopped`` when the scheduler ended it
before its last result, ``failed`` when every attempt raised (``failures`` counts the attempts that raised).
The live table is redrawn in place at most every ``every_s`` seconds, on a terminal only (not under CI). Where
stdout is not a terminal (nohup, SLURM, CI, a pipe) a one-line summary is printed instead, at most every
``log_every_s`` seconds and when the sweep ends: trials finished (by outcome), running and failed, and the best
objective so far with its trial's parameters.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from largebatch.sweep.folder import FINISHED, SweepFolder
from largebatch.sweep.plan import RUN_ID, trial_params
from largebatch.sweep.space import Sweep


def console_is_live() -> bool:
    """A live table only on an interactive terminal outside CI."""
    return sys.stdout.isatty() and not os.environ.get("CI")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return "-" if value is None else str(value)


def format_trials(sweep: Sweep, trials: dict[str, dict[str, Any]]) -> str:
    """The trial index as text: id, state, each grid axis and sampled key, epochs and the objective."""
    keys = [*(axis.key for axis in sweep.axes), *sweep.config.sample]
    header = ["trial", "state", *keys, "epochs", sweep.config.metric]
    rows = [[trial_id, entry["state"], *(entry["params"].get(k) for k in keys),
             entry.get("epochs"), entry.get("metric")] for trial_id, entry in trials.items()]
    text = [[_cell(v) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in text) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in text)


def print_line(line: str) -> None:
    print(line, flush=True)


def format_progress(sweep: Sweep, trials: dict[str, dict[str, Any]], expected: int | None = None) -> str:
    """One line about the trial index: finished trials by outcome, running, failed, and the best objective so far
    (by the sweep's ``mode``) with the trial's parameters."""
    states = Counter(entry["state"] for entry in trials.values())
    finished = {state: states[state] for state in (*FINISHED, "stopped") if states[state]}
    done = sum(finished.values())
    line = (f"sweep {sweep.name}: {done}{f'/{expected}' if expected else ''} finished"
            + (f" ({', '.join(f'{n} {state}' for state, n in finished.items())})" if finished else "")
            + f", {states['running']} running, {states['failed']} failed")
    scored = [(entry["metric"], trial_id) for trial_id, entry in trials.items()
              if isinstance(entry.get("metric"), float | int) and math.isfinite(entry["metric"])]
    if scored:
        value, trial_id = (max if sweep.config.mode == "max" else min)(scored)
        params = ", ".join(f"{key}={_cell(v)}" for key, v in trials[trial_id]["params"].items())
        line += f"; best {sweep.config.metric} {_cell(float(value))} (trial {trial_id}: {params})"
    return line


class TrialLog(Callback):
    """Keeps ``trials.json`` current and, when ``live``, redraws a table of trials on the console; otherwise
    ``echo`` gets a :func:`format_progress` line at most every ``log_every_s`` seconds and at the end."""

    def __init__(self, sweep: Sweep, folder: SweepFolder, live: bool, every_s: float = 2.0,
                 log_every_s: float = 30.0, expected: int | None = None,
                 echo: Callable[[str], None] | None = None) -> None:
        self.sweep, self.folder, self.live, self.every_s = sweep, folder, live, every_s
        self.log_every_s, self.expected = log_every_s, expected
        self.echo = echo or print_line  # a module function: Tune pickles its callbacks with the experiment
        self.trials: dict[str, dict[str, Any]] = {}
        self._drawn_lines = 0
        self._drawn_at = 0.0
        self._logged_at = time.monotonic()

    def setup(self, **info: Any) -> None:
        self.trials = self.folder.read_trials()  # a resumed sweep keeps its finished trials' entries

    def _update(self, trial: Trial, **fields: Any) -> None:
        run_id = trial.config[RUN_ID]  # entries are keyed by run id (see largebatch.sweep.plan)
        entry = self.trials.setdefault(run_id, {"state": "pending", "params": trial_params(trial.config)})
        entry.update(fields, failures=trial.num_failures, run_dir=str(self.folder.runs_dir / run_id))
        self.folder.write_trials(self.trials)
        self._draw(force=False)

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._update(trial, state="running")

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        self._update(trial, epochs=result.get("epochs"), samples=result.get("samples"),
                     metric=result.get(self.sweep.config.metric))

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        status = trial.last_result.get("status")
        self._update(trial, state=status if status in FINISHED else "stopped")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._update(trial, state="failed")

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._draw(force=True)

    def _draw(self, force: bool) -> None:
        if not self.live:
            if force or time.monotonic() - self._logged_at >= self.log_every_s:
                self.echo(format_progress(self.sweep, self.trials, self.expected))
                self._logged_at = time.monotonic()
            return
        if not force and time.monotonic() - self._drawn_at < self.every_s:
            return
        text = format_trials(self.sweep, self.trials)
        clear = f"\x1b[{self._drawn_lines}F\x1b[J" if self._drawn_lines else ""
        sys.stdout.write(clear + text + "\n")
        sys.stdout.flush()
        self._drawn_lines = text.count("\n") + 1
        self._drawn_at = time.monotonic()
