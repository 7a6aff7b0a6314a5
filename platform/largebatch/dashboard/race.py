"""The ``race_to_target`` view kind, all in one module: which way of training reaches a target first, in optimizer
steps and in samples, over seeds? Built for batch-size schedules against fixed batches (Smith et al. 2017,
arXiv:1711.00489: growing the batch in place of lr decay reaches the same accuracy in fewer parameter updates),
and for any comparison where seeds, not batch sizes, make the spread. (Schema, page, figure and W&B panels;
registered in :mod:`largebatch.dashboard.kinds`; numbers from :func:`largebatch.analysis.race_to_target`.)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import wandb_workspaces.reports.v2 as wr
from plotly.subplots import make_subplots

from largebatch.analysis import direction, race_to_target
from largebatch.analysis.cells import BATCH
from largebatch.dashboard.pages import Context, Page, finished_page
from largebatch.dashboard.style import finish, log_axis, number
from largebatch.dashboard.views import BaseView, Mode
from largebatch.dashboard.workspace import STEP

HEADING = "Steps and samples to target per schedule"
SAMPLES = "batch/samples"  # logged at every step by runs whose batch changes


class RaceView(BaseView):
    """Optimizer steps and samples to reach ``target`` of a logged ``metric``, one column per series and starting
    batch size, one dot per run, the median over the runs that reached it."""

    view: Literal["race_to_target"]
    metric: str = "val/acc"
    target: float
    mode: Mode = None


def race_page(view: RaceView, ctx: Context) -> Page:
    per_run, summary = race_to_target(ctx.runs, ctx.results.history, metric=view.metric, target=view.target,
                                      mode=view.mode, by=ctx.by)
    comparison = ">=" if direction(view.metric, view.mode) == "max" else "<="
    title = f"Steps to {view.metric} {comparison} {number(view.target)}: " + race_sentence(summary)
    notes = [
        "One dot per run at the first logged step where the metric reached the target (as fine as its logging: "
        "once per epoch for val/acc); samples are those the run had seen by then (batch/samples where its batch "
        "changed). Columns: series and starting batch size B; bars: median, min and max over the runs that "
        "reached the target; n = runs that reached it / runs. A series that did not reach it in every run is "
        "not ranked on its median alone: see n.",
    ]
    figs = [race_figure(per_run, summary, ctx.colors, title)] if summary["n_reached"].gt(0).any() else []
    return finished_page(title, {"": summary, "runs": per_run}, figs, notes)


def _label(row: Any) -> str:
    return f"{row.series} · B={number(getattr(row, BATCH))}"


def race_sentence(summary: pd.DataFrame) -> str:
    """Fewest median steps first (cells that every run of which reached the target), with samples; the cells that
    missed in some runs are named with their count."""
    complete = summary[(summary["n_reached"] == summary["n_runs"]) & (summary["n_runs"] > 0)]
    if complete.empty:
        return "no series reached it in all its runs"
    ordered = complete.sort_values(["steps_median", "samples_median"], kind="stable")
    parts = [f"{_label(r)} in {number(r.steps_median)} steps ({number(r.samples_median)} samples)"
             for r in ordered.itertuples()]
    partial = summary[summary["n_reached"] < summary["n_runs"]]
    missed = [f"{_label(r)} in {r.n_reached}/{r.n_runs} runs" for r in partial.itertuples()]
    return "; ".join(parts) + (f"; reached only by {', '.join(missed)}" if missed else "")


def race_figure(per_run: pd.DataFrame, summary: pd.DataFrame, colors: dict[str, str], title: str) -> go.Figure:
    """Left: steps to target; right: samples to target (log axes); one column per series and starting batch."""
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                           subplot_titles=("optimizer steps to target", "samples to target"))
    reached = per_run[per_run["reached"]]
    for series, rows in summary.groupby("series", sort=True):
        color = colors[series]
        labels = [_label(r) for r in rows.itertuples()]
        for col, quantity in ((1, "steps"), (2, "samples")):
            median = rows[f"{quantity}_median"]
            figure.add_scatter(
                x=labels, y=median, name=series, legendgroup=series, showlegend=col == 1, mode="markers",
                marker={"color": color, "size": 16, "symbol": "line-ew-open", "line": {"width": 3, "color": color}},
                error_y={"type": "data", "array": rows[f"{quantity}_max"] - median,
                         "arrayminus": median - rows[f"{quantity}_min"], "color": color},
                customdata=np.stack([rows["n_reached"], rows["n_runs"]], axis=1),
                hovertemplate="median %{y:.4g}<br>reached in %{customdata[0]}/%{customdata[1]} runs"
                "<extra>" + series + "</extra>", row=1, col=col,
            )
            dots = reached[reached["series"] == series]
            figure.add_scatter(
                x=[_label(r) for r in dots.itertuples()], y=dots[quantity], name=series, legendgroup=series,
                showlegend=False, mode="markers", marker={"color": color, "size": 7, "opacity": 0.6},
                customdata=dots[["run_id"]], hovertemplate="%{customdata[0]}: %{y:.4g}<extra>" + series + "</extra>",
                row=1, col=col,
            )
    for col, quantity in ((1, "steps"), (2, "samples")):
        figure.update_yaxes(title=f"{quantity} to target (log)", row=1, col=col, **log_axis(reached[quantity]))
    return finish(figure, title)


def race_panels(view: RaceView) -> list[Any]:
    """The metric against optimizer steps and against samples seen, per run."""
    return [
        wr.LinePlot(title=f"{view.metric} vs optimizer steps (target {number(view.target)})", x=STEP,
                    y=[view.metric], groupby=wr.Config("batch_schedule.kind")),
        wr.LinePlot(title=f"{view.metric} vs samples seen (target {number(view.target)})", x=SAMPLES,
                    y=[view.metric], groupby=wr.Config("batch_schedule.kind")),
    ]
