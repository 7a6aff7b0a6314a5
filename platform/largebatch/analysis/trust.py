"""Per-layer trust ratios over training and at initialisation (You et al. 2017, LARS, arXiv:1708.03888, eq. 6;
You et al. 2019, LAMB, arXiv:1904.00962, Algorithm 2).

The layer table's ``trust_ratio`` is the ratio the optimizer applied for LARS/LAMB, and ‖w‖/‖g‖ (the ratio LARS
*would* apply) for other optimizers (see :mod:`largebatch.train.callbacks.trust_ratio`). LARS motivates the
ratio by its spread across layers at initialisation, hence the table at the first recorded step.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from largebatch.analysis.cells import BATCH, DEFAULT_BY, best_in_cells, with_series


def select_runs(
    runs: pd.DataFrame,
    layers: pd.DataFrame,
    *,
    select: str = "eval.val_acc",
    mode: str | None = None,
    per: str = "cell",
    by: Sequence[str] = DEFAULT_BY,
) -> pd.DataFrame:
    """The runs to show: among runs with layer telemetry, the best by ``select`` per ``cell`` (series × batch
    size) or per ``series``; with ``series``/``batch_size`` columns, ordered by series then batch size."""
    runs = with_series(runs[runs["run_id"].isin(layers["run_id"])], by)
    keys = ["series", BATCH] if per == "cell" else ["series"]
    return best_in_cells(runs, select, mode, keys).sort_values(["series", BATCH], kind="stable").reset_index(drop=True)


def layer_order(layers: pd.DataFrame) -> list[str]:
    """Layer names in the order the telemetry first lists them (the optimizer's parameter order)."""
    return list(dict.fromkeys(layers["layer"]))


def trust_ratio_history(layers: pd.DataFrame, run_ids: Sequence[str]) -> pd.DataFrame:
    """The trust ratio of every layer at every recorded step of ``run_ids``: ``run_id, step, layer, trust_ratio``."""
    chosen = layers[layers["run_id"].isin(run_ids)]
    return chosen[["run_id", "step", "layer", "trust_ratio"]].reset_index(drop=True)


def trust_ratio_at_init(layers: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """A layer × run table of the trust ratio at each run's first recorded step (columns labelled
    ``<series> · B=<batch size> · lr=<lr>``, rows in layer order)."""
    first = layers[layers["run_id"].isin(selected["run_id"])]
    first = first[first["step"] == first.groupby("run_id")["step"].transform("min")]
    labels = {row.run_id: f"{row.series} · B={row.batch_size} · lr={row.lr:.3g}" for row in selected.itertuples()}
    table = first.pivot(index="layer", columns="run_id", values="trust_ratio")
    table = table.reindex(index=layer_order(first), columns=[r for r in selected["run_id"] if r in table.columns])
    table.columns = [labels[r] for r in table.columns]
    table.columns.name = None
    return table.reset_index()
