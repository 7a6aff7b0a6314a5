"""How far each series' good learning-rate band survives as the batch grows, and which series keeps it longest.

One bar for every cell: a run is *good* when its metric is within ``tolerance`` of the best run of all the runs
given (:func:`largebatch.analysis.sensitivity.good_lr_band` with ``reference="all"``). A series' band
*survives* to batch size B when every batch size it tried from its smallest up to B has at least one good
learning rate; it *stops scaling* at the first batch size with none (Shallue et al. 2019, §4.7: the good region
shrinks as the batch grows until no tuned rate reaches the target). With a fixed budget in epochs, large
batches take few steps, so this is where adding data parallelism stops paying.

The verdict compares the series and says ``inconclusive`` when the data cannot decide:

- the leading series tie and at least one of them keeps its band up to the largest batch size it tried (extend
  the batch range);
- a series other than a sole leader stopped at a batch size whose best rate lies at the edge of the rates tried
  (``censored``: a rate outside the grid might still be good; widen the grid);
- no series reaches the bar even at its smallest batch size;
- a series other than the leader has a good rate again at a batch size beyond where its band vanished
  (``recovers_at``) and beyond the leader's reach: the edge between grid points cannot be placed.

A series that never reaches the bar ranks below every series that does; ``same`` means the leaders stop at the
same batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from largebatch.analysis.cells import BATCH


def band_survival(cells: pd.DataFrame) -> pd.DataFrame:
    """Per series of ``cells`` (a :func:`~largebatch.analysis.sensitivity.good_lr_band` table against one bar,
    ``reference="all"``): ``batch_low``/``batch_high`` (tried), ``survives_to``, ``stops_at`` (NaN when it survives
    to ``batch_high``), ``stop_best``/``stop_best_lr`` (the best run where it stopped), ``censored``,
    ``recovers_at`` (the first larger batch size with a good rate again, NaN if none) and ``threshold``."""
    columns = ["series", "batch_low", "batch_high", "survives_to", "stops_at", "stop_best", "stop_best_lr",
               "censored", "recovers_at", "threshold"]
    if cells.empty:
        return pd.DataFrame(columns=columns)
    if set(cells["reference"]) != {"all"}:
        raise ValueError("band survival needs one bar for every cell: good_lr_band(..., reference='all')")
    rows = [_survival(str(name), group.sort_values(BATCH)) for name, group in cells.groupby("series", sort=True)]
    return pd.DataFrame(rows, columns=columns)


def _survival(series: str, cells: pd.DataFrame) -> dict[str, object]:
    good = cells["n_good"].gt(0).to_numpy()
    batches = cells[BATCH].to_numpy()
    first_bad = next((i for i, g in enumerate(good) if not g), len(good))
    stop = cells.iloc[first_bad] if first_bad < len(good) else None
    after = [b for b, g in zip(batches[first_bad + 1:], good[first_bad + 1:]) if g]
    return {
        "series": series,
        "batch_low": batches[0],
        "batch_high": batches[-1],
        "survives_to": batches[first_bad - 1] if first_bad > 0 else math.nan,
        "stops_at": stop[BATCH] if stop is not None else math.nan,
        "stop_best": stop["best"] if stop is not None else math.nan,
        "stop_best_lr": stop["best_lr"] if stop is not None else math.nan,
        "censored": bool(stop is not None and stop["best_at_edge"]),
        "recovers_at": after[0] if after else math.nan,
        "threshold": cells["threshold"].iloc[0],
    }


@dataclass(frozen=True)
class Verdict:
    """``outcome``: ``longer`` (``leader`` keeps a good band to larger batches than every other series), ``same``
    (no series outlasts the others) or ``inconclusive`` (``reason`` says why); ``order``: series, longest first."""

    outcome: str
    leader: str | None
    order: list[str]
    reason: str = ""


def verdict(series: pd.DataFrame) -> Verdict:
    """Which series' band survives to the largest batch size (rules in the module docstring)."""
    if series.empty:
        return Verdict("inconclusive", None, [], "no runs")
    reach = series.set_index("series")["survives_to"].fillna(0)
    order = list(reach.sort_values(ascending=False, kind="stable").index)
    if len(order) < 2:
        return Verdict("inconclusive", None, order, "only one series: nothing to compare")
    top = reach[order[0]]
    tied = [s for s in order if reach[s] == top]
    leader = order[0] if len(tied) == 1 else None
    censored = series[series["censored"] & (series["series"] != leader)]  # a stopped leader stays ahead anyway
    if not censored.empty:
        names = ", ".join(f"{r.series} at B={r.stops_at:g}" for r in censored.itertuples())
        return Verdict("inconclusive", None, order, f"the best rate where {names} stopped is at the edge of the rates "
                       "tried, so a rate outside the grid may still be good: widen the lr grid")
    if top == 0:
        return Verdict("inconclusive", None, order, "no series reaches the bar at its smallest batch size")
    recovered = series[series["recovers_at"].notna() & (series["series"] != leader)]
    if leader is not None:
        recovered = recovered[recovered["recovers_at"] > reach[leader]]  # could outlast the leader
    if not recovered.empty:
        names = ", ".join(f"{r.series} (none at B={r.stops_at:g}, good again at B={r.recovers_at:g})"
                          for r in recovered.itertuples())
        return Verdict("inconclusive", None, order, f"a good rate reappears after the band vanished for {names}: "
                       "the lr grid is too coarse or the runs too noisy to place the edge; refine the lr grid")
    if leader is not None:
        return Verdict("longer", leader, order)
    if series.set_index("series").loc[tied, "stops_at"].isna().any():
        return Verdict("inconclusive", None, order, f"{' and '.join(tied)} keep a good band up to the same batch size, "
                       "the largest tried: extend the batch range")
    return Verdict("same", None, order)
