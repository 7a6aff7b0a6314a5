"""Generalization gap vs effective batch size (Keskar et al. 2017, "On Large-Batch Training for Deep Learning:
Generalization Gap and Sharp Minima", ICLR; Hoffer et al. 2017, arXiv:1705.08741).

Per cell (series × batch size): the gap of the best trial (chosen by ``select``, e.g. validation accuracy, as a
tuned comparison would), and the spread of the gap over the cell's other learning rates (min, median, max over
its non-diverged trials), so a gap that only appears at badly tuned learning rates is visible as such.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from largebatch.analysis.cells import BATCH, DEFAULT_BY, best_in_cells, with_series
from largebatch.analysis.tables import require

COLUMNS = (
    "series",
    BATCH,
    "gap",
    "gap_min",
    "gap_median",
    "gap_max",
    "best_run_id",
    "best_lr",
    "selected_by",
    "n_trials",
    "n_diverged",
)


def generalization_gap(
    runs: pd.DataFrame,
    *,
    gap: str = "eval.gen_gap",
    select: str = "eval.val_acc",
    mode: str | None = None,
    by: Sequence[str] = DEFAULT_BY,
) -> pd.DataFrame:
    """One row per (series, batch size): ``gap`` of the best run by ``select`` and ``gap_min/median/max`` over
    the cell's runs with a finite gap; ``n_trials`` counts every run in the cell, ``n_diverged`` the diverged."""
    require(runs, [gap, select, "lr", "diverged"])
    runs = with_series(runs, by)
    keys = ["series", BATCH]
    best = best_in_cells(runs.dropna(subset=[gap]), select, mode, keys).set_index(keys)
    spread = runs.dropna(subset=[gap]).groupby(keys)[gap].agg(["min", "median", "max"])
    counts = runs.groupby(keys).agg(n_trials=("run_id", "size"), n_diverged=("diverged", "sum"))
    table = counts.join(spread.add_prefix("gap_")).join(
        best[[gap, "run_id", "lr", select]].set_axis(["gap", "best_run_id", "best_lr", "selected_value"], axis=1)
    )
    table = table.reset_index().assign(selected_by=select)
    return table[[*COLUMNS, "selected_value"]].sort_values(keys, kind="stable").reset_index(drop=True)
