"""Steps (and examples) to reach a target validation metric vs batch size (Shallue et al. 2019, "Measuring the
Effects of Data Parallelism on Neural Network Training", JMLR 20(112), arXiv:1811.03600).

S(B) is the earliest optimizer step at which *any* run of batch size B reaches the target (``>= target`` when
maximising, ``<= target`` when minimising), i.e. the best tuned trial; E(B) = B·S(B) are the training examples
seen; a run that later diverged counts if it reached the target first. The perfect-scaling reference of each
series is S_ref(B) = S(B0)·B0/B with B0 its smallest batch size that reached the target (slope −1 on log-log
axes; E_ref is flat), and ``efficiency`` = S_ref(B)/S(B) (1 = perfect scaling). S(B) is only as fine as the
metric's logging interval (e.g. once per epoch for ``val/acc``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from largebatch.analysis.cells import BATCH, DEFAULT_BY, with_series
from largebatch.analysis.tables import direction

COLUMNS = (
    "series",
    BATCH,
    "steps",
    "samples",
    "reached",
    "run_id",
    "lr",
    "n_trials",
    "n_reached",
    "perfect_steps",
    "perfect_samples",
    "efficiency",
)


def first_reaching(history: pd.DataFrame, metric: str, target: float, mode: str | None = None) -> pd.DataFrame:
    """Per run: the first ``step`` (and its ``samples``) at which ``metric`` reaches ``target``; runs that never
    reach it are absent."""
    values = history[history["metric"] == metric]
    hit = values["value"] >= target if direction(metric, mode) == "max" else values["value"] <= target
    first = values[hit].sort_values("step", kind="stable").drop_duplicates("run_id")
    return first[["run_id", "step", "samples"]].reset_index(drop=True)


def _series_and_first(runs: pd.DataFrame, history: pd.DataFrame, metric: str, target: float, mode: str | None,
                      by: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs`` with their series column, and :func:`first_reaching` over those runs' history."""
    runs = with_series(runs, by)
    return runs, first_reaching(history[history["run_id"].isin(runs["run_id"])], metric, target, mode)


def steps_to_target(
    runs: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metric: str = "val/acc",
    target: float,
    mode: str | None = None,
    by: Sequence[str] = DEFAULT_BY,
) -> pd.DataFrame:
    """One row per (series, batch size): S(B) as ``steps``, E(B) as ``samples``, the run that got there first
    (``run_id``, ``lr``), how many runs did, and the perfect-scaling reference (see the module docstring).
    Batch sizes where no run reached the target keep a row with ``reached`` False and NaN steps."""
    runs, first = _series_and_first(runs, history, metric, target, mode, by)
    reached = runs.merge(first, on="run_id").sort_values("step", kind="stable")  # ties: the earliest started run
    best = reached.drop_duplicates(["series", BATCH]).set_index(["series", BATCH])
    counts = runs.groupby(["series", BATCH]).agg(n_trials=("run_id", "size"))
    counts["n_reached"] = reached.groupby(["series", BATCH]).size().reindex(counts.index, fill_value=0)
    table = counts.join(best[["step", "samples", "run_id", "lr"]]).reset_index().rename(columns={"step": "steps"})
    table["reached"] = table["steps"].notna()
    reference = table[table["reached"]].sort_values(BATCH).drop_duplicates("series").set_index("series")
    base = (reference["steps"] * reference[BATCH]).reindex(table["series"]).to_numpy(dtype=float)
    table["perfect_steps"] = base / table[BATCH]
    table["perfect_samples"] = base
    table["efficiency"] = table["perfect_steps"] / table["steps"].astype(float)
    table = table.assign(metric=metric, target=target)
    return table[[*COLUMNS, "metric", "target"]].sort_values(["series", BATCH], kind="stable").reset_index(drop=True)


RACE_COLUMNS = ("series", BATCH, "n_runs", "n_reached", "steps_median", "steps_min", "steps_max", "samples_median",
                "samples_min", "samples_max")


def race_to_target(
    runs: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metric: str = "val/acc",
    target: float,
    mode: str | None = None,
    by: Sequence[str] = DEFAULT_BY,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Steps and samples to ``target`` of every run, and per (series, starting batch size) their median, min and
    max over the runs that reached it, with how many did (a seed that never reached it is counted, not averaged
    in). For comparing ways to train rather than batch sizes: a batch-size schedule against fixed batches
    (Smith et al. 2017, arXiv:1711.00489: the same accuracy in fewer parameter updates), or optimizers, over
    seeds. ``samples`` are those actually seen (``batch/samples`` where the batch changed). Returns (per run,
    summary)."""
    runs, first = _series_and_first(runs, history, metric, target, mode, by)
    per_run = runs[["series", BATCH, "run_id"]].merge(first, on="run_id", how="left")
    per_run = per_run.rename(columns={"step": "steps"}).assign(reached=lambda t: t["steps"].notna())
    grouped = per_run.groupby(["series", BATCH], sort=True)
    summary = grouped.agg(n_runs=("run_id", "size"), n_reached=("reached", "sum"),
                          steps_median=("steps", "median"), steps_min=("steps", "min"), steps_max=("steps", "max"),
                          samples_median=("samples", "median"), samples_min=("samples", "min"),
                          samples_max=("samples", "max")).reset_index()
    summary["n_reached"] = summary["n_reached"].astype(int)
    per_run = per_run.sort_values(["series", BATCH, "run_id"], kind="stable").reset_index(drop=True)
    return per_run, summary[list(RACE_COLUMNS)].assign(metric=metric, target=target)
