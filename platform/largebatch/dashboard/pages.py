"""One page per view: its data tables (exported as CSV), figures, a title stating the result, and notes.

The page builders of the shared view kinds, registered in :mod:`largebatch.dashboard.kinds` (whose
``build_page(view, context)`` dispatches on the view kind), and what every page is made of (:class:`Context`,
:class:`Page`, :func:`finished_page`). A view whose data holds nothing to show (e.g. no run reached the target)
yields a page with its tables and a note saying why, and no figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go

from largebatch.analysis import (
    Results,
    compare_prediction,
    curves,
    direction,
    generalization_gap,
    fitted_curve,
    good_lr_band,
    lr_batch_grid,
    lr_scaling,
    noise_scale_at_target,
    rank_correlation,
    scaling_regimes,
    select_runs,
    sharpness_vs_batch,
    steps_to_target,
    trust_ratio_at_init,
    trust_ratio_history,
)
from largebatch.analysis.cells import BATCH
from largebatch.dashboard import views as cfg
from largebatch.dashboard import figures
from largebatch.dashboard.style import number
from largebatch.optim.registry import layerwise_names

if TYPE_CHECKING:
    from largebatch.analysis.importance import NamedStudy


@dataclass(frozen=True)
class Context:
    """What every view is built from: the loaded results, the dashboard's runs, series columns and colours."""

    results: Results
    runs: pd.DataFrame
    by: Sequence[str]
    colors: dict[str, str]


@dataclass
class Page:
    """A built view: ``title`` states its result; ``tables`` (name → frame; ``""`` is the main one) become CSVs."""

    title: str
    tables: dict[str, pd.DataFrame]
    figures: list[go.Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _ends(rows: pd.DataFrame, column: str) -> tuple[Any, Any, Any, Any]:
    """(smallest B, its value, largest B, its value) of ``column`` over ``rows`` sorted by batch size."""
    rows = rows.sort_values(BATCH)
    return rows[BATCH].iloc[0], rows[column].iloc[0], rows[BATCH].iloc[-1], rows[column].iloc[-1]


def _per_series(table: pd.DataFrame, column: str, phrase: Callable[[str, Any, Any, Any, Any], str]) -> str:
    parts = [
        phrase(str(s), *_ends(rows, column)) for s, rows in table.dropna(subset=[column]).groupby("series", sort=True)
    ]
    return "; ".join(parts)


def gap_page(view: cfg.GapView, ctx: Context) -> Page:
    table = generalization_gap(ctx.runs, gap=view.gap, select=view.select, mode=view.mode, by=ctx.by)
    claim = _per_series(table, "gap", lambda s, b0, g0, b1, g1: f"{s} {g0:+.3f} at B={b0} → {g1:+.3f} at B={b1}")
    title = f"Generalization gap vs batch size (best trial by {view.select}): {claim}"
    notes = [
        f"Marker: {view.gap} of the best run of each cell by {view.select}; whiskers: its range over the "
        "cell's non-diverged runs (other learning rates). Keskar et al. 2017; Hoffer et al. 2017.",
        "eval.gen_gap = train accuracy − validation accuracy of the final model (positive: overfits).",
    ]
    figs = [figures.gap_figure(table, ctx.colors, view.gap, title)] if table["gap"].notna().any() else []
    return finished_page(title, {"": table}, figs, notes)


def heatmap_page(view: cfg.HeatmapView, ctx: Context) -> Page:
    grid = lr_batch_grid(
        ctx.runs, metric=view.metric, mode=view.mode, lr=view.lr, bins_per_decade=view.bins_per_decade, by=ctx.by
    )
    best = direction(view.metric, view.mode)
    finite = grid.dropna(subset=["value"])
    claim = ""
    if not finite.empty:
        top = finite.loc[finite["value"].idxmax() if best == "max" else finite["value"].idxmin()]
        claim = (
            f"best {number(top['value'])} ({top['series']}, B={top[BATCH]}, lr={number(top['best_lr'])}); "
            f"{int(grid['diverged'].sum())} of {len(grid)} cells diverged"
        )
    title = f"{view.metric} over learning rate × batch size: {claim}"
    notes = [
        f"Cell value: the {best} of {view.metric} over the cell's non-diverged runs; ✗: every run in the cell "
        f"diverged; '(k/n div.)': k of its n runs diverged. Learning rates ({view.lr}) are binned "
        f"{view.bins_per_decade} per decade; a column's label is the geometric mean of the rates in its bin."
    ]
    return finished_page(
        title, {"": grid}, [figures.heatmap_figure(grid, view.metric, view.lr, title)] if len(grid) else [], notes
    )


def band_page(view: cfg.BandView, ctx: Context) -> Page:
    table = good_lr_band(ctx.runs, metric=view.metric, tolerance=view.tolerance, mode=view.mode, lr=view.lr, by=ctx.by)
    claim = _per_series(
        table, "width_decades", lambda s, b0, w0, b1, w1: f"{s} {w0:.2f} dec at B={b0} → {w1:.2f} at B={b1}"
    )
    title = f"Width of the good learning-rate band (within {number(view.tolerance)} of the best {view.metric}): {claim}"
    censored = table[table["lower_edge"] | table["upper_edge"]]
    comparison = ">= best −" if direction(view.metric, view.mode) == "max" else "<= best +"
    notes = [
        f"Good run: {view.metric} {comparison} {number(view.tolerance)} (absolute) among the runs of its batch size; "
        f"diverged runs are never good. Band: from the smallest to the largest good {view.lr}; width = "
        "log10(largest/smallest) in decades (0 for a single good rate). Shallue et al. 2019 §4.7."
    ]
    gaps = table[~table["contiguous"] & table["n_good"].gt(0)]
    if not gaps.empty:
        notes.append(
            "Not contiguous (a bad rate lies inside the band): "
            + ", ".join(f"{r.series} B={getattr(r, BATCH)}" for r in gaps.itertuples())
        )
    if not censored.empty:
        cells = ", ".join(f"{r.series} B={getattr(r, BATCH)}" for r in censored.itertuples())
        notes.append(
            f"Open markers: the band reaches the edge of the learning rates tried ({cells}); "
            "its true width may be larger."
        )
    figs = (
        [figures.band_figure(table, ctx.colors, view.tolerance, view.metric, view.lr, title)]
        if table["n_good"].any()
        else []
    )
    return finished_page(title, {"": table}, figs, notes)


def importance_page(view: cfg.ImportanceView, ctx: Context) -> Page:
    from largebatch.analysis.importance import param_importance, studies  # Optuna: only for this view

    found = studies(
        ctx.results, runs=ctx.runs, params=view.params, target=view.target, mode=view.mode, source=view.source
    )
    table = param_importance(found, view.evaluators)
    several = table["study"].nunique() > 1
    tops = [
        f"{rows['evaluator_name'].iloc[0]} ranks {rows['param'].iloc[0]} first" + (f" in {study}" if several else "")
        for (study, _), rows in table.groupby(["study", "evaluator"], sort=False)
    ]
    title = "Hyperparameter importance: " + ("; ".join(tops) if tops else "no study to evaluate")
    notes = [f"Study '{s.name}': {s.source}, objective {s.target}, {s.n_complete} complete trials." for s in found]
    notes.append(
        "Importances are normalised per study and evaluator. PED-ANOVA (Watanabe et al. 2023: how the top 10% of "
        "trials differ from all) and fANOVA (Hutter et al. 2014: variance of a random-forest fit) measure different "
        "things and can disagree."
    )
    notes.append(_diverged_note(found))
    if table.empty:
        notes.append("No study has two or more complete trials with a varying parameter.")
    figs = [figures.importance_figure(table, title)] if not table.empty else []
    return finished_page(title, {"": table}, figs, notes)


def _diverged_note(found: Sequence[NamedStudy]) -> str:
    """How many diverged trials the studies score (finite objective) and leave out (FAIL), from the studies."""
    total = sum(len(s.study.trials) for s in found)
    scored = sum(s.n_complete for s in found)
    return (
        f"Diverged trials are included with their objective where it is finite (a diverged model's accuracy is at "
        f"chance): divergence is an outcome of the hyperparameters. {scored} of {total} trials are scored; the "
        f"{total - scored} without a finite objective are left out (FAIL)."
    )


def steps_page(view: cfg.StepsView, ctx: Context) -> Page:
    table = steps_to_target(
        ctx.runs, ctx.results.history, metric=view.metric, target=view.target, mode=view.mode, by=ctx.by
    )
    hit = table[table["reached"]]
    claim = _per_series(
        hit,
        "steps",
        lambda s, b0, s0, b1, s1: (
            f"{s} {s0 / s1:.1f}× fewer steps from B={b0} to B={b1} (perfect scaling: {b1 / b0:.0f}×)"
            if b1 > b0
            else f"{s} {s0:.0f} steps at B={b0}"
        ),
    )
    comparison = ">=" if direction(view.metric, view.mode) == "max" else "<="
    title = f"Steps to {view.metric} {comparison} {number(view.target)} vs batch size: {claim or 'target not reached'}"
    notes = [
        "S(B): the earliest step at which any run of batch size B reached the target; dashed: perfect scaling "
        "S(B0)·B0/B from the smallest batch size B0 that reached it (Shallue et al. 2019). E(B) = B·S(B). "
        f"S(B) is only as fine as {view.metric}'s logging interval."
    ]
    missed = table[~table["reached"]]
    if not missed.empty:
        notes.append(
            "Target not reached at: " + ", ".join(f"{r.series} B={getattr(r, BATCH)}" for r in missed.itertuples())
        )
    return finished_page(
        title,
        {"": table},
        [figures.steps_figure(table, ctx.colors, view.metric, view.target, title)] if claim else [],
        notes,
    )


def trust_page(view: cfg.TrustView, ctx: Context) -> Page:
    layers = ctx.results.layers
    selected = select_runs(ctx.runs, layers, select=view.select, mode=view.mode, per=view.per, by=ctx.by)
    history = trust_ratio_history(layers, selected["run_id"])
    at_init = trust_ratio_at_init(layers, selected)
    if selected.empty:
        title = "Per-layer trust ratios: no run with layer telemetry"
        return finished_page(title, {"": history, "init": at_init}, [], [])
    applied = dict(zip(selected["run_id"], selected["optimizer.name"].isin(layerwise_names()), strict=True))
    title = f"Per-layer trust ratio over training, best run per {view.per}: " + _spread_at_init(
        at_init, selected, applied
    )
    notes = [
        "Colour: log10 of the trust ratio. LARS/LAMB runs: the ratio the optimizer applied (You et al. 2017, 2019); "
        "other optimizers: ‖w‖/‖g‖, the ratio LARS would apply (not applied). Layers excluded from adaptation "
        "(biases, norms) show 1."
    ]
    figs = [
        figures.trust_figure(history, selected, applied, title),
        figures.table_figure(at_init, "Trust ratio at the first recorded step, per layer (rows) and run (columns)"),
    ]
    return finished_page(title, {"": history, "init": at_init}, figs, notes)


def _spread_at_init(at_init: pd.DataFrame, selected: pd.DataFrame, applied: dict[str, bool]) -> str:
    """The range of the trust ratios at initialisation across layers, over the runs that apply them (else all)."""
    columns = at_init.columns[1:]
    chosen = [c for c, run_id in zip(columns, selected["run_id"], strict=True) if applied[run_id]] or list(columns)
    values = at_init[chosen].to_numpy().ravel()
    kind = "applied ratios" if any(applied.values()) else "‖w‖/‖g‖"
    return f"at initialisation the {kind} span {number(values.min())} … {number(values.max())} across layers"


def lr_scaling_page(view: cfg.LrScalingView, ctx: Context) -> Page:
    table = lr_scaling(ctx.runs, select=view.select, mode=view.mode, by=ctx.by)
    alphas = table.drop_duplicates("series").dropna(subset=["alpha"]) if "alpha" in table else table.iloc[:0]
    claim = ", ".join(f"{r.series} α={r.alpha:.2f}" for r in alphas.itertuples())
    title = (
        f"Best learning rate vs batch size, lr* ∝ B^α: {claim or 'needs two batch sizes'} "
        "(linear rule α=1, sqrt rule α=0.5)"
    )
    notes = [
        f"lr*: the peak lr of the best run per cell by {view.select}; rules anchored at the smallest batch size "
        "(Goyal et al. 2017 linear; Hoffer et al. 2017 sqrt); α: least-squares slope on log-log axes. Open markers: "
        "lr* at the edge of the rates tried (the optimum may lie outside the grid)."
    ]
    figs = [figures.lr_scaling_figure(table, ctx.colors, title)] if len(table) else []
    return finished_page(title, {"": table}, figs, notes)


def curves_page(view: cfg.CurvesView, ctx: Context) -> Page:
    table = curves(ctx.runs, ctx.results.history, metrics=view.metrics, select=view.select, mode=view.mode, by=ctx.by)
    title = f"{', '.join(view.metrics)} vs {view.x}, best run per batch size by {view.select}"
    present = [m for m in view.metrics if m in set(table["metric"])]
    notes = [
        "Colour: batch size; dash: series. Against samples (examples seen) batch sizes compare at equal data, where "
        "large batches look worse; against step at equal updates, where they look better (Shallue et al. 2019)."
    ]
    missing = [m for m in view.metrics if m not in present]
    if missing:
        notes.append(f"Not logged by these runs: {', '.join(missing)}")
    figs = [figures.curves_figure(table, present, view.x, view.log_x, title)] if present else []
    return finished_page(title, {"": table}, figs, notes)


def _regime_rule(tolerance: float) -> str:
    """The fit and the regime rule of :mod:`largebatch.analysis.regimes`, as stated on the page and figure."""
    return (
        "Fit: log S = log S_min + log(1 + B_crit/B), least squares over the best trial per batch size "
        f"(McCandlish et al. 2018, eq. 2.11; E_min = S_min·B_crit). Regimes with r = {number(tolerance)}: perfect "
        "scaling B ≤ r·B_crit (E ≤ (1+r)·E_min), maximal data parallelism B ≥ B_crit/r (S ≤ (1+r)·S_min), "
        "diminishing returns between; knee B = B_crit (S = 2·S_min)."
    )


def _fit_claim(fit: pd.Series) -> str:
    knee = "" if fit["knee_in_range"] else " (outside the batch sizes measured)"
    text = (
        f"{fit['series']} B_crit≈{number(fit['b_crit'])}{knee}, S_min={number(fit['s_min'])}, "
        f"E_min={number(fit['e_min'])}, R²={fit['r2_log']:.2f}"
    )
    ratio = fit.get("ratio")
    if ratio is not None and pd.notna(ratio):
        text += f"; B_simple predicts {number(fit['predicted_b_crit'])} ({ratio:.2g}× the fit)"
    return text


def regimes_page(view: cfg.RegimesView, ctx: Context) -> Page:
    steps = steps_to_target(
        ctx.runs, ctx.results.history, metric=view.metric, target=view.target, mode=view.mode, by=ctx.by
    )
    fits, points = scaling_regimes(steps, tolerance=view.tolerance)
    at_target = (
        noise_scale_at_target(steps, ctx.results.history, metric=view.noise_scale) if view.noise_scale else None
    )
    if at_target is not None and not at_target.empty:
        prediction = compare_prediction(fits, at_target)
        fits = fits.merge(prediction.drop(columns=["b_crit", "b_crit_low", "b_crit_high", "knee_in_range"]), on="series")
    rows = steps.merge(points[["series", BATCH, "fitted_steps", "residual_factor", "region", "tradeoff"]],
                       on=["series", BATCH], how="left")
    if at_target is not None:
        rows = rows.merge(at_target[["series", BATCH, "b_simple", "b_simple_step"]], on=["series", BATCH], how="left")
    comparison = ">=" if direction(view.metric, view.mode) == "max" else "<="
    claim = "; ".join(_fit_claim(fit) for _, fit in fits.iterrows())
    title = (
        f"Scaling regimes of steps to {view.metric} {comparison} {number(view.target)}: "
        + (claim or "no series reached the target at 3 or more batch sizes")
    )
    notes = [
        _regime_rule(view.tolerance),
        "S(B): the earliest step at which any run of batch size B reached the target (Shallue et al. 2019), only "
        f"as fine as {view.metric}'s logging interval. Marker shape: the regime of each measured batch size; "
        "open markers: series with fewer than 3 batch sizes that reached the target (no fit). Right panel: the "
        "trade-off (S/S_min − 1)(E/E_min − 1) = 1 (McCandlish et al. eq. 2.12) through the same fit; the "
        "'tradeoff' column gives each measured point's product (1 on the curve). Intervals: approximate 95% "
        "(Student t on the log-parameters).",
    ]
    if view.noise_scale:
        notes.append(
            f"Dotted: the B_simple prediction of B_crit (McCandlish et al. §2.2: B_crit ≈ B_noise ≈ B_simple at the "
            f"loss reached): the last positive {view.noise_scale} each batch size's best run logged at or before "
            "it reached the target, median over batch sizes; 'ratio' = predicted/fitted."
        )
        if at_target is None or at_target.empty:
            notes.append(f"No run logged {view.noise_scale} before reaching the target (enable probes.noise_scale).")
    missed = steps[~steps["reached"]]
    if not missed.empty:
        notes.append(
            "Target not reached at: " + ", ".join(f"{r.series} B={getattr(r, BATCH)}" for r in missed.itertuples())
        )
    tables = {"": rows, "fits": fits, "curve": fitted_curve(fits)}
    figs = []
    if steps["reached"].any():
        predicted = dict(zip(fits["series"], fits["predicted_b_crit"])) if "predicted_b_crit" in fits else {}
        rule = _regime_rule(view.tolerance)
        figs.append(figures.regimes_figure(steps, fits, points, predicted, ctx.colors, rule, title))
    if not fits.empty:
        figs.append(figures.table_figure(_fit_summary(fits), "Fitted S(B) = S_min·(1 + B_crit/B) per series"))
    return finished_page(title, {k: t for k, t in tables.items() if k == "" or not t.empty}, figs, notes)


def _fit_summary(fits: pd.DataFrame) -> pd.DataFrame:
    """The fit table as shown on the page: parameters with their 95% intervals, quality, thresholds, prediction."""
    table = pd.DataFrame(
        {
            "series": fits["series"],
            "S_min": fits["s_min"],
            "E_min": fits["e_min"],
            "B_crit (knee)": fits["b_crit"],
            "B_crit 95%": [f"{number(a)} … {number(b)}" for a, b in zip(fits["b_crit_low"], fits["b_crit_high"])],
            "R² (log S)": fits["r2_log"],
            "rms residual ×": fits["rms_factor"],
            "perfect scaling B ≤": fits["perfect_below"],
            "max. parallelism B ≥": fits["parallel_above"],
            "batch sizes": fits["n_points"],
        }
    )
    if "predicted_b_crit" in fits:
        table["B_simple prediction"] = fits["predicted_b_crit"]
        table["predicted / fitted"] = fits["ratio"]
    return table


def sharpness_page(view: cfg.SharpnessView, ctx: Context) -> Page:
    table = sharpness_vs_batch(
        ctx.runs, sharpness=view.sharpness, gap=view.gap, loss=view.loss, select=view.select, mode=view.mode, by=ctx.by
    )
    rho = {"sharpness": rank_correlation(table, "sharpness"), "gap": rank_correlation(table, "gap")}
    claim = _per_series(
        table,
        "sharpness",
        lambda s, b0, v0, b1, v1: f"{s} λ_max {number(v0)} at B={b0} → {number(v1)} at B={b1}"
        + (f" (rank corr. with B: λ_max {rho['sharpness'][s]:+.2f}, gap {rho['gap'][s]:+.2f})"
           if pd.notna(rho["sharpness"][s]) else ""),
    )
    title = f"Sharpness and generalization gap vs batch size (best trial by {view.select}): " + (
        claim or f"no run logged {view.sharpness}"
    )
    notes = [
        f"Left: {view.sharpness}, the top Hessian eigenvalue of the training loss at the end of training (power "
        "iteration on Hessian-vector products) of the best run per cell by " + view.select + ", whiskers: its range "
        f"over the cell's runs. Right: the same runs' {view.gap}, whiskers over the cell. Keskar et al. 2017 claim "
        "both grow with the batch size (rank correlation +1).",
        f"Sharpness falls as the training loss goes to 0: compare cells at similar {view.loss} (column train_loss), "
        "not at equal epochs.",
    ]
    figs = [figures.sharpness_figure(table, ctx.colors, view.sharpness, view.gap, title)] if len(table) else []
    return finished_page(title, {"": table}, figs, notes)


def finished_page(title: str, tables: dict[str, pd.DataFrame], figs: list[go.Figure], notes: list[str]) -> Page:
    """The page, with a note when it has no figure; empty notes dropped."""
    if not figs:
        notes = [*notes, "Nothing to plot for these runs (see the data table)."]
    return Page(title, tables, figs, [n for n in notes if n])
