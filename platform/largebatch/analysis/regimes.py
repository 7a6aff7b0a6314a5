"""Scaling regimes of steps-to-target vs batch size (Shallue et al. 2019, JMLR 20(112), arXiv:1811.03600, §4.1)
from the fitted model of McCandlish et al. (2018, "An Empirical Model of Large-Batch Training", arXiv:1812.06162).

Model (McCandlish et al. eq. 2.11, with B_crit = B_noise): the steps S and training examples E = B·S needed to
reach a fixed target at batch size B are

    S(B) = S_min·(1 + B_crit/B),    E(B) = E_min·(1 + B/B_crit),    B_crit = E_min/S_min,

equivalently the trade-off (S/S_min − 1)(E/E_min − 1) = 1 (eq. 2.12). It is fitted to the measured S(B) of
:func:`largebatch.analysis.steps.steps_to_target` (the best trial per batch size) by least squares on log S
(parameters log S_min and log B_crit; ≥ 3 batch sizes that reached the target). Reported per series: S_min,
E_min, B_crit with approximate 95% intervals (Student t on the log-parameters' standard errors from the
Jacobian), R² of log S, the RMS residual as a factor, and whether the knee lies inside the measured range.

The knee is B = B_crit, where S = 2·S_min and E = 2·E_min (local slope d log S/d log B = −½). Regions, with
``tolerance`` r (default 0.25), from the local slope −B_crit/(B + B_crit):

- perfect scaling, B ≤ r·B_crit: E ≤ (1 + r)·E_min (at most r more examples than the minimum; slope ≤ −1/(1+r));
- maximal data parallelism, B ≥ B_crit/r: S ≤ (1 + r)·S_min (within r of the fewest steps; slope ≥ −r/(1+r));
- diminishing returns in between.

Noise-scale prediction (McCandlish et al. §2.2 and Fig. 7: B_crit at a given loss ≈ B_noise ≈ B_simple measured
at that loss): for each batch size, the B_simple that its best run logged last at or before the step at which
it reached the target (positive values only); the series' prediction is the median over batch sizes, compared
with the fitted B_crit as the ratio predicted/fitted (1 = exact; the paper finds agreement within a small
factor, B_simple tending to underestimate B_noise).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize, stats

from largebatch.analysis.cells import BATCH
from largebatch.analysis.tables import require

B_SIMPLE = "noise_scale/b_simple"
MIN_POINTS = 3
SEARCH_DECADES = 3.0  # B_crit is searched within this many decades outside the measured batch sizes
POINT_COLUMNS = ("fitted_steps", "fitted_samples", "residual_factor", "region", "tradeoff")
REGIONS = ("perfect scaling", "diminishing returns", "maximal data parallelism")
FIT_COLUMNS = (
    "series",
    "n_points",
    "s_min",
    "e_min",
    "b_crit",
    "b_crit_low",
    "b_crit_high",
    "s_min_low",
    "s_min_high",
    "r2_log",
    "rms_factor",
    "perfect_below",
    "parallel_above",
    "knee_in_range",
    "batch_min",
    "batch_max",
    "tolerance",
)


def _log_model(log_b: np.ndarray, log_s_min: float, log_b_crit: float) -> np.ndarray:
    """log S(B) = log S_min + log(1 + B_crit/B)."""
    return log_s_min + np.logaddexp(0.0, log_b_crit - log_b)


def fit_scaling(batch: np.ndarray, steps: np.ndarray) -> dict[str, float]:
    """Least-squares fit of log S = log S_min + log(1 + B_crit/B) to measured (B, S) (see the module docstring):
    ``s_min``, ``b_crit``, ``e_min`` = S_min·B_crit, their 95% intervals, ``r2_log`` and ``rms_factor``.
    ValueError for fewer than 3 points or non-positive values."""
    batch, steps = np.asarray(batch, dtype=float), np.asarray(steps, dtype=float)
    if len(batch) < MIN_POINTS or len(np.unique(batch)) < MIN_POINTS:
        raise ValueError(f"fitting S(B) needs at least {MIN_POINTS} distinct batch sizes, got {len(np.unique(batch))}")
    if (batch <= 0).any() or (steps <= 0).any() or not np.isfinite([*batch, *steps]).all():
        raise ValueError("batch sizes and steps must be positive and finite")
    x, y = np.log(batch), np.log(steps)
    spread = SEARCH_DECADES * math.log(10)
    low, high = x.min() - spread, x.max() + spread
    # profile over log B_crit (log S_min has a closed form for each), then refine both jointly
    grid = np.linspace(low, high, 241)
    best = min(grid, key=lambda c: float(np.var(y - np.logaddexp(0.0, c - x))))
    start = [float(np.mean(y - np.logaddexp(0.0, best - x))), float(best)]
    fit = optimize.least_squares(
        lambda p: _log_model(x, *p) - y,
        start,
        bounds=([-np.inf, low], [np.inf, high]),
        method="trf",
        x_scale=[1.0, 1.0],
    )
    log_s_min, log_b_crit = fit.x
    residual = fit.fun
    dof = len(x) - 2
    sigma2 = float(residual @ residual) / dof if dof > 0 else math.nan
    try:
        errors = np.sqrt(np.diag(np.linalg.inv(fit.jac.T @ fit.jac)) * sigma2)
    except np.linalg.LinAlgError:
        errors = np.array([math.nan, math.nan])
    t = float(stats.t.ppf(0.975, dof)) if dof > 0 else math.nan
    total = float(((y - y.mean()) ** 2).sum())
    s_min, b_crit = math.exp(log_s_min), math.exp(log_b_crit)
    # a fit on the search bound only says the knee lies beyond it: the interval is open on that side
    at_low, at_high = np.isclose(log_b_crit, low, atol=1e-6), np.isclose(log_b_crit, high, atol=1e-6)
    return {
        "s_min": s_min,
        "b_crit": b_crit,
        "e_min": s_min * b_crit,
        "s_min_low": math.exp(log_s_min - t * errors[0]),
        "s_min_high": math.exp(log_s_min + t * errors[0]),
        "b_crit_low": 0.0 if at_low else math.exp(log_b_crit - t * errors[1]),
        "b_crit_high": math.inf if at_high else math.exp(log_b_crit + t * errors[1]),
        "r2_log": 1 - float(residual @ residual) / total if total > 0 else math.nan,
        "rms_factor": math.exp(math.sqrt(float(residual @ residual) / len(x))),
    }


def region(batch: float, b_crit: float, tolerance: float) -> str:
    """The regime of batch size ``batch`` under a fit with ``b_crit`` (rule in the module docstring)."""
    if batch <= tolerance * b_crit:
        return REGIONS[0]
    if batch >= b_crit / tolerance:
        return REGIONS[2]
    return REGIONS[1]


def scaling_regimes(steps: pd.DataFrame, *, tolerance: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit S(B) per series of a :func:`~largebatch.analysis.steps.steps_to_target` table.

    Returns ``(fits, points)``: ``fits`` one row per series with ≥ 3 batch sizes that reached the target
    (columns ``FIT_COLUMNS``); ``points`` the reached rows of ``steps`` with ``fitted_steps``,
    ``fitted_samples``, ``residual_factor`` (measured/fitted S), ``region`` and ``tradeoff``
    = (S/S_min − 1)(E/E_min − 1) of the measured point (1 on the fitted curve)."""
    require(steps, ["series", BATCH, "steps", "samples", "reached"])
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must lie in (0, 1), got {tolerance}")
    fits, points = [], []
    for series, rows in steps[steps["reached"]].groupby("series", sort=True):
        if rows[BATCH].nunique() < MIN_POINTS:
            continue
        fit = fit_scaling(rows[BATCH].to_numpy(), rows["steps"].to_numpy())
        b_min, b_max = float(rows[BATCH].min()), float(rows[BATCH].max())
        fits.append(
            {
                "series": series,
                "n_points": len(rows),
                **fit,
                "perfect_below": tolerance * fit["b_crit"],
                "parallel_above": fit["b_crit"] / tolerance,
                "knee_in_range": b_min <= fit["b_crit"] <= b_max,
                "batch_min": b_min,
                "batch_max": b_max,
                "tolerance": tolerance,
            }
        )
        predicted = fitted_steps(rows[BATCH].to_numpy(), fit["s_min"], fit["b_crit"])
        points.append(
            rows.assign(
                fitted_steps=predicted,
                fitted_samples=predicted * rows[BATCH],
                residual_factor=rows["steps"] / predicted,
                region=[region(b, fit["b_crit"], tolerance) for b in rows[BATCH]],
                tradeoff=(rows["steps"] / fit["s_min"] - 1) * (rows["samples"] / fit["e_min"] - 1),
            )
        )
    fit_table = pd.DataFrame(fits, columns=list(FIT_COLUMNS))
    empty = steps.iloc[:0].assign(**{c: [] for c in POINT_COLUMNS})
    point_table = pd.concat(points, ignore_index=True) if points else empty
    return fit_table, point_table


def fitted_steps(batch: np.ndarray, s_min: float, b_crit: float) -> np.ndarray:
    """S(B) = S_min·(1 + B_crit/B) (McCandlish et al. eq. 2.11)."""
    return s_min * (1 + b_crit / np.asarray(batch, dtype=float))


def fitted_curve(fits: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """The fitted S(B) and E(B) of each series on a log grid of batch sizes (``series, batch_size, steps,
    samples``): across the measured batch sizes and out to B_crit/8 and 8·B_crit (where S and E are within
    12.5% of their asymptotes S_min, E_min), but never more than a decade beyond the measured range."""
    frames = []
    for fit in fits.itertuples():
        low = max(min(fit.batch_min, fit.b_crit / 8), fit.batch_min / 10)
        high = min(max(fit.batch_max, fit.b_crit * 8), fit.batch_max * 10)
        batch = np.geomspace(low, high, points)
        steps = fitted_steps(batch, fit.s_min, fit.b_crit)
        frames.append(pd.DataFrame({"series": fit.series, BATCH: batch, "steps": steps, "samples": steps * batch}))
    if not frames:
        return pd.DataFrame(columns=["series", BATCH, "steps", "samples"])
    return pd.concat(frames, ignore_index=True)


def noise_scale_at_target(steps: pd.DataFrame, history: pd.DataFrame, *, metric: str = B_SIMPLE) -> pd.DataFrame:
    """Per reached row of a steps table: ``b_simple``, the last positive finite ``metric`` value its run
    (``run_id``) logged at or before the step it reached the target, and ``b_simple_step``, the step of that
    value (rows without one are left out)."""
    require(steps, ["series", BATCH, "run_id", "steps", "reached"])
    reached = steps[steps["reached"]][["series", BATCH, "run_id", "steps"]]
    values = history[(history["metric"] == metric) & np.isfinite(history["value"]) & (history["value"] > 0)]
    joined = values.merge(reached, on="run_id")
    joined = joined[joined["step"] <= joined["steps"]].sort_values("step", kind="stable")
    last = joined.drop_duplicates("run_id", keep="last")
    table = last[["series", BATCH, "run_id", "steps", "step", "value"]].rename(
        columns={"step": "b_simple_step", "value": "b_simple"}
    )
    return table.sort_values(["series", BATCH], kind="stable").reset_index(drop=True)


def compare_prediction(fits: pd.DataFrame, at_target: pd.DataFrame) -> pd.DataFrame:
    """Per fitted series: the predicted B_crit (median ``b_simple`` over batch sizes, with its min and max and
    count), the fitted ``b_crit`` and ``ratio`` = predicted/fitted (NaN where the series has no B_simple)."""
    require(fits, ["series", "b_crit", "knee_in_range"])
    spread = at_target.groupby("series")["b_simple"].agg(["median", "min", "max", "size"])
    spread.columns = ["predicted_b_crit", "b_simple_min", "b_simple_max", "n_b_simple"]
    table = fits[["series", "b_crit", "b_crit_low", "b_crit_high", "knee_in_range"]].join(spread, on="series")
    table["n_b_simple"] = table["n_b_simple"].fillna(0).astype(int)
    table["ratio"] = table["predicted_b_crit"] / table["b_crit"]
    return table.reset_index(drop=True)
