"""Plotly figures of the analysis views; each takes the view's table and returns a titled figure."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from largebatch.analysis.cells import BATCH
from largebatch.analysis.evaluators import CITATIONS, EVALUATORS
from largebatch.analysis.regimes import REGIONS, fitted_curve
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


def _best_with_spread(rows: pd.DataFrame, x: np.ndarray, series: str, color: str, value: str, label: str,
                      showlegend: bool = True) -> go.Scatter:
    """The best trial's ``value`` per batch size with whiskers over ``<value>_min`` … ``<value>_max``."""
    low, high = f"{value}_min", f"{value}_max"
    return go.Scatter(
        x=x,
        y=rows[value],
        name=series,
        legendgroup=series,
        showlegend=showlegend,
        mode="lines+markers",
        marker={"color": color, "size": 9},
        line={"color": color},
        error_y={"type": "data", "array": rows[high] - rows[value], "arrayminus": rows[value] - rows[low]},
        customdata=rows[[BATCH, "best_lr", "n_trials", low, high]],
        hovertemplate="B=%{customdata[0]}<br>" + label + " (best trial)=%{y:.4g}<br>best lr=%{customdata[1]:.3g}"
        "<br>range over %{customdata[2]} runs: %{customdata[3]:.4g} … %{customdata[4]:.4g}<extra></extra>",
    )


def gap_figure(table: pd.DataFrame, colors: Colors, gap: str, title: str) -> go.Figure:
    """Gap of the best trial per cell vs batch size, whiskers spanning the gap's range over learning rates."""
    figure = go.Figure()
    groups = list(table.dropna(subset=["gap"]).groupby("series", sort=True))
    for i, (series, rows) in enumerate(groups):
        x = dodge(rows[BATCH], i, len(groups))
        figure.add_trace(_best_with_spread(rows, x, series, colors[series], "gap", "gap"))
    figure.add_hline(y=0, line={"color": "grey", "width": 1})
    figure.update_xaxes(title=BATCH_TITLE, **log_ticks(table[BATCH]))
    figure.update_yaxes(title=f"generalization gap ({gap}, fraction)")
    return finish(figure, title)


def sharpness_figure(table: pd.DataFrame, colors: Colors, sharpness: str, gap: str, title: str) -> go.Figure:
    """Left: λ_max of the best trial per cell vs batch size (log-log, whiskers over learning rates); right: the
    same runs' generalization gap (whiskers: the gap's range over the cell)."""
    figure = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=(f"sharpness λ_max ({sharpness})", f"generalization gap ({gap})"),
    )
    groups = list(table.groupby("series", sort=True))
    for i, (series, rows) in enumerate(groups):
        x = dodge(rows[BATCH], i, len(groups))
        figure.add_trace(_best_with_spread(rows, x, series, colors[series], "sharpness", "λ_max"), row=1, col=1)
        figure.add_trace(_best_with_spread(rows, x, series, colors[series], "gap", "gap", False), row=1, col=2)
    figure.add_hline(y=0, line={"color": "grey", "width": 1}, row=1, col=2)
    for col in (1, 2):
        figure.update_xaxes(title=BATCH_TITLE, row=1, col=col, **log_ticks(table[BATCH]))
    values = table[["sharpness", "sharpness_min", "sharpness_max"]].to_numpy().ravel()
    figure.update_yaxes(title="top Hessian eigenvalue of the training loss (log)", row=1, col=1, **log_axis(values))
    figure.update_yaxes(title="train acc − val acc", row=1, col=2)
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
    batches = [number(b) for b in sorted(table[BATCH].unique())]  # numeric order, whichever series comes first
    figure.update_xaxes(title="batch size B", type="category", categoryorder="array", categoryarray=batches, row=1,
                        col=2)
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


REGION_SYMBOLS = dict(zip(REGIONS, ("circle", "diamond", "square"), strict=True))


def regimes_figure(
    steps: pd.DataFrame,
    fits: pd.DataFrame,
    points: pd.DataFrame,
    predicted: dict[str, float],
    colors: Colors,
    rule: str,
    title: str,
) -> go.Figure:
    """Left: measured S(B) (marker shape: regime; open where no fit), the fitted S_min·(1 + B_crit/B), the fitted
    B_crit (dashed vertical) and the B_simple prediction (dotted vertical), per series. Right: the measured
    (S, E) points on the fitted trade-off (S/S_min − 1)(E/E_min − 1) = 1 with its asymptotes S_min and E_min."""
    figure = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=("S(B) with the fitted model and regimes", "trade-off: examples E vs steps S to target"),
    )
    curve = fitted_curve(fits)
    reached = steps[steps["reached"]]
    fitted = set(fits["series"])
    for series, rows in reached.groupby("series", sort=True):
        color = colors[series]
        shown = points[points["series"] == series] if series in fitted else rows.assign(region="")
        symbols = [REGION_SYMBOLS.get(r, "circle-open") for r in shown["region"]]
        for col, x, y in ((1, BATCH, "steps"), (2, "steps", "samples")):
            figure.add_scatter(
                x=shown[x],
                y=shown[y],
                name=series,
                legendgroup=series,
                showlegend=col == 1,
                mode="markers",
                marker={"color": color, "size": 11, "symbol": symbols, "line": {"width": 2, "color": color}},
                customdata=shown[[BATCH, "steps", "samples", "region", "lr"]],
                hovertemplate="B=%{customdata[0]}<br>S=%{customdata[1]:,.0f} steps<br>E=%{customdata[2]:,.0f} "
                "examples<br>%{customdata[3]}<br>lr=%{customdata[4]:.3g}<extra>" + series + "</extra>",
                row=1,
                col=col,
            )
        if series not in fitted:
            continue
        fit = fits[fits["series"] == series].iloc[0]
        line = curve[curve["series"] == series]
        label = f"{series}: fit S_min={number(fit['s_min'])}, B_crit={number(fit['b_crit'])}"
        for col, x, y in ((1, BATCH, "steps"), (2, "steps", "samples")):
            figure.add_scatter(
                x=line[x], y=line[y], name=label, legendgroup=series, showlegend=col == 1, mode="lines",
                line={"color": color, "width": 1.5}, hoverinfo="skip", row=1, col=col,
            )
        inside = line[BATCH].min() <= fit["b_crit"] <= line[BATCH].max()  # else the knee is off this axis
        if inside:
            figure.add_vline(x=fit["b_crit"], line={"color": color, "dash": "dash", "width": 1.5}, row=1, col=1)
            figure.add_vline(x=fit["s_min"], line={"color": color, "dash": "dash", "width": 1}, row=1, col=2)
            figure.add_hline(y=fit["e_min"], line={"color": color, "dash": "dash", "width": 1}, row=1, col=2)
        guess = predicted.get(series, math.nan)
        if line[BATCH].min() <= guess <= line[BATCH].max():  # False for NaN: no B_simple logged
            figure.add_vline(x=guess, line={"color": color, "dash": "dot", "width": 2.5}, row=1, col=1)
            figure.add_scatter(
                x=[None], y=[None], name=f"{series}: B_simple prediction {number(guess)}",
                legendgroup=series, mode="lines", line={"color": color, "dash": "dot", "width": 2.5},
            )
    if not fits.empty:
        figure.add_scatter(x=[None], y=[None], mode="lines", name="dashed: fitted B_crit (left), S_min, E_min (right)",
                           legendgroup="regions", line={"color": "grey", "dash": "dash"})
    for name, symbol in REGION_SYMBOLS.items():
        figure.add_scatter(
            x=[None], y=[None], mode="markers", name=name, legendgroup="regions",
            marker={"symbol": symbol, "size": 10, "color": "grey"},
        )
    lines = textwrap.wrap(rule, width=150)
    figure.add_annotation(
        text="<br>".join(lines), xref="paper", yref="paper", x=0, y=-0.17, showarrow=False, align="left",
        xanchor="left", yanchor="top", font={"size": 12},
    )
    batches = pd.concat([reached[BATCH], curve[BATCH]])
    figure.update_xaxes(title=BATCH_TITLE, row=1, col=1, **log_axis(batches))
    figure.update_yaxes(title="optimizer steps to target (log)", row=1, col=1,
                        **log_axis(pd.concat([reached["steps"], curve["steps"]])))
    figure.update_xaxes(title="optimizer steps S (log)", row=1, col=2,
                        **log_axis(pd.concat([reached["steps"], curve["steps"]])))
    figure.update_yaxes(title="training examples E = B·S (log)", row=1, col=2,
                        **log_axis(pd.concat([reached["samples"], curve["samples"]])))
    figure = finish(figure, title, height=600 + 18 * len(lines))
    figure.update_layout(margin={"b": 70 + 18 * len(lines)})
    return figure


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
