"""Verdict rules: small pure functions over our numbers, each returning ``holds``, ``does not hold`` or
``inconclusive`` with the reason. Nothing here reads files; the tables come from :mod:`largebatch.reproduce.numbers`.

*Cells* (batch-size tables): one row per ``series`` × ``batch_size`` with ``mean`` and ``std`` (over seeds, of
the metric as reported), ``score`` (the mean signed so that higher is better), ``seeds`` (seeds with a value),
``trials`` (finished trials) and ``diverged`` (how many of them diverged). A cell is compared with its series'
*reference*, the smallest batch size: its *drop* is ``reference score − cell score``. Within ``tolerance`` it is
**flat**; beyond it, it is a **break** when the drop also exceeds ``noise × √(std_cell² + std_ref²)`` (the spread
across seeds), else **noisy** (inconclusive). A cell whose every trial diverged is a break: divergence is a result.
Used for LARS (arXiv:1708.03888) Sec. 3–5, LAMB (arXiv:1904.00962) Table 1 and its optimizer comparison, and
Goyal et al. (arXiv:1706.02677) Figure 1.

*Ratios* (layer tables, LARS Table 1): one row per ``seed`` × ``layer`` × ``epoch`` (0 = init) with ``kind``
(``weight`` or ``bias``) and ``ratio`` = ‖w‖/‖∇w‖.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
FLAT, BREAK, NOISY, MISSING = "flat", "break", "noisy", "missing"


@dataclass(frozen=True)
class Verdict:
    outcome: str
    detail: str

    def text(self) -> str:
        return f"**{self.outcome}**: {self.detail}"


def _std(value: float) -> float:
    return 0.0 if value is None or math.isnan(value) else float(value)


def _all_diverged(row: pd.Series) -> bool:
    return bool(row["trials"] > 0 and row["diverged"] >= row["trials"])


def series_cells(cells: pd.DataFrame, series: str) -> pd.DataFrame:
    """The cells of one series with trials, by batch size."""
    rows = cells[(cells["series"] == series) & (cells["trials"] > 0)]
    return rows.sort_values("batch_size").reset_index(drop=True)


@dataclass(frozen=True)
class Course:
    """A series' cells judged against its reference (see the module docstring); ``problem`` is why it cannot be
    judged at all (None when it can)."""

    series: str
    batches: list[int]
    states: list[str]
    drops: list[float]
    reference: float
    problem: str | None

    def first(self, *states: str) -> int | None:
        return next((b for b, s in zip(self.batches, self.states) if s in states), None)

    @property
    def break_batch(self) -> int | None:
        """The first batch that breaks, unless a noisy cell comes before it (then it is undetermined)."""
        for batch, state in zip(self.batches, self.states):
            if state == NOISY:
                return None
            if state == BREAK:
                return batch
        return None

    @property
    def undetermined(self) -> bool:
        """Whether a noisy cell comes before any break (so where it breaks, if at all, is unknown)."""
        for state in self.states:
            if state == BREAK:
                return False
            if state == NOISY:
                return True
        return False

    def describe(self, batch: int) -> str:
        i = self.batches.index(batch)
        return "diverged" if math.isinf(self.drops[i]) else f"drop {self.drops[i]:.3g}"


def course(cells: pd.DataFrame, series: str, tolerance: float, noise: float) -> Course:
    """Judge every cell of ``series`` against its smallest batch size."""
    rows = series_cells(cells, series)
    if len(rows) < 2:
        return Course(series, [], [], [], math.nan, f"{series}: finished trials at {len(rows)} batch size(s), need 2")
    ref = rows.iloc[0]
    if _all_diverged(ref) or math.isnan(ref["score"]):
        return Course(series, [], [], [], math.nan,
                      f"{series}: no reference, every trial at the smallest batch {int(ref['batch_size'])} diverged"
                      + (" (diverged everywhere)" if all(_all_diverged(r) for _, r in rows.iterrows()) else ""))
    batches, states, drops = [], [], []
    for _, row in rows.iloc[1:].iterrows():
        batches.append(int(row["batch_size"]))
        if _all_diverged(row):
            states.append(BREAK)
            drops.append(math.inf)
            continue
        drop = float(ref["score"] - row["score"])
        spread = noise * math.hypot(_std(row["std"]), _std(ref["std"]))
        states.append(FLAT if drop <= tolerance else (BREAK if drop - tolerance > spread else NOISY))
        drops.append(drop)
    return Course(series, batches, states, drops, float(ref["mean"]), None)


def _span(c: Course, reference: int) -> str:
    return f"{reference}–{c.batches[-1]} ({c.batches[-1] / reference:g}×)"


def _flatness(cells: pd.DataFrame, series: str, tolerance: float, noise: float) -> tuple[bool | None, str]:
    """Whether ``series`` breaks somewhere (True), stays flat everywhere (False) or cannot be told (None), and why."""
    c = course(cells, series, tolerance, noise)
    if c.problem:
        return None, c.problem
    broken = c.first(BREAK)
    if broken is not None:
        return True, f"{series} breaks at {broken} ({c.describe(broken)})"
    noisy = c.first(NOISY)
    if noisy is not None:
        return None, f"{series} at {noisy}: {c.describe(noisy)} is within noise across seeds"
    reference = int(series_cells(cells, series)["batch_size"].iloc[0])
    return False, f"{series} stays within {tolerance:g} over {_span(c, reference)}, largest drop {max(c.drops):.3g}"


def degrades(cells: pd.DataFrame, series: str, tolerance: float, noise: float) -> Verdict:
    """Does ``series`` fall beyond ``tolerance`` below its smallest-batch value (or diverge) at a larger batch?"""
    breaks, detail = _flatness(cells, series, tolerance, noise)
    return Verdict({True: HOLDS, False: FAILS, None: INCONCLUSIVE}[breaks], detail)


def stays_within(cells: pd.DataFrame, series: str, tolerance: float, noise: float) -> Verdict:
    """Does ``series`` stay within ``tolerance`` of its smallest-batch value at every batch, none diverging?"""
    breaks, detail = _flatness(cells, series, tolerance, noise)
    return Verdict({True: FAILS, False: HOLDS, None: INCONCLUSIVE}[breaks], detail)


def smaller_drop(cells: pd.DataFrame, series: str, than: str, margin: float, noise: float) -> Verdict:
    """At the largest batch both series ran, does ``series`` lose at least ``margin`` less than ``than``?"""
    a, b = (course(cells, s, math.inf, noise) for s in (series, than))
    for c in (a, b):
        if c.problem:
            return Verdict(INCONCLUSIVE, c.problem)
    common = sorted(set(a.batches) & set(b.batches))
    if not common:
        return Verdict(INCONCLUSIVE, f"{series} and {than} share no batch size above their references")
    batch = common[-1]
    drop_a, drop_b = a.drops[a.batches.index(batch)], b.drops[b.batches.index(batch)]
    at = f"at {batch}: {series} {a.describe(batch)}, {than} {b.describe(batch)}"
    if math.isinf(drop_a) and math.isinf(drop_b):
        return Verdict(INCONCLUSIVE, f"both diverged {at}")
    if math.isinf(drop_a) or math.isinf(drop_b):
        return Verdict(FAILS if math.isinf(drop_a) else HOLDS, at)
    spread = noise * math.hypot(*(_std(v) for v in _stds(cells, (series, than), batch)))
    gain = drop_b - drop_a
    if gain <= margin:
        return Verdict(FAILS, at)
    if gain - margin <= spread:
        return Verdict(INCONCLUSIVE, f"{at}; the difference {gain:.3g} is within noise across seeds ({spread:.3g})")
    return Verdict(HOLDS, at)


def _stds(cells: pd.DataFrame, series: Sequence[str], batch: int) -> list[float]:
    rows = cells[cells["series"].isin(series) & (cells["batch_size"] == batch)]
    return list(rows["std"])


def breaks_earlier(cells: pd.DataFrame, series: Sequence[str], than: str, tolerance: float, noise: float) -> Verdict:
    """Does each of ``series`` break at a smaller batch than ``than`` (which may never break: infinity)?"""
    courses = {s: course(cells, s, tolerance, noise) for s in (*series, than)}
    for c in courses.values():
        if c.problem:
            return Verdict(INCONCLUSIVE, c.problem)
        if c.undetermined:
            noisy = c.first(NOISY)
            return Verdict(INCONCLUSIVE, f"{c.series} at {noisy}: {c.describe(noisy)} is within noise across seeds")
    breaks = {s: c.break_batch or math.inf for s, c in courses.items()}
    listed = ", ".join(f"{s} {'never' if math.isinf(b) else f'at {b}'}" for s, b in breaks.items())
    later = [s for s in series if breaks[s] >= breaks[than]]
    return Verdict(FAILS if later else HOLDS, f"breaks: {listed}")


def break_point(cells: pd.DataFrame, series: str, tolerance: float, min_flat: float, noise: float) -> Verdict:
    """Is ``series`` flat over at least ``min_flat``× of batch sizes, then breaking? Reports the break point."""
    c = course(cells, series, tolerance, noise)
    if c.problem:
        return Verdict(INCONCLUSIVE, c.problem)
    if c.undetermined:
        noisy = c.first(NOISY)
        return Verdict(INCONCLUSIVE, f"{series} at {noisy}: {c.describe(noisy)} is within noise across seeds")
    reference = int(series_cells(cells, series)["batch_size"].iloc[0])
    broken = c.break_batch
    if broken is None:
        return Verdict(INCONCLUSIVE, f"no break within the tested range {_span(c, reference)}; extend the batch range")
    flat = [b for b in c.batches if b < broken]
    last_flat = flat[-1] if flat else reference
    detail = (f"flat {reference}–{last_flat} ({last_flat / reference:g}×), "
              f"break point {broken} ({c.describe(broken)})")
    return Verdict(HOLDS if last_flat / reference >= min_flat else FAILS, detail)


def _score_at_largest(cells: pd.DataFrame, series: str) -> tuple[float, float] | None:
    """(score, std) of ``series`` at its largest batch with trials; score −inf where every trial diverged."""
    rows = series_cells(cells, series)
    if rows.empty:
        return None
    row = rows.iloc[-1]
    return (-math.inf if _all_diverged(row) else float(row["score"])), _std(row["std"])


def ranking(cells: pd.DataFrame, order: Sequence[str], tolerance: float, noise: float) -> Verdict:
    """Are the series ranked as ``order`` (best first)? Pairs closer than ``tolerance`` (or the spread across
    seeds) are ties; a series whose every trial diverged ranks last."""
    scores = {s: _score_at_largest(cells, s) for s in order}
    missing = [s for s, v in scores.items() if v is None]
    if missing:
        return Verdict(INCONCLUSIVE, f"too few finished trials: none for {', '.join(missing)}")
    ours = " > ".join(sorted(order, key=lambda s: -scores[s][0]))  # type: ignore[index]
    concordant, reversed_ = 0, []
    for i, better in enumerate(order):
        for worse in order[i + 1:]:
            (sa, da), (sb, db) = scores[better], scores[worse]  # type: ignore[misc]
            diff = sa - sb
            if math.isinf(diff) or (abs(diff) > tolerance and abs(diff) > noise * math.hypot(da, db)):
                if diff > 0:
                    concordant += 1
                else:
                    reversed_.append(f"{worse} > {better}")
    if reversed_:
        return Verdict(FAILS, f"ours: {ours}; reversed: {', '.join(reversed_)}")
    if concordant == 0:
        return Verdict(INCONCLUSIVE, f"ours: {ours}; every pair within {tolerance:g} or noise (all ties)")
    return Verdict(HOLDS, f"ours: {ours}; {concordant} pair(s) as published, the rest ties")


def matches(cells: pd.DataFrame, series: Sequence[str], target: str, tolerance: float, noise: float) -> Verdict:
    """Is the best of ``series`` within ``tolerance`` of ``target`` (Nado et al. 2021: tuned baselines match)?"""
    scores = {s: _score_at_largest(cells, s) for s in (*series, target)}
    missing = [s for s, v in scores.items() if v is None]
    if missing:
        return Verdict(INCONCLUSIVE, f"too few finished trials: none for {', '.join(missing)}")
    best = max(series, key=lambda s: scores[s][0])  # type: ignore[index]
    (sb, db), (st, dt) = scores[best], scores[target]  # type: ignore[misc]
    if math.isinf(sb) and math.isinf(st):
        return Verdict(INCONCLUSIVE, "every trial diverged (diverged everywhere)")
    gap = st - sb
    detail = f"best baseline {best}, {'diverged' if math.isinf(gap) else f'gap to {target} {gap:.3g}'}"
    if gap <= tolerance:
        return Verdict(HOLDS, detail)
    if not math.isinf(gap) and gap - tolerance <= noise * math.hypot(db, dt):
        return Verdict(INCONCLUSIVE, f"{detail}, within noise across seeds")
    return Verdict(FAILS, detail)


def _per_seed(ratios: pd.DataFrame, epoch: float) -> dict[int, pd.DataFrame]:
    at = ratios[(ratios["epoch"] == epoch) & np.isfinite(ratios["ratio"]) & (ratios["ratio"] > 0)]
    return {int(seed): rows for seed, rows in at.groupby("seed")}


def _all_or_none(values: dict[int, float], passes: dict[int, bool], what: str) -> Verdict:
    listed = ", ".join(f"seed {s}: {v:.3g}" for s, v in sorted(values.items()))
    if all(passes.values()):
        return Verdict(HOLDS, f"{what} {listed}")
    if not any(passes.values()):
        return Verdict(FAILS, f"{what} {listed}")
    return Verdict(INCONCLUSIVE, f"seeds disagree: {what} {listed}")


def ratio_spread(ratios: pd.DataFrame, min_decades: float) -> Verdict:
    """Does ‖w‖/‖∇w‖ at init span at least ``min_decades`` decades across layers, in every seed?"""
    seeds = {s: rows for s, rows in _per_seed(ratios, 0.0).items() if len(rows) >= 2}
    if not seeds:
        return Verdict(INCONCLUSIVE, "no layer telemetry at init with two or more finite ratios")
    decades = {s: float(np.log10(rows["ratio"].max() / rows["ratio"].min())) for s, rows in seeds.items()}
    return _all_or_none(decades, {s: d >= min_decades for s, d in decades.items()}, "decades spanned:")


def weight_bias_gap(ratios: pd.DataFrame, min_decades: float) -> Verdict:
    """In some layer, do the weight's and the bias's ratios at init differ by ``min_decades`` decades?"""
    gaps: dict[int, float] = {}
    for seed, rows in _per_seed(ratios, 0.0).items():
        base = rows.assign(base=rows["layer"].str.rsplit(".", n=1).str[0])
        wide = base.pivot_table(index="base", columns="kind", values="ratio", aggfunc="first")
        if {"weight", "bias"} <= set(wide.columns):
            both = wide.dropna(subset=["weight", "bias"])
            if not both.empty:
                gaps[seed] = float(np.abs(np.log10(both["weight"] / both["bias"])).max())
    if not gaps:
        return Verdict(INCONCLUSIVE, "no layer with both a weight and a bias ratio at init (a BN model has no biases)")
    return _all_or_none(gaps, {s: g >= min_decades for s, g in gaps.items()}, "largest weight/bias gap (decades):")


def ratio_falls(ratios: pd.DataFrame, epoch: float, factor: float) -> Verdict:
    """Is the median weight-layer ratio after ``epoch`` at least ``factor``× below its value at init?"""
    weights = ratios[ratios["kind"] == "weight"]
    start, later = _per_seed(weights, 0.0), _per_seed(weights, epoch)
    seeds = sorted(set(start) & set(later))
    if not seeds:
        return Verdict(INCONCLUSIVE, f"no weight-layer ratios both at init and after epoch {epoch:g} "
                                     "(too few finished trials, or runs shorter than that)")
    falls = {s: float(start[s]["ratio"].median() / later[s]["ratio"].median()) for s in seeds}
    return _all_or_none(falls, {s: f >= factor for s, f in falls.items()}, f"init ÷ epoch {epoch:g}:")
