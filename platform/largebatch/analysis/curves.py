"""Training curves of the best run of each cell (series × batch size), against steps, epochs or examples seen.

Against ``samples`` (examples seen), curves of different batch sizes compare at equal data, the axis on which
large batches look worse; against ``step`` at equal optimizer updates, the axis on which they look better
(Shallue et al. 2019 plot both).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from largebatch.analysis.cells import BATCH, DEFAULT_BY, best_in_cells, with_series

AXES = ("step", "epoch", "samples")


def curves(
    runs: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metrics: Sequence[str],
    select: str = "eval.val_acc",
    mode: str | None = None,
    by: Sequence[str] = DEFAULT_BY,
) -> pd.DataFrame:
    """Long rows ``series, batch_size, run_id, lr, step, epoch, samples, metric, value`` for ``metrics`` of the
    best run of each cell by ``select``."""
    best = best_in_cells(with_series(runs, by), select, mode, ["series", BATCH])
    chosen = history[history["metric"].isin(metrics)].merge(best[["run_id", "series", BATCH, "lr"]], on="run_id")
    columns = ["series", BATCH, "run_id", "lr", *AXES, "metric", "value"]
    return chosen[columns].sort_values(["series", BATCH, "metric", "step"], kind="stable").reset_index(drop=True)
