"""Our numbers, from the tables of :func:`largebatch.analysis.load_results` (the one results format): the
batch-size cells and the per-layer ‖w‖/‖∇w‖ table that the verdict rules (:mod:`largebatch.reproduce.rules`)
read, and their Markdown display."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from largebatch.analysis import Results, best_in_cells, direction
from largebatch.analysis.tables import filter_runs
from largebatch.reproduce.spec import Numbers, Series

CELL_COLUMNS = ("series", "batch_size", "mean", "std", "score", "seeds", "seeds_run", "seeds_diverged", "trials",
                "diverged", "loss_fell")
LOSS = "train/loss"


def loss_fell(history: pd.DataFrame) -> set[str]:
    """The runs whose last recorded training loss is below their first recorded one (the first is logged after a
    few steps, so already below the initial loss: the test is conservative)."""
    if history.empty:
        return set()
    losses = history[history["metric"] == LOSS].dropna(subset=["value"]).sort_values("step", kind="stable")
    ends = losses.groupby("run_id")["value"].agg(["first", "last"])
    return set(ends.index[ends["last"] < ends["first"]])


def batch_cells(results: Results, series: list[Series], numbers: Numbers) -> pd.DataFrame:
    """Per series × batch size: the trial best by ``numbers.select`` in each seed (the tuned lr), its
    ``numbers.metric`` averaged over seeds (``mean``, ``std``), ``score`` (higher is better), how many seeds have a
    value, ran, and diverged in every trial, how many finished trials there are and how many diverged, and in how
    many seeds the chosen trial's training loss fell (:func:`loss_fell`)."""
    runs = results.finished()
    for column in (numbers.select, numbers.metric):  # absent when every run diverged: no run has an evaluation
        if column not in runs:
            runs = runs.assign(**{column: math.nan})
    sign = 1.0 if direction(numbers.metric) == "max" else -1.0
    learned = loss_fell(results.history)
    rows = []
    for s in series:
        chosen = filter_runs(runs, s.where)
        best = best_in_cells(chosen, numbers.select, None, ["batch_size", "seed"])
        for batch, group in chosen.groupby("batch_size"):
            picked = best[best["batch_size"] == batch].dropna(subset=[numbers.metric])
            values = picked[numbers.metric].astype(float)
            mean = float(values.mean()) if len(values) else math.nan
            per_seed = group.groupby("seed")["diverged"].all()
            rows.append({"series": s.id, "batch_size": int(batch), "mean": mean,
                         "std": float(values.std()) if len(values) > 1 else math.nan, "score": sign * mean,
                         "seeds": len(values), "seeds_run": len(per_seed), "seeds_diverged": int(per_seed.sum()),
                         "trials": len(group), "diverged": int(group["diverged"].sum()),
                         "loss_fell": int(picked["run_id"].isin(learned).sum())})
    return pd.DataFrame(rows, columns=list(CELL_COLUMNS))


def layer_ratios(results: Results, epochs: list[float]) -> pd.DataFrame:
    """‖w‖/‖∇w‖ per finished run, layer and time point: ``epoch`` 0 is the first recorded step (the initial
    weights and first gradient), each of ``epochs`` the run completed the last recorded step at or before it.
    Columns ``run_id, seed, layer, kind`` (``bias`` for names ending in ``.bias``, else ``weight``), ``epoch``,
    ``step``, ``ratio``."""
    runs = results.finished().set_index("run_id")
    frames = []
    for run_id, layers in results.layers[results.layers["run_id"].isin(runs.index)].groupby("run_id"):
        per_epoch = float(runs.loc[run_id, "plan.steps_per_epoch"])
        steps = sorted(layers["step"].unique())
        points = {0.0: steps[0]}
        for epoch in epochs:
            reached = [s for s in steps[1:] if s <= epoch * per_epoch]
            if reached and steps[-1] >= epoch * per_epoch:  # only epochs the run completed
                points[float(epoch)] = reached[-1]
        for epoch, step in points.items():
            at = layers[layers["step"] == step]
            frames.append(pd.DataFrame({
                "run_id": run_id, "seed": int(runs.loc[run_id, "seed"]), "layer": at["layer"].to_numpy(),
                "kind": np.where(at["layer"].str.endswith(".bias"), "bias", "weight"), "epoch": epoch, "step": step,
                "ratio": (at["weight_norm"] / at["grad_norm"]).to_numpy(dtype=float),
            }))
    columns = ["run_id", "seed", "layer", "kind", "epoch", "step", "ratio"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def display_value(value: float, display: str) -> str:
    """A metric value as shown: ``percent`` (accuracy 0.912 → 91.2), ``error_percent`` (→ 8.8) or ``raw``."""
    if math.isnan(value):
        return "–"
    if display == "percent":
        return f"{100 * value:.1f}"
    if display == "error_percent":
        return f"{100 * (1 - value):.1f}"
    return f"{value:.4g}"


def _cell_text(row: pd.Series, display: str) -> str:
    if row["seeds_run"] and row["seeds_diverged"] >= row["seeds_run"]:
        return "diverged"
    std_display = "raw" if display == "raw" else "percent"  # an error's spread is the accuracy's spread
    spread = " (1 seed)" if row["seeds"] == 1 else f" ± {display_value(row['std'], std_display)}"
    lost, ran = int(row["seeds_diverged"]), int(row["seeds_run"])
    diverged = f" ({lost}/{ran} seeds diverged)" if lost else ""
    return display_value(row["mean"], display) + spread + diverged


def cells_markdown(cells: pd.DataFrame, series: list[Series], display: str) -> pd.DataFrame:
    """Batch sizes × series labels, ``mean ± std`` over seeds, ``diverged`` where every seed diverged."""
    labels = {s.id: s.label for s in series}
    table = cells.assign(text=[_cell_text(row, display) for _, row in cells.iterrows()])
    wide = table.pivot(index="batch_size", columns="series", values="text").reindex(columns=list(labels)).fillna("–")
    return wide.rename(columns=labels).reset_index().rename(columns={"batch_size": "batch"})


def ratios_markdown(ratios: pd.DataFrame) -> pd.DataFrame:
    """Layers (weights, then biases) × time points: the median ‖w‖/‖∇w‖ over seeds, 3 significant digits."""
    median = ratios.groupby(["kind", "layer", "epoch"], sort=False)["ratio"].median().reset_index()
    wide = median.pivot(index=["kind", "layer"], columns="epoch", values="ratio")
    layers = dict.fromkeys(ratios["layer"])
    order = [(k, layer) for k in ("weight", "bias") for layer in layers if (k, layer) in wide.index]
    wide = wide.reindex(order)
    wide.columns = ["init" if e == 0 else f"epoch {e:g}" for e in wide.columns]
    return wide.map(lambda v: "–" if pd.isna(v) else f"{v:.3g}").reset_index().drop(columns="kind")
