"""Hyperparameter sensitivity: the learning rate × batch size map of a final metric, and the width of the
"good" learning-rate band per batch size.

Shallue et al. (2019, JMLR 20(112), §4.7) show that the region of well-performing learning rates shrinks and
moves as the batch size grows; the band width in decades of learning rate measures how hard a batch size is to
tune. Definitions used here:

- A run's learning rate is the ``lr`` column: by default its peak rate (``optimizer.lr`` after the
  ``lr_scaling`` rule); ``optimizer.lr`` (the rate at the rule's reference batch size) gives a rectangular grid
  when a sweep varies it under a scaling rule. The band width in decades is the same either way.
- Heat map cells: learning rates are put in log-spaced bins of ``1/bins_per_decade`` decade, anchored at whole
  decades; a bin's label is the geometric mean of the rates of the series' runs in it, at any batch size
  (exactly the rate on a grid with at most one value per bin). A cell's value is its best run's metric; a cell
  is *diverged* when all its runs diverged.
- Good band: a run is *good* when its metric is within ``tolerance`` (absolute, in the metric's units) of the
  best run of its batch size (``reference="batch"``, how hard each batch size is to tune) or of the best run of
  all the runs given (``reference="all"``, one bar for every cell: where the band vanishes, no learning rate
  reaches it any more): ``value >= best - tolerance`` when maximising, ``value <= best + tolerance`` when
  minimising. Diverged runs are never good. ``best_lr`` is the rate of the cell's best run, good or not, and
  ``best_at_edge`` flags it at the smallest or largest rate tried (a better rate may lie outside the grid). The
  band width is log10(largest good lr / smallest good lr), 0 for a single good rate. ``lower_edge`` /
  ``upper_edge`` flag a band that reaches the smallest / largest rate tried (the true band may be wider: widen
  the grid), and ``contiguous`` is False when a bad rate lies inside the band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from largebatch.analysis.cells import BATCH, DEFAULT_BY, best_in_cells, with_series
from largebatch.analysis.tables import direction, require

REFERENCES = ("batch", "all")  # the best run a good run is compared with: its batch size's, or all runs'


def lr_bins(lr: pd.Series, bins_per_decade: int) -> pd.Series:
    """The log-spaced bin index of each learning rate (bin k spans [10^(k/n), 10^((k+1)/n)), n = bins_per_decade)."""
    return np.floor(np.log10(lr.astype(float)) * bins_per_decade + 1e-9).astype(int)


def lr_batch_grid(
    runs: pd.DataFrame,
    *,
    metric: str = "eval.val_acc",
    mode: str | None = None,
    lr: str = "lr",
    bins_per_decade: int = 4,
    by: Sequence[str] = DEFAULT_BY,
) -> pd.DataFrame:
    """One row per (series, batch size, lr bin): ``lr`` (the bin's label: geometric mean of the rates, column
    ``lr``, of the series' runs in the bin, at any batch size), ``value`` (best finite metric of the cell, NaN when
    none), ``best_lr`` and ``best_run`` (the rate and id of the run with that value), ``n_trials``,
    ``n_diverged``, ``diverged`` (all diverged)."""
    require(runs, [metric, lr, "diverged"])
    best = direction(metric, mode)
    runs = with_series(runs, by).assign(
        lr_bin=lr_bins(runs[lr], bins_per_decade), log_lr=np.log10(runs[lr].astype(float))
    )
    finite = runs[metric].where(~runs["diverged"])
    grouped = runs.assign(value=finite).groupby(["series", BATCH, "lr_bin"])
    table = grouped.agg(
        value=("value", best), n_trials=("run_id", "size"), n_diverged=("diverged", "sum")
    ).reset_index()
    labels = 10 ** runs.groupby(["series", "lr_bin"])["log_lr"].mean()
    table.insert(3, "lr", labels.reindex(pd.MultiIndex.from_frame(table[["series", "lr_bin"]])).to_numpy())
    keys = ["series", BATCH, "lr_bin"]
    best_runs = best_in_cells(runs.assign(value=finite), "value", best, keys)
    best_runs = best_runs[[*keys, lr, "run_id"]].set_axis([*keys, "best_lr", "best_run"], axis=1)
    table = table.merge(best_runs, on=keys, how="left")
    return table.assign(diverged=table["n_diverged"] == table["n_trials"], metric=metric, lr_column=lr)


def _band(cell: pd.DataFrame, metric: str, best: str, threshold: float | None, tolerance: float
          ) -> dict[str, float | int | bool]:
    """The band of one cell: good runs meet ``threshold``, or are within ``tolerance`` of the cell's best when
    ``threshold`` is None."""
    cell = cell.sort_values("lr", kind="stable")
    values = cell[metric].where(~cell["diverged"])
    top = values.max() if best == "max" else values.min()
    if threshold is None:
        threshold = top - tolerance if best == "max" else top + tolerance
    good = (values >= threshold) if best == "max" else (values <= threshold)
    good_lr = cell.loc[good, "lr"]
    tried_low, tried_high = cell["lr"].min(), cell["lr"].max()
    low, high = (good_lr.min(), good_lr.max()) if not good_lr.empty else (math.nan, math.nan)
    scored = values.notna().any()
    best_lr = cell.loc[values.idxmax() if best == "max" else values.idxmin(), "lr"] if scored else math.nan
    return {
        "best": top,
        "threshold": threshold,
        "best_lr": best_lr,
        "best_at_edge": bool(best_lr in (tried_low, tried_high)),
        "lr_low": low,
        "lr_high": high,
        "width_decades": math.log10(high / low) if not good_lr.empty else math.nan,
        "n_trials": len(cell),
        "n_good": int(good.sum()),
        "fraction_good": float(good.mean()),
        "lower_edge": bool(low == tried_low),
        "upper_edge": bool(high == tried_high),
        "contiguous": bool(good[cell["lr"].between(low, high)].all()),
        "lr_tried_low": tried_low,
        "lr_tried_high": tried_high,
    }


def good_lr_band(
    runs: pd.DataFrame,
    *,
    metric: str = "eval.val_acc",
    tolerance: float = 0.02,
    mode: str | None = None,
    lr: str = "lr",
    by: Sequence[str] = DEFAULT_BY,
    reference: str = "batch",
) -> pd.DataFrame:
    """One row per (series, batch size): the good band of learning rates (column ``lr``) against the best run of
    the batch size or, with ``reference="all"``, of all ``runs`` (definitions in the module docstring)."""
    require(runs, [metric, lr, "diverged"])
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if reference not in REFERENCES:
        raise ValueError(f"unknown band reference {reference!r}; allowed: {', '.join(REFERENCES)}")
    best = direction(metric, mode)
    runs = with_series(runs, by).assign(lr=runs[lr].astype(float))
    threshold = None
    if reference == "all":
        finite = runs[metric].where(~runs["diverged"])
        top = finite.max() if best == "max" else finite.min()
        threshold = top - tolerance if best == "max" else top + tolerance
    rows = [
        {"series": series, BATCH: batch, **_band(cell, metric, best, threshold, tolerance)}
        for (series, batch), cell in runs.groupby(["series", BATCH], sort=True)
    ]
    return pd.DataFrame(rows).assign(metric=metric, tolerance=tolerance, lr_column=lr, reference=reference)
