"""Stored results as three tidy pandas tables: runs, history, layers (the input of every analysis view).

``load_results(paths)`` accepts any mix of run directories, runs roots and sweep results folders (runs are found
recursively, see :func:`largebatch.records.runs.find_runs`), so each view works for a single run, one sweep or
several sweeps compared. The tables:

- ``runs``: one row per run, the columns of :func:`largebatch.records.runs.runs_table` (status, config and summary
  as dotted keys such as ``optimizer.name``, ``batch_size``, ``plan.lr``, ``eval.val_acc``, ``final.val/acc``)
  plus ``sweep`` (the sweep folder's name, ``""`` for a run outside a sweep), ``sweep_dir``, ``lr`` (the peak
  learning rate the run used: ``plan.lr``, i.e. ``optimizer.lr`` after the ``lr_scaling`` rule) and ``diverged``.
- ``history``: long, one row per logged value: ``run_id, step, epoch, samples, metric, value`` (current rows
  only; ``samples`` = step × effective batch size, the examples-to-result axis of Shallue et al. 2019; for a run
  whose batch changed, the ``batch/samples`` it logged at that step).
- ``layers``: long per-layer telemetry: ``run_id, step, layer, weight_norm, grad_norm, update_norm,
  trust_ratio, lr``.

``studies`` maps each loaded sweep folder that holds an Optuna journal to that file. ``damage`` lists what is wrong
with each damaged run (:class:`largebatch.records.reader.Damage`; its ``str`` is the line views print): a run whose
config, summary, metrics or layers cannot be read is left out of all three tables, so every view sees the same
runs; a metrics file with a torn last line keeps its complete rows. Nothing here imports Ray or Lightning:
analysis reads files only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from largebatch.records.reader import Damage, read_layers, read_metrics
from largebatch.records.runs import read_runs
from largebatch.records.store import FINISHED, LAYER_DTYPES, best_direction, current_rows
from largebatch.sweep.folder import SweepFolder

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
    damage: tuple[Damage, ...] = ()

    def finished(self) -> pd.DataFrame:
        """The runs that ended on their own, ``completed`` or ``diverged`` (running, failed and interrupted runs
        carry partial results and are left out of every view)."""
        return self.runs[self.runs["status"].isin(FINISHED)]


def _sweep_dir(run: Path) -> Path | None:
    """The sweep results folder holding ``run`` (laid out as ``<sweep>/runs/<trial>``), else None."""
    folder = SweepFolder(run.parent.parent)
    return folder.root if run.parent == folder.runs_dir and folder.sweep_file.is_file() else None


def _no_runs(paths: Sequence[Path], damage: Sequence[Damage]) -> ValueError:
    where = ", ".join(map(str, paths))
    if not damage:
        return ValueError(f"no runs under {where}")
    return ValueError(f"no readable runs under {where}; {len(damage)} damaged file(s), the first: {damage[0]}")


def _runs(paths: Sequence[Path]) -> tuple[pd.DataFrame, list[Damage]]:
    table, damage = read_runs(paths)
    if table.empty:
        raise _no_runs(paths, damage)
    table = table.assign(path=table["path"].map(lambda p: str(Path(p).resolve())))
    table = table.drop_duplicates("path").reset_index(drop=True)
    sweeps = table["path"].map(lambda p: _sweep_dir(Path(p)))
    lr = table["plan.lr"] if "plan.lr" in table else pd.Series(float("nan"), index=table.index)
    runs = table.assign(
        sweep=sweeps.map(lambda s: "" if s is None else s.name),
        sweep_dir=sweeps.map(lambda s: "" if s is None else str(s)),
        lr=lr.fillna(table["optimizer.lr"]).astype(float),
        diverged=table["status"].eq("diverged"),
    )
    return runs, damage


def _rows(runs: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], list[Damage]]:
    """Each run's current metric and layer rows by path, and the damage of runs whose rows cannot be read."""
    metrics, layers, damage = {}, {}, []
    for path in runs["path"]:
        read = read_metrics(path), read_layers(path)
        failed = [r for r in read if isinstance(r, Damage)]
        if failed:
            damage += failed
        else:
            metrics[path], layers[path] = current_rows(read[0], "name"), current_rows(read[1], "layer")
    return metrics, layers, damage


def _history(runs: pd.DataFrame, metrics: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    frames = []
    for run_id, path, batch_size in runs[["run_id", "path", "batch_size"]].itertuples(index=False):
        rows = metrics[path]
        samples = rows["step"] * int(batch_size)
        seen = rows[rows["name"] == SAMPLES_SEEN]  # a run whose batch changed logs it every step
        if not seen.empty:
            samples = rows["step"].map(seen.set_index("step")["value"]).fillna(samples)
        frames.append(rows.assign(run_id=run_id, samples=samples))
    history = pd.concat(frames, ignore_index=True).rename(columns={"name": "metric"})
    return history[list(HISTORY_COLUMNS)]


def _layers(runs: pd.DataFrame, layers: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    frames = [layers[path].sort_values("step", kind="stable").assign(run_id=run_id)
              for run_id, path in runs[["run_id", "path"]].itertuples(index=False)]
    return pd.concat(frames, ignore_index=True)[list(LAYER_COLUMNS)]


def load_results(paths: Iterable[str | Path] | str | Path) -> Results:
    """The runs, history and layer tables of every readable run at or below ``paths`` (each run once), the Optuna
    journals of the sweeps among them, and what is wrong with the damaged runs (left out of every table).
    FileNotFoundError for a missing path, ValueError when there are no readable runs."""
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    runs, damage = _runs(paths)
    metrics, layers, unreadable = _rows(runs)
    runs = runs[runs["path"].isin(metrics)].reset_index(drop=True)
    reported = {record.file.resolve() for record in damage}  # e.g. a foreign header: one line per file
    damage += [record for record in unreadable if record.file.resolve() not in reported]
    if runs.empty:
        raise _no_runs(paths, damage)
    studies = {d: SweepFolder(Path(d)).journal for d in runs["sweep_dir"].unique() if d}
    return Results(runs, _history(runs, metrics), _layers(runs, layers),
                   {d: j for d, j in studies.items() if j.is_file()}, tuple(damage))


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
