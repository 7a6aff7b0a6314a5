"""Learning-rate scaling check: the best learning rate per batch size against the linear rule (Goyal et al. 2017,
"Accurate, Large Minibatch SGD", arXiv:1706.02677: η ∝ B) and the square-root rule (Hoffer et al. 2017,
arXiv:1705.08741; Krizhevsky 2014: η ∝ √B), with the exponent α of η* ∝ B^α fitted by least squares on log-log
axes. Shallue et al. (2019) found that the optimal rate follows neither rule reliably, hence the fit.

η*(B) is the peak rate (``lr``) of the best run of each batch size by ``select``; both rules are anchored at
the series' smallest batch size B0: η_linear(B) = η*(B0)·B/B0, η_sqrt(B) = η*(B0)·(B/B0)^½. With a grid of rates
η* is quantised to the grid, and ``at_edge`` flags an η* at the smallest or largest rate tried for that batch
size (the true optimum may lie outside the grid).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from largebatch.analysis.cells import BATCH, DEFAULT_BY, best_in_cells, with_series

RULES = {"linear": 1.0, "sqrt": 0.5}


def fit_power_law(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    """Least-squares (exponent, prefactor) of y = prefactor·x^exponent on log-log axes; NaN for fewer than two
    distinct x."""
    if x.nunique() < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log10(x.astype(float)), np.log10(y.astype(float)), 1)
    return float(slope), float(10**intercept)


def lr_scaling(
    runs: pd.DataFrame, *, select: str = "eval.val_acc", mode: str | None = None, by: Sequence[str] = DEFAULT_BY
) -> pd.DataFrame:
    """One row per (series, batch size): ``best_lr`` (η*), the rule predictions ``linear_lr`` and ``sqrt_lr``,
    the fitted power law's ``fitted_lr`` and its exponent ``alpha`` (per series), ``at_edge`` and the best run."""
    runs = with_series(runs, by)
    tried = runs.groupby(["series", BATCH])["lr"].agg(["min", "max"])
    best = best_in_cells(runs, select, mode, ["series", BATCH]).set_index(["series", BATCH])
    table = best[["lr", "run_id", select]].set_axis(["best_lr", "run_id", "selected_value"], axis=1)
    table["at_edge"] = (table["best_lr"] == tried["min"].reindex(table.index)) | (
        table["best_lr"] == tried["max"].reindex(table.index)
    )
    table = table.reset_index()
    parts = []
    for _, cell in table.groupby("series", sort=True):
        cell = cell.sort_values(BATCH)
        anchor_batch, anchor_lr = cell[BATCH].iloc[0], cell["best_lr"].iloc[0]
        alpha, prefactor = fit_power_law(cell[BATCH], cell["best_lr"])
        ratio = cell[BATCH] / anchor_batch
        parts.append(
            cell.assign(
                **{f"{rule}_lr": anchor_lr * ratio**power for rule, power in RULES.items()},
                fitted_lr=prefactor * cell[BATCH].astype(float) ** alpha,
                alpha=alpha,
            )
        )
    return pd.concat(parts, ignore_index=True).assign(selected_by=select) if parts else table
