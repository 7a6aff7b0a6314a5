"""Sharpness and the generalization gap vs batch size (Keskar et al. 2017, "On Large-Batch Training for Deep
Learning: Generalization Gap and Sharp Minima", ICLR: large batches converge to sharper minima and generalize
worse).

Sharpness is the top Hessian eigenvalue λ_max of the training loss at the end of training, logged by
``SharpnessProbe`` as ``sharpness/lambda_max`` (runs-table column ``final.sharpness/lambda_max``; power
iteration on Hessian-vector products, the proxy used since Keskar et al.'s metric 2.1). Per cell (series × batch
size), the best run by ``select`` gives λ_max, with its spread over the cell's other learning rates (as in
:func:`largebatch.analysis.generalization.generalization_gap`), and the *same run's* generalization gap and
final training loss. Diverged runs count in ``n_diverged`` but not in the spread (the probe measured weights
that had blown up). λ_max falls as the cross-entropy goes to 0, so cells are only comparable at similar
training loss (the loss column shows whether they are).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from largebatch.analysis.cells import BATCH, DEFAULT_BY
from largebatch.analysis.generalization import generalization_gap
from largebatch.analysis.tables import require

LAMBDA_MAX = "final.sharpness/lambda_max"
COLUMNS = (
    "series",
    BATCH,
    "sharpness",
    "sharpness_min",
    "sharpness_median",
    "sharpness_max",
    "gap",
    "gap_min",
    "gap_max",
    "train_loss",
    "best_run_id",
    "best_lr",
    "selected_by",
    "selected_value",
    "n_trials",
    "n_diverged",
)


def sharpness_vs_batch(
    runs: pd.DataFrame,
    *,
    sharpness: str = LAMBDA_MAX,
    gap: str = "eval.gen_gap",
    loss: str = "eval.train_loss",
    select: str = "eval.val_acc",
    mode: str | None = None,
    by: Sequence[str] = DEFAULT_BY,
) -> pd.DataFrame:
    """One row per (series, batch size) with a finite ``sharpness``: λ_max of the best run by ``select`` and its
    min/median/max over the cell's runs, that run's ``gap`` and training ``loss``, and the gap's min/max over
    the cell (see the module docstring)."""
    require(runs, [sharpness, gap, loss, "diverged"])
    measured = runs.assign(**{sharpness: runs[sharpness].where(~runs["diverged"].astype(bool))})
    lam = generalization_gap(measured, gap=sharpness, select=select, mode=mode, by=by).dropna(subset=["gap"])
    lam = lam.rename(columns=lambda c: c.replace("gap", "sharpness", 1) if c.startswith("gap") else c)
    spread = generalization_gap(runs, gap=gap, select=select, mode=mode, by=by)[["series", BATCH, "gap_min", "gap_max"]]
    same_run = runs[["run_id", gap, loss]].set_axis(["best_run_id", "gap", "train_loss"], axis=1)
    table = lam.merge(same_run, on="best_run_id", how="left").merge(spread, on=["series", BATCH], how="left")
    return table[list(COLUMNS)].sort_values(["series", BATCH], kind="stable").reset_index(drop=True)


def rank_correlation(table: pd.DataFrame, column: str) -> pd.Series:
    """Spearman's rank correlation of ``column`` with the batch size, per series (NaN below 3 batch sizes):
    +1 when ``column`` rises with every doubling, as Keskar et al. claim for sharpness and the gap."""
    require(table, ["series", BATCH, column])
    def rho(rows: pd.DataFrame) -> float:
        if len(rows) < 3 or rows[column].nunique() < 2:  # a constant column has no ranking
            return float("nan")
        return float(rows[BATCH].corr(rows[column], method="spearman"))

    return table.groupby("series", sort=True)[[BATCH, column]].apply(rho)
