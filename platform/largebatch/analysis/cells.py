"""Cells of a batch-size study: the runs sharing a series (e.g. an optimizer) and an effective batch size.

Shallue et al. (2019, JMLR 20(112), arXiv:1811.03600) compare batch sizes by the *best tuned trial* of each
batch size; every view that reports "the" value of a cell uses :func:`best_in_cells` the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from largebatch.analysis.tables import direction, require, series_label

BATCH = "batch_size"
DEFAULT_BY = ("sweep", "optimizer.name")


def with_series(runs: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """``runs`` with a ``series`` column (the legend label of :func:`series_label` for the ``by`` columns)."""
    require(runs, [*by, BATCH])
    return runs.assign(series=series_label(runs, by))


def best_in_cells(runs: pd.DataFrame, metric: str, mode: str | None, keys: Sequence[str]) -> pd.DataFrame:
    """The best run of each group of ``keys`` by ``metric`` (``mode`` or its natural direction), ignoring runs
    whose metric is missing (diverged runs have no final evaluation); ties go to the earliest run."""
    require(runs, [metric, *keys])
    scored = runs.dropna(subset=[metric])
    if scored.empty:
        return scored
    order = scored.sort_values(metric, ascending=direction(metric, mode) == "min", kind="stable")
    return order.drop_duplicates(list(keys)).sort_values(list(keys), kind="stable").reset_index(drop=True)
