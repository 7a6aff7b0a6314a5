"""Which trials a sweep still has to run, rebuilt from its results folder at every start (no Ray import).

Slots: a sweep runs ``num_samples`` trials per grid cell; slot ``k`` runs cell ``points(sweep)[k]`` (every cell
once, then every cell again, ...). A trial handed out for slot ``k`` gets the run id ``<sweep>-<k>-<6 hex>``,
which names its run directory ``runs/<run id>`` and its entry in ``trials.json``, and travels in the trial's
Tune config under :data:`RUN_ID` (so a trial run again after an interruption finds its run directory).

The truth, when a sweep (re)starts, is what the folder holds:

- ``trials.json`` (written by the driver when a trial starts, before the trial can write anything) says which
  trials were started, with which parameters, and the driver's own verdicts: ``stopped`` (by the scheduler) and
  ``failed`` (raised on every attempt);
- each run directory's ``summary.json`` (written atomically by the run itself) says whether the run finished:
  ``completed`` or ``diverged``. It wins over ``trials.json``, which may lag behind when the sweep was killed.

:func:`plan_trials` turns that into the finished trials (their outcome and objective, from which the Optuna study
is rebuilt) and the trials to run, in slot order: unfinished trials again with their own parameters and run id
(so they continue from their last checkpoint), then every slot never started. It also repairs ``trials.json``:
finished runs get their state, unfinished trials are ``pending`` until they start again. Finished trials are
never touched. The Optuna study and Tune's state are derived from this and may be lost at any moment.

Trials of a folder written before run ids named slots (Tune trial ids) take the first free slot of their cell.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from largebatch.records.store import RunStore
from largebatch.sweep.folder import FINISHED, SweepFolder, TrialIndex
from largebatch.sweep.reporting import finished_result, worst
from largebatch.sweep.space import Label, Sweep

RUN_ID = "run_id"  # the Tune config key holding a trial's run id (not a parameter)
DRIVER_VERDICTS = ("stopped", "failed")  # final states only the driver knows (the run cannot tell)


def points(sweep: Sweep) -> list[dict[str, Label]]:
    """The grid cell of every slot: each cell, ``num_samples`` times, cells interleaved."""
    return [cell for _ in range(sweep.config.num_samples) for cell in sweep.cells()]


def new_run_id(sweep: Sweep, slot: int) -> str:
    """A fresh run id for ``slot``: ``<sweep>-<slot>-<6 hex>`` (unique across sweeps of the same name)."""
    width = len(str(len(points(sweep)) - 1))
    return f"{sweep.name}-{slot:0{width}d}-{secrets.token_hex(3)}"


def slot_of(run_id: str, sweep: Sweep) -> int | None:
    """The slot a run id names, or None for another format."""
    parts = run_id.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[0] == sweep.name and parts[1].isdigit() else None


def trial_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters (grid labels and sampled values): its Tune config without the run id."""
    return {key: value for key, value in config.items() if key != RUN_ID}


@dataclass(frozen=True)
class Finished:
    """A trial that ended: its outcome and the objective the searcher was (or would have been) told."""

    run_id: str
    params: dict[str, Any]
    state: str
    value: float | None  # None for a failed trial


@dataclass(frozen=True)
class Todo:
    """A trial to run: its slot and cell, and for a trial started before, its parameters and run id."""

    slot: int
    cell: dict[str, Label]
    params: dict[str, Any] | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class Plan:
    finished: list[Finished]
    todo: list[Todo]


def _summary(folder: SweepFolder, run_id: str) -> dict[str, Any]:
    """The run's summary, ``{}`` when it has none or it cannot be read (the trial then runs again)."""
    try:
        return RunStore(folder.runs_dir / run_id).read_summary()
    except (OSError, ValueError):
        return {}


def _outcome(sweep: Sweep, run_id: str, entry: Mapping[str, Any], summary: Mapping[str, Any]) -> Finished | None:
    """The trial's final outcome from its index ``entry`` and run ``summary`` (see the module docstring), or None
    while it is unfinished."""
    metric, mode = sweep.config.metric, sweep.config.mode
    params = trial_params(entry["params"])
    if summary.get("status") in FINISHED:
        return Finished(run_id, params, summary["status"], finished_result(summary, metric, mode)[metric])
    if entry["state"] == "failed":
        return Finished(run_id, params, "failed", None)
    if entry["state"] == "stopped":
        value = entry.get("metric")
        return Finished(run_id, params, "stopped", value if isinstance(value, (int, float)) else worst(mode))
    return None


def _repaired(entry: Mapping[str, Any], done: Finished | None, summary: Mapping[str, Any], sweep: Sweep) -> dict:
    """The index entry as the folder's truth has it: a finished run's state and final numbers, else pending."""
    if done is None:
        return {**entry, "state": "pending"}
    if done.state in DRIVER_VERDICTS:
        return dict(entry)
    result = finished_result(summary, sweep.config.metric, sweep.config.mode)
    value = result[sweep.config.metric]
    return {**entry, "state": done.state, "epochs": result["epochs"], "samples": result["samples"],
            "metric": value if math.isfinite(value) else None}


def plan_trials(sweep: Sweep, folder: SweepFolder) -> Plan:
    """The finished trials and the trials still to run (module docstring); rewrites ``trials.json`` repaired."""
    cells = points(sweep)
    free = dict(enumerate(cells))
    index: TrialIndex = folder.read_trials()
    finished: list[Finished] = []
    again: list[Todo] = []
    for run_id in sorted(index, key=lambda rid: (slot_of(rid, sweep) is None, slot_of(rid, sweep) or 0, rid)):
        entry = index[run_id]
        params = trial_params(entry["params"])
        cell = {axis.key: params[axis.key] for axis in sweep.axes}
        named = slot_of(run_id, sweep)
        slot = named if free.get(named) == cell else next((s for s, c in free.items() if c == cell), None)
        if slot is not None:
            del free[slot]
        summary = _summary(folder, run_id)
        done = _outcome(sweep, run_id, entry, summary)
        index[run_id] = _repaired(entry, done, summary, sweep)
        if done is not None:
            finished.append(done)
        elif slot is not None:
            again.append(Todo(slot, cell, params, run_id))
    if index:
        folder.write_trials(index)
    todo = sorted(again, key=lambda t: t.slot) + [Todo(slot, cell) for slot, cell in free.items()]
    return Plan(finished, todo)
