"""A sweep's results folder, ``<runs_root>/<sweep name>/``; readable without Ray::

    sweep.yaml       the resolved sweep, experiment inlined (a sweep file in its own right; ``--resume`` reads it)
    optuna.journal   the Optuna study (JournalStorage), when search.algorithm is optuna and no storage URL is set
    ray/             Ray Tune's logs, per trial (a resume does not need them)
    runs/<run id>/   one run directory per trial (the format of ``largebatch.records.store``)
    trials.json      the trial index: per run id its state, parameters, failures and latest result

Trial states in ``trials.json``: ``pending``, ``running``, then ``completed`` or ``diverged`` (the run's own
outcome), ``stopped`` (ended early by the scheduler), ``failed`` (raised on every attempt). A sweep killed
mid-way leaves ``running`` entries; the next start (``--resume``) repairs them from the run directories
(:mod:`largebatch.sweep.plan`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from largebatch.core.yaml_io import read_yaml
from largebatch.records.store import atomic_write_text, plain_data
from largebatch.sweep.config import validate_sweep
from largebatch.sweep.space import Sweep

SWEEP_FILE = "sweep.yaml"
TRIALS_FILE = "trials.json"
TrialIndex = dict[str, dict[str, Any]]
FINISHED = ("completed", "diverged")  # the run outcomes that end a trial normally (a failed one raised)


@dataclass(frozen=True)
class SweepFolder:
    """Paths and files of one sweep's results folder (layout in the module docstring)."""

    root: Path

    @classmethod
    def of(cls, runs_root: str | Path, name: str) -> SweepFolder:
        return cls(Path(runs_root).resolve() / name)

    @property
    def sweep_file(self) -> Path:
        return self.root / SWEEP_FILE

    @property
    def journal(self) -> Path:
        return self.root / "optuna.journal"

    @property
    def ray_dir(self) -> Path:
        return self.root / "ray"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def trials_file(self) -> Path:
        return self.root / TRIALS_FILE

    def write_sweep(self, sweep: Sweep) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(exist_ok=True)
        atomic_write_text(self.sweep_file, yaml.safe_dump(sweep.resolved(), sort_keys=False))

    def read_sweep(self) -> Sweep:
        """The stored sweep (``sweep.yaml``); FileNotFoundError when this is not a sweep folder."""
        if not self.sweep_file.is_file():
            raise FileNotFoundError(f"{self.root} is not a sweep results folder (no {SWEEP_FILE})")
        config = validate_sweep(read_yaml(self.sweep_file), str(self.sweep_file))
        return Sweep(config, dict(config.experiment), str(self.sweep_file))

    def read_trials(self) -> TrialIndex:
        """The trial index (``{}`` before the first trial started)."""
        return json.loads(self.trials_file.read_text(encoding="utf-8")) if self.trials_file.exists() else {}

    def write_trials(self, trials: TrialIndex) -> None:
        text = json.dumps(plain_data(trials, finite=True), indent=1, allow_nan=False) + "\n"
        atomic_write_text(self.trials_file, text)
