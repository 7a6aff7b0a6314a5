"""Plotly figures of the analysis views; each takes the view's table and returns a titled figure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from largebatch.analysis.cells import BATCH
from largebatch.analysis.importance import CITATIONS, EVALUATORS
from largebatch.analysis.trust import layer_order
from largebatch.dashboard.style import (
    BATCH_TITLE,
    DASHES,
    LR_TITLES,
    dodge,
    finish,
    log_axis,
    log_ticks,
    number,
    palette,
)

Colors = dict[str, str]
HEATMAPS_PER_ROW = 2


def gap_figure(table: pd.DataFrame, colors: Colors, gap: str, title: str) -> go.Figure:
    """Gap of the best trial per cell vs batch size, whiskers spanning the gap's range over learning rates."""
    figure = go.Figure()
    groups = list(table.dropna(subset=["gap"]).groupby("series", sort=True))
    for i, (series, rows) in enumerate(groups):
        figure.add_scatter(
            x=dodge(rows[BATCH], i, len(groups)),
            y=rows["gap"],
            name=series,
            mode="lines+markers",
            marker={"color": colors[series], "size": 9},
            line={"color": colors[series]},
            error_y={
                "type": "data",
                "array": rows["gap_max"] - rows["gap"],
                "arrayminus": rows["gap"] - rows["gap_min"],
            },
            customdata=rows[[BATCH, "best_lr", "n_trials", "gap_min", "gap_max"]],
            hovertemplate="B=%{customdata[0]}<br>gap (best trial)=%{y:.4f}<br>best lr=%{customdata[1]:.3g}"
            "<br>range over %{customdata[2]} runs: %{customdata[3]:.4f} … %{customdata[4]:.4f}<extra></extra>",
        )
    figure.add_hline(y=0, line={"color": "grey", "width": 1})
    figure.update_xaxes(title=BATCH_TITLE, **log_ticks(table[BATCH]))
    figure.update_yaxes(title=f"generalization gap ({gap}, fraction)")
    return finish(figure, title)


def heatmap_figure(grid: pd.DataFrame, metric: str, lr: str, title: str) -> go.Figure:
    """Best ``metric`` per lr bin × batch size, one panel per series (two per row); diverged cells marked ✗."""
    groups = list(grid.groupby("series", sort=True))
    cols = min(len(groups), HEATMAPS_PER_ROW)
    diverged_shown = False
    rows = math.ceil(len(groups) / cols)
    figure = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[s for s, _ in groups],
        horizontal_spacing=0.08,
        vertical_spacing=0.3 / rows,
    )
    for i, (series, cells) in enumerate(groups):
        row, col = divmod(i, cols)
        at = {"row": row + 1, "col": col + 1}
        z, div, runs = (
            cells.pivot(index=BATCH, columns="lr", values=c).sort_index().sort_index(axis=1)
            for c in ("value", "n_diverged", "n_trials")
        )
        text = [
            [_cell_text(v, d, n) for v, d, n in zip(*rows, strict=True)]
            for rows in zip(z.to_numpy(), div.to_numpy(), runs.to_numpy(), strict=True)
        ]
        figure.add_heatmap(
            x=[number(v) for v in z.columns],
            y=[number(b) for b in z.index],
            z=z.to_numpy(),
            text=text,
            texttemplate="%{text}",
            textfont={"size": 11},
            coloraxis="coloraxis",
            xgap=2,
            ygap=2,
            hovertemplate="lr=%{x}<br>B=%{y}<br>%{text}<extra>" + series + "</extra>",
            **at,
        )
        diverged = cells[cells["diverged"]]
        if not diverged.empty:
            figure.add_scatter(
                x=[number(v) for v in diverged["lr"]],
                y=[number(b) for b in diverged[BATCH]],
                mode="markers",
                marker={"symbol": "x-thin", "size": 18, "line": {"width": 3, "color": "crimson"}},
                name="diverged (every run in the cell)",
                legendgroup="diverged",
                showlegend=not diverged_shown,
                hovertemplate="lr=%{x}<br>B=%{y}<br>diverged<extra>" + series + "</extra>",
                **at,
            )
            diverged_shown = True
        figure.update_xaxes(title=f"{LR_TITLES[lr]} (log bins)", type="category", tickangle=-45, **at)
        figure.update_yaxes(title=BATCH_TITLE if col == 0 else None, type="category", **at)
    figure.update_layout(
        coloraxis={"colorscale": "Viridis", "colorbar": {"title": {"text": metric, "side": "right"}}},
        legend={"orientation": "h", "y": -0.1 - 0.15 / rows, "title": {"text": ""}},
        plot_bgcolor="#f4f4f4",
    )
    return finish(figure, title, height=120 + 440 * rows)


def _cell_text(value: float, n_diverged: float, n_trials: float) -> str:
    if math.isnan(value):
        return ""
    return f"{value:.3f}" + (f"<br>({int(n_diverged)}/{int(n_trials)} div.)" if n_diverged else "")


def band_figure(table: pd.DataFrame, colors: Colors, tolerance: float, metric: str, lr: str, title: str) -> go.Figure:
    """Left: the good-lr band per batch size (bar from the smallest to the largest good lr, dot at the best);
    right: its width in decades."""
    figure = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        column_widths=[0.6, 0.4],
        subplot_titles=(f"good lr band: {metric} within {number(tolerance)} of the best", "band width"),
    )
    groups = list(table.dropna(subset=["lr_low"]).groupby("series", sort=True))
    for i, (series, rows) in enumerate(groups):
        edge = (rows["lower_edge"] | rows["upper_edge"]).to_numpy()
        figure.add_scatter(
            x=dodge(rows[BATCH], i, len(groups)),
            y=rows["best_lr"],
            name=series,
            legendgroup=series,
            mode="markers",
            marker={
                "color": colors[series],
                "size": 10,
                "symbol": np.where(edge, "circle-open", "circle"),
                "line": {"width": 2},
            },
            error_y={
                "type": "data",
                "array": rows["lr_high"] - rows["best_lr"],
                "arrayminus": rows["best_lr"] - rows["lr_low"],
                "thickness": 5,
                "width": 0,
                "color": colors[series],
            },
            customdata=np.stack(
                [rows[BATCH], rows["lr_low"], rows["lr_high"], rows["n_good"], rows["n_trials"], edge], axis=1
            ),
            hovertemplate="B=%{customdata[0]}<br>best lr=%{y:.3g}<br>good: %{customdata[1]:.3g} … %{customdata[2]:.3g}"
            "<br>%{customdata[3]} of %{customdata[4]} runs good<br>reaches grid edge: %{customdata[5]}<extra></extra>",
            row=1,
            col=1,
        )
        figure.add_bar(
            x=[number(b) for b in rows[BATCH]],
            y=rows["width_decades"],
            name=series,
            legendgroup=series,
            showlegend=False,
            marker={"color": colors[series]},
            text=[f"{v:.2f}" for v in rows["width_decades"]],
            textposition="outside",
            row=1,
            col=2,
        )
    figure.update_xaxes(title=BATCH_TITLE, row=1, col=1, **log_ticks(table[BATCH]))
    figure.update_yaxes(
        title=f"{LR_TITLES[lr]} (log)", row=1, col=1, **log_axis(pd.concat([table["lr_low"], table["lr_high"]]))
    )
    figure.update_xaxes(title="batch size B", type="category", row=1, col=2)
    figure.update_yaxes(title="band width (decades of lr)", rangemode="tozero", row=1, col=2)
    figure.update_layout(barmode="group")
    return finish(figure, title)


def importance_figure(table: pd.DataFrame, title: str) -> go.Figure:
    """Normalised importances per parameter, one panel per evaluator (named), one bar colour per study."""
    evaluators = list(dict.fromkeys(table["evaluator"]))
    cited = [f"{EVALUATORS[key]} ({CITATIONS[key]})" for key in evaluators]
    figure = make_subplots(rows=1, cols=len(evaluators), subplot_titles=cited, shared_yaxes=True)
    studies = sorted(table["study"].unique())
    colors = palette(studies)
    for col, key in enumerate(evaluators, start=1):
        rows = table[table["evaluator"] == key]
        for study in studies:
            bars = rows[rows["study"] == study]
            figure.add_bar(
                x=bars["importance"],
                y=bars["param"],
                orientation="h",
                name=study,
                legendgroup=study,
                showlegend=col == 1,
                offsetgroup=study,
                marker={"color": colors[study]},
                text=[f"{v:.2f}" for v in bars["importance"]],
                hovertemplate="%{y}: %{x:.3f}<extra>" + study + "</extra>",
                row=1,
                col=col,
            )
        figure.update_xaxes(title="importance (normalised: sums to 1)", range=[0, 1.05], row=1, col=col)
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(barmode="group", legend={"title": {"text": "study"}})
    return finish(figure, title, height=max(420, 110 * table["param"].nunique()))


def steps_figure(table: pd.DataFrame, colors: Colors, metric: str, target: float, title: str) -> go.Figure:
    """S(B) and E(B) on log-log axes per series, each with its dashed perfect-scaling line."""
    figure = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=(f"S(B): steps to {metric} target {number(target)}", "E(B) = B·S(B): examples to target"),
    )
    for series, rows in table[table["reached"]].groupby("series", sort=True):
        every = table[table["series"] == series]
        for col, (measured, perfect) in enumerate(
            (("steps", "perfect_steps"), ("samples", "perfect_samples")), start=1
        ):
            figure.add_scatter(
                x=rows[BATCH],
                y=rows[measured],
                name=series,
                legendgroup=series,
                showlegend=col == 1,
                mode="lines+markers",
                marker={"color": colors[series], "size": 9},
                line={"color": colors[series]},
                customdata=rows[["lr", "n_reached", "n_trials"]],
                hovertemplate="B=%{x}<br>" + measured + "=%{y:,.0f}<br>by lr=%{customdata[0]:.3g}"
                "<br>%{customdata[1]} of %{customdata[2]} runs reached it<extra>" + series + "</extra>",
                row=1,
                col=col,
            )
            figure.add_scatter(
                x=every[BATCH],
                y=every[perfect],
                name=f"{series}: perfect scaling",
                legendgroup=series,
                showlegend=col == 1,
                mode="lines",
                line={"color": colors[series], "dash": "dash", "width": 1.5},
                hoverinfo="skip",
                row=1,
                col=col,
            )
    plotted = table[table["series"].isin(table.loc[table["reached"], "series"])]
    for col, label, columns in (
        (1, "optimizer steps to target (log)", ["steps", "perfect_steps"]),
        (2, "training examples to target (log)", ["samples", "perfect_samples"]),
    ):
        figure.update_xaxes(title=BATCH_TITLE, row=1, col=col, **log_ticks(table[BATCH]))
        figure.update_yaxes(title=label, row=1, col=col, **log_axis(plotted[columns].to_numpy().ravel()))
    return finish(figure, title)


def trust_figure(history: pd.DataFrame, selected: pd.DataFrame, applied: dict[str, bool], title: str) -> go.Figure:
    """Trust ratio per layer (rows, network order) and step (columns), one panel per selected run, on a log colour
    scale: one scale for ratios LARS/LAMB applied, another for the ‖w‖/‖g‖ of other optimizers."""
    labels = [
        f"{r.series} · B={r.batch_size} · lr={number(r.lr)}"
        + (": applied ratio" if applied[r.run_id] else ": ‖w‖/‖g‖ (not applied)")
        for r in selected.itertuples()
    ]
    layers = layer_order(history)
    panel = 60 + 22 * len(layers)
    height = 120 + (panel + 70) * len(selected)
    figure = make_subplots(rows=len(selected), cols=1, subplot_titles=labels, vertical_spacing=70 / height)
    logs = np.log10(history["trust_ratio"].where(history["trust_ratio"] > 0))
    kinds = {kind: history["run_id"].map(applied) == kind for kind in (True, False)}
    for row, run_id in enumerate(selected["run_id"], start=1):
        rows = history[history["run_id"] == run_id].assign(log_ratio=logs)
        z = rows.pivot(index="layer", columns="step", values="log_ratio").reindex(layers)
        figure.add_heatmap(
            x=z.columns,
            y=z.index,
            z=z.to_numpy(),
            coloraxis="coloraxis" if applied[run_id] else "coloraxis2",
            customdata=10 ** z.to_numpy(),
            hovertemplate="step %{x}<br>%{y}<br>trust ratio %{customdata:.3g}<extra></extra>",
            row=row,
            col=1,
        )
        figure.update_yaxes(autorange="reversed", row=row, col=1)
    figure.update_xaxes(title="optimizer step", row=len(selected), col=1)
    for i, kind in enumerate((True, False)):
        values = logs[kinds[kind]].dropna()
        if values.empty:
            continue
        low, high = math.floor(values.min()), max(math.ceil(values.max()), math.floor(values.min()) + 1)
        ticks = list(range(low, high + 1))
        name = "applied trust ratio" if kind else "‖w‖/‖g‖ (not applied)"
        figure.update_layout(
            {
                f"coloraxis{'' if kind else '2'}": {
                    "colorscale": "Viridis" if kind else "Cividis",
                    "cmin": low,
                    "cmax": high,
                    "colorbar": {
                        "title": {"text": name, "side": "right"},
                        "tickvals": ticks,
                        "ticktext": [number(10.0**t) for t in ticks],
                        "len": 0.45,
                        "y": 0.98 - 0.5 * i,
                        "yanchor": "top",
                    },
                }
            }
        )
    return finish(figure, title, height=height)


def table_figure(table: pd.DataFrame, title: str) -> go.Figure:
    """A table (numbers to 3 significant digits)."""
    cells = [[number(v) if isinstance(v, float) else v for v in table[c]] for c in table.columns]
    figure = go.Figure(
        go.Table(
            header={"values": list(table.columns), "align": "left", "fill": {"color": "#e8eef7"}},
            cells={"values": cells, "align": "left"},
        )
    )
    return finish(figure, title, height=140 + 30 * (len(table) + 2))


def lr_scaling_figure(table: pd.DataFrame, colors: Colors, title: str) -> go.Figure:
    """Best lr per batch size (open markers: at the grid's edge) with the linear, sqrt and fitted power laws."""
    figure = go.Figure()
    groups = list(table.groupby("series", sort=True))
    for i, (series, rows) in enumerate(groups):
        color, x = colors[series], dodge(rows[BATCH], i, len(groups))
        figure.add_scatter(
            x=x,
            y=rows["best_lr"],
            name=f"{series}: best lr",
            legendgroup=series,
            mode="markers",
            marker={
                "color": color,
                "size": 11,
                "line": {"width": 2},
                "symbol": np.where(rows["at_edge"], "circle-open", "circle"),
            },
            customdata=rows[[BATCH, "selected_value", "at_edge"]],
            hovertemplate="B=%{customdata[0]}<br>best lr=%{y:.3g}<br>selected value=%{customdata[1]:.4f}"
            "<br>at grid edge: %{customdata[2]}<extra>" + series + "</extra>",
        )
        alpha = rows["alpha"].iloc[0]
        lines = [("linear_lr", "linear rule (α=1)", "dash"), ("sqrt_lr", "sqrt rule (α=0.5)", "dot")]
        if not math.isnan(alpha):
            lines.append(("fitted_lr", f"fit α={alpha:.2f}", "solid"))
        for column, label, dash in lines:
            figure.add_scatter(
                x=x,
                y=rows[column],
                name=f"{series}: {label}",
                legendgroup=series,
                mode="lines",
                line={"color": color, "dash": dash, "width": 1.5},
                hoverinfo="skip",
            )
    figure.update_xaxes(title=BATCH_TITLE, **log_ticks(table[BATCH]))
    figure.update_yaxes(
        title=f"best {LR_TITLES['lr']} (log)",
        **log_axis(table[["best_lr", "linear_lr", "sqrt_lr", "fitted_lr"]].to_numpy().ravel()),
    )
    return finish(figure, title)


def curves_figure(table: pd.DataFrame, metrics: list[str], x: str, log_x: bool, title: str) -> go.Figure:
    """Each metric against ``x`` (one panel per metric); colour by batch size, dash by series."""
    figure = make_subplots(rows=len(metrics), cols=1, subplot_titles=metrics, shared_xaxes=True, vertical_spacing=0.08)
    batches = sorted(table[BATCH].unique())
    shades = dict(
        zip(
            batches,
            sample_colorscale("Plasma", [0.75 * i / max(len(batches) - 1, 1) for i in range(len(batches))]),
            strict=True,
        )
    )
    dashes = {s: DASHES[i % len(DASHES)] for i, s in enumerate(sorted(table["series"].unique()))}
    for row, metric in enumerate(metrics, start=1):
        for (series, batch), rows in table[table["metric"] == metric].groupby(["series", BATCH], sort=True):
            figure.add_scatter(
                x=rows[x],
                y=rows["value"],
                name=f"{series} · B={batch}",
                legendgroup=f"{series}{batch}",
                showlegend=row == 1,
                mode="lines",
                line={"color": shades[batch], "dash": dashes[series]},
                hovertemplate=f"{x}=%{{x}}<br>{metric}=%{{y:.4f}}<extra>{series} · B={batch}</extra>",
                row=row,
                col=1,
            )
        figure.update_yaxes(title=metric, row=row, col=1)
    units = {"step": "optimizer steps", "epoch": "epochs", "samples": "training examples seen"}
    figure.update_xaxes(**(log_axis(table[x]) if log_x else {"type": "linear"}))
    figure.update_xaxes(title=units[x] + (" (log)" if log_x else ""), row=len(metrics), col=1)
    figure.update_layout(legend={"title": {"text": "series · batch size"}})
    return finish(figure, title, height=120 + 320 * len(metrics))
