"""The ``band_survival`` view kind, all in one module: does each series' good learning-rate band survive to larger
batches, and where does it stop scaling? (Schema, page, figure and W&B panels; registered in
:mod:`largebatch.dashboard.kinds`.) The page title is the answer in one sentence, computed from the runs by
:mod:`largebatch.analysis.survival`, with what counted as good and "Inconclusive" when the data cannot decide.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import wandb_workspaces.reports.v2 as wr
from plotly.subplots import make_subplots
from pydantic import Field

from largebatch.analysis import direction, good_lr_band
from largebatch.analysis.cells import BATCH
from largebatch.analysis.survival import Verdict, band_survival, verdict
from largebatch.dashboard.pages import Context, Page, finished_page
from largebatch.dashboard.style import BATCH_TITLE, LR_TITLES, dodge, finish, log_axis, log_ticks, number
from largebatch.dashboard.views import BaseView, Mode
from largebatch.dashboard.workspace import wandb_column

HEADING = "Does the good learning-rate band survive larger batches?"


class SurvivalView(BaseView):
    """Does each series' good-lr band survive to larger batches, and where does it stop? One bar for every cell:
    ``metric`` within ``tolerance`` (absolute) of the best run of the view (:mod:`largebatch.analysis.survival`)."""

    view: Literal["band_survival"]
    metric: str = "eval.val_acc"
    mode: Mode = None
    lr: Literal["lr", "optimizer.lr"] = "lr"
    tolerance: float = Field(0.05, ge=0)


def survival_page(view: SurvivalView, ctx: Context) -> Page:
    cells = good_lr_band(
        ctx.runs, metric=view.metric, tolerance=view.tolerance, mode=view.mode, lr=view.lr, by=ctx.by, reference="all"
    )
    table = band_survival(cells)
    found = verdict(table)
    best = direction(view.metric, view.mode)
    title = survival_sentence(found, table, cells, view.metric, best, view.tolerance, ctx.runs[BATCH].nunique())
    notes = [
        f"Good run: {view.metric} within {number(view.tolerance)} (absolute) of the best run of this view, one bar "
        "for every optimizer and batch size; diverged runs are never good. A band survives to B when every batch size "
        "from the smallest tried up to B has a good learning rate; it stops scaling at the first batch size with none "
        "(Shallue et al. 2019 §4.7). The budget is what the runs were given (a fixed number of epochs gives large "
        "batches fewer steps). Open markers: no rate reached the bar; the right panel then shows the best rate.",
        "Inconclusive when the data cannot decide: the leading series keep their band up to the largest batch size "
        "tried, a series stopped where its best rate sits at the edge of the rates tried, or a series has a good "
        "rate again beyond where its band vanished (the lr grid is too coarse to place the edge).",
    ]
    plotted = not cells.empty and cells["best"].notna().any()
    figs = [survival_figure(cells, ctx.colors, view.metric, view.lr, title)] if plotted else []
    return finished_page(title, {"": cells, "series": table}, figs, notes)


def survival_sentence(found: Verdict, table: pd.DataFrame, cells: pd.DataFrame, metric: str, best: str,
                      tolerance: float, n_batches: int) -> str:
    """The answer in one sentence: the verdict, each series' reach, and what counted as good."""
    if table.empty or cells.empty or cells["best"].isna().all():
        return "Good-lr band vs batch size: no finished run with a value to compare"
    threshold = float(table["threshold"].iloc[0])
    comparison = ">=" if best == "max" else "<="
    reference = threshold + tolerance if best == "max" else threshold - tolerance
    rows = table.set_index("series")
    if found.outcome == "longer":
        others = [s for s in found.order if s != found.leader]
        head = f"{found.leader}'s good-lr band survives to larger batches than {' and '.join(others)}'s"
    elif found.outcome == "same":
        head = f"Neither good-lr band survives further: {' and '.join(found.order)} stop at the same batch size"
    else:
        head = f"Inconclusive ({found.reason})"
    reach = "; ".join(_reach(name, rows.loc[name]) for name in found.order)
    rule = (f"good: {metric} {comparison} {number(threshold)}, within {number(tolerance)} of the best run "
            f"({number(reference)})")
    return f"{head}: {reach}{_at_largest(cells, found.order)} ({rule}; {n_batches} batch sizes)"


def _at_largest(cells: pd.DataFrame, order: list[str]) -> str:
    """The best value of each series at the largest batch size they all tried (how far past the edge each falls)."""
    common = set.intersection(*(set(cells.loc[cells["series"] == s, BATCH]) for s in order)) if order else set()
    if not common or len(order) < 2:
        return ""
    largest = max(common)
    at = cells[cells[BATCH] == largest].set_index("series")["best"]
    return f"; at B={number(largest)} the best runs reach " + ", ".join(f"{s} {at[s]:.3f}" for s in order)


def _reach(series: str, row: pd.Series) -> str:
    if pd.isna(row["survives_to"]):
        return f"{series} has no good lr even at B={number(row['batch_low'])}"
    if pd.isna(row["stops_at"]):
        return f"{series} keeps a good lr up to B={number(row['survives_to'])}, the largest tried"
    return (
        f"{series} keeps a good lr up to B={number(row['survives_to'])} and stops scaling at "
        f"B={number(row['stops_at'])} (best {number(row['stop_best'])} at lr {number(row['stop_best_lr'])})"
    )


def survival_figure(cells: pd.DataFrame, colors: dict[str, str], metric: str, lr: str, title: str) -> go.Figure:
    """Left: the best ``metric`` per batch size and series against the one bar (dashed; open markers miss it).
    Right: the good-lr band per batch size (bar from the smallest to the largest good lr), or an open marker at the
    best lr where no rate reached the bar."""
    threshold = float(cells["threshold"].iloc[0])
    figure = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=(f"best {metric} per batch size (any lr)", "good learning rates (reach the bar)"),
    )
    groups = list(cells.groupby("series", sort=True))
    for i, (series, rows) in enumerate(groups):
        good = rows["n_good"].gt(0).to_numpy()
        x = dodge(rows[BATCH], i, len(groups))
        style = {"color": colors[series], "size": 11, "symbol": np.where(good, "circle", "circle-open"),
                 "line": {"width": 2, "color": colors[series]}}
        figure.add_scatter(
            x=x, y=rows["best"], name=series, legendgroup=series, mode="lines+markers", marker=style,
            line={"color": colors[series]}, customdata=np.stack([rows[BATCH], rows["best_lr"]], axis=1),
            hovertemplate="B=%{customdata[0]}<br>best " + metric + "=%{y:.4f}<br>at lr=%{customdata[1]:.3g}"
            "<extra>" + series + "</extra>", row=1, col=1,
        )
        banded, missed = rows[good], rows[~good]
        if not banded.empty:
            _band_bars(figure, banded, i, len(groups), series, colors[series])
        if not missed.empty:
            _missed_markers(figure, missed, i, len(groups), series, colors[series])
    figure.add_hline(y=threshold, line={"color": "black", "dash": "dash", "width": 1.5}, row=1, col=1,
                     annotation_text=f"good: {number(threshold)}", annotation_position="bottom right")
    figure.add_scatter(x=[None], y=[None], mode="markers", name="open / ×: no lr reaches the bar",
                       marker={"symbol": "x-open", "color": "grey", "size": 10})
    for col in (1, 2):
        figure.update_xaxes(title=BATCH_TITLE, row=1, col=col, **log_ticks(cells[BATCH]))
    figure.update_yaxes(title=metric, row=1, col=1)
    lrs = pd.concat([cells["lr_low"], cells["lr_high"], cells["best_lr"]])
    figure.update_yaxes(title=f"{LR_TITLES[lr]} (log)", row=1, col=2, **log_axis(lrs))
    return finish(figure, title)


def _band_bars(figure: go.Figure, banded: pd.DataFrame, i: int, count: int, series: str, color: str) -> None:
    """The good-lr band of each batch size: a bar from the smallest to the largest good lr, dot at the best."""
    figure.add_scatter(
        x=dodge(banded[BATCH], i, count), y=banded["best_lr"], name=series, legendgroup=series,
        showlegend=False, mode="markers", marker={"color": color, "size": 9},
        error_y={"type": "data", "array": banded["lr_high"] - banded["best_lr"],
                 "arrayminus": banded["best_lr"] - banded["lr_low"], "thickness": 6, "width": 0, "color": color},
        customdata=np.stack([banded[BATCH], banded["lr_low"], banded["lr_high"], banded["n_good"]], axis=1),
        hovertemplate="B=%{customdata[0]}<br>good lr %{customdata[1]:.3g} … %{customdata[2]:.3g} "
        "(%{customdata[3]} rates)<extra>" + series + "</extra>", row=1, col=2,
    )


def _missed_markers(figure: go.Figure, missed: pd.DataFrame, i: int, count: int, series: str, color: str) -> None:
    """Batch sizes where no lr reached the bar: an open × at the best lr tried."""
    figure.add_scatter(
        x=dodge(missed[BATCH], i, count), y=missed["best_lr"], name=series, legendgroup=series,
        showlegend=False, mode="markers",
        marker={"color": color, "size": 11, "symbol": "x-open", "line": {"width": 1.5}},
        customdata=np.stack([missed[BATCH], missed["best"]], axis=1),
        hovertemplate="B=%{customdata[0]}<br>no good lr; best lr %{y:.3g} reached %{customdata[1]:.4f}"
        "<extra>" + series + "</extra>", row=1, col=2,
    )


def survival_panels(view: SurvivalView) -> list[Any]:
    """Scatters of the metric vs batch size and vs peak lr: where the runs stay near the best."""
    good = f"good: within {view.tolerance} of the best run"
    return [
        wr.ScatterPlot(title=f"{view.metric} vs batch size ({good})", x=wr.Config("batch_size"),
                       y=wandb_column(view.metric), log_x=True),
        wr.ScatterPlot(title=f"{view.metric} vs peak lr", x=wandb_column("lr"), y=wandb_column(view.metric),
                       log_x=True),
    ]
