"""Layer-ratio claims (LARS, arXiv:1708.03888, Table 1): a statistic computed per seed, tested against a threshold
with a one-sample t over the seeds (one-sided, at the evidence's confidence)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from largebatch.reproduce.claims.base import ClaimBase
from largebatch.reproduce.rules import FAILS, HOLDS, INCONCLUSIVE, MIN_SEEDS, Evidence, Verdict, one_sample



class SeedStatisticClaim(ClaimBase):
    """A layer-ratio claim: a statistic per seed against a threshold."""

    test: ClassVar[str] = "one-sided one-sample t over seeds"
    numbers_kind: ClassVar[str] = "layer_ratios"


class DecadesClaim(SeedStatisticClaim):
    """A layer-ratio claim whose threshold is a number of decades."""

    min_decades: float = Field(1.0, gt=0)


def per_seed(ratios: pd.DataFrame, epoch: float, kind: str | None = None) -> dict[int, pd.DataFrame]:
    """Finite positive ratios at ``epoch`` (of ``kind`` only, when given), by seed."""
    at = ratios[(ratios["epoch"] == epoch) & np.isfinite(ratios["ratio"]) & (ratios["ratio"] > 0)]
    if kind is not None:
        at = at[at["kind"] == kind]
    return {int(seed): rows for seed, rows in at.groupby("seed")}


def listing(values: dict[int, float]) -> str:
    return ", ".join(f"seed {s}: {v:.3g}" for s, v in sorted(values.items()))


def against(values: dict[int, float], threshold: float, evidence: Evidence, what: str) -> Verdict:
    """Holds if the seeds' mean of ``values`` is decisively above ``threshold``, does not hold if decisively below."""
    listed = f"{what} {listing(values)}"
    if len(values) < MIN_SEEDS:
        return Verdict(INCONCLUSIVE, f"{len(values)} seed(s); the test needs ≥ {MIN_SEEDS}: {listed}")
    estimate = one_sample(list(values.values()), threshold)
    detail = f"{listed}; mean − {threshold:g} = {estimate.interval(evidence.confidence)}"
    if estimate.lower(evidence.confidence) > 0:
        return Verdict(HOLDS, detail)
    if estimate.upper(evidence.confidence) < 0:
        return Verdict(FAILS, detail)
    return Verdict(INCONCLUSIVE, detail)
