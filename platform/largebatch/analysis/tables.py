"""Stored results as three tidy pandas tables: runs, history, layers (the input of every analysis view).

``load_results(paths)`` accepts any mix of run directories, runs roots and sweep results folders (runs are found
recursively, see :func:`largebatch.train.runs.find_runs`), so each view works for a single run, one sweep or
several sweeps compared. The tables:

- ``runs``: one row per run, the columns of :func:`largebatch.train.runs.runs_table` (status, config and summary
  as dotted keys such as ``optimizer.name``, ``batch_size``, ``plan.lr``, ``eval.val_acc``, ``final.val/acc``)
  plus ``sweep`` (the sweep folder's name, ``""`` for a run outside a sweep), ``sweep_dir``, ``lr`` (the peak
  learning rate the run used: ``plan.lr``, i.e. ``optimizer.lr`` after the ``lr_scaling`` rule) and ``diverged``.
- ``history``: long, one row per logged value: ``run_id, step, epoch, samples, metric, value`` (current rows
  only; ``samples`` = step × effective batch size, the examples-to-result axis of Shallue et al. 2019; for a run
  whose batch changed, the ``batch/samples`` it logged at that step).
- ``layers``: long per-layer telemetry: ``run_id, step, layer, weight_norm, grad_norm, update_norm,
  trust_ratio, lr``.

``studies`` maps each loaded sweep folder that holds an Optuna journal to that file. Nothing here imports Ray
or Lightning: analysis reads files only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from largebatch.sweep.folder import SweepFolder
from largebatch.train.runs import layers, runs_table
from largebatch.train.store import LAYER_DTYPES, RunStore, best_direction, current_rows

FINISHED = ("completed", "diverged")
HISTORY_COLUMNS = ("run_id", "step", "epoch", "samples", "metric", "value")
SAMPLES_SEEN = "batch/samples"
LAYER_COLUMNS = ("run_id", *LAYER_DTYPES)


@dataclass(frozen=True)
class Results:
    """The tidy tables of a set of runs (see the module docstring)."""

    runs: pd.DataFrame
    history: pd.DataFrame
    layers: pd.DataFrame
    studies: dict[str, Path] = field(default_factory=dict)

    def finished(self) -> pd.DataFrame:
        """The runs that ended on their own, ``completed`` or ``diverged`` (running, failed and interrupted runs
        carry partial results and are left out of every view)."""
        return self.runs[self.runs["status"].isin(FINISHED)]


def _sweep_dir(run: Path) -> Path | None:
    """The sweep results folder holding ``run`` (laid out as ``<sweep>/runs/<trial>``), else None."""
    folder = SweepFolder(run.parent.parent)
    return folder.root if run.parent == folder.runs_dir and folder.sweep_file.is_file() else None


def _runs(paths: Sequence[Path]) -> pd.DataFrame:
    table = runs_table(paths)
    if table.empty:
        raise ValueError(f"no runs under {', '.join(map(str, paths))}")
    table = table.assign(path=table["path"].map(lambda p: str(Path(p).resolve())))
    table = table.drop_duplicates("path").reset_index(drop=True)
    sweeps = table["path"].map(lambda p: _sweep_dir(Path(p)))
    lr = table["plan.lr"] if "plan.lr" in table else pd.Series(float("nan"), index=table.index)
    return table.assign(
        sweep=sweeps.map(lambda s: "" if s is None else s.name),
        sweep_dir=sweeps.map(lambda s: "" if s is None else str(s)),
        lr=lr.fillna(table["optimizer.lr"]).astype(float),
        diverged=table["status"].eq("diverged"),
    )


def _history(runs: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for run_id, path, batch_size in runs[["run_id", "path", "batch_size"]].itertuples(index=False):
        metrics = current_rows(RunStore.open(path).read_metrics(), "name")
        samples = metrics["step"] * int(batch_size)
        seen = metrics[metrics["name"] == SAMPLES_SEEN]  # a run whose batch changed logs it every step
        if not seen.empty:
            samples = metrics["step"].map(seen.set_index("step")["value"]).fillna(samples)
        frames.append(metrics.assign(run_id=run_id, samples=samples))
    history = pd.concat(frames, ignore_index=True).rename(columns={"name": "metric"})
    return history[list(HISTORY_COLUMNS)]


def _layers(runs: pd.DataFrame) -> pd.DataFrame:
    frames = [layers(path).assign(run_id=run_id) for run_id, path in runs[["run_id", "path"]].itertuples(index=False)]
    return pd.concat(frames, ignore_index=True)[list(LAYER_COLUMNS)]


def load_results(paths: Iterable[str | Path] | str | Path) -> Results:
    """The runs, history and layer tables of every run at or below ``paths`` (each run once), and the Optuna
    journals of the sweeps among them. FileNotFoundError for a missing path, ValueError when there are no runs."""
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    runs = _runs(paths)
    studies = {d: SweepFolder(Path(d)).journal for d in runs["sweep_dir"].unique() if d}
    return Results(runs, _history(runs), _layers(runs), {d: j for d, j in studies.items() if j.is_file()})


def direction(metric: str, mode: str | None = None) -> str:
    """``mode`` if given, else the metric's natural direction (``max`` for accuracies, ``min`` for losses);
    ValueError when neither says."""
    chosen = mode or best_direction(metric)
    if chosen not in ("max", "min"):
        raise ValueError(f"cannot tell whether higher or lower {metric!r} is better; give mode: max or min")
    return chosen


def require(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    """ValueError naming any of ``columns`` missing from ``frame`` (with the columns it has)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"no column {', '.join(map(repr, missing))} in the runs table; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )


def series_label(frame: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    """One legend label per row: the non-empty values of the ``by`` columns that vary across ``frame``, joined by
    " · " (the last ``by`` column alone when none varies; e.g. ``quickstart · lamb`` next to a plain ``lamb``)."""
    varying = [c for c in by if frame[c].nunique(dropna=False) > 1] or list(by[-1:])
    texts = frame[varying].astype(str)
    return (
        texts.agg(lambda row: " · ".join(v for v in row if v), axis=1) if varying else pd.Series("", index=frame.index)
    )


def filter_runs(runs: pd.DataFrame, filters: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """The runs whose value in each filtered column is one of the allowed values (compared as given, or as text
    for columns holding text); ValueError naming an unknown column."""
    require(runs, filters)
    keep = pd.Series(True, index=runs.index)
    for column, allowed in filters.items():
        values = runs[column]
        keep &= values.isin(list(allowed)) | values.astype(str).isin([str(a) for a in allowed])
    return runs[keep]
