"""``ratio_spread``: at init ‖w‖/‖∇w‖ spans orders of magnitude across the weight tensors, as LARS (arXiv:1708.03888,
Table 1) compares conv1.w with fc6.w; the biases' spread is reported separately."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from largebatch.reproduce.claims.seeds import DecadesClaim, against, listing, per_seed
from largebatch.reproduce.rules import INCONCLUSIVE, Evidence, Verdict


def decades(rows: pd.DataFrame) -> float:
    return float(np.log10(rows["ratio"].max() / rows["ratio"].min()))


class RatioSpread(DecadesClaim):
    rule: Literal["ratio_spread"]

    def statement(self, unit: str) -> str:
        return (f"holds if at init ‖w‖/‖∇w‖ spans more than {self.min_decades:g} decade(s) across the weight tensors "
                "(mean over seeds, lower bound); biases are reported apart")

    def judge(self, evidence: Evidence) -> Verdict:
        weights = {s: decades(r) for s, r in per_seed(evidence.ratios, 0.0, "weight").items() if len(r) >= 2}
        if not weights:
            return Verdict(INCONCLUSIVE, "no layer telemetry at init with two or more finite weight ratios")
        verdict = against(weights, self.min_decades, evidence, "decades across weights:")
        biases = {s: decades(r) for s, r in per_seed(evidence.ratios, 0.0, "bias").items() if len(r) >= 2}
        extra = f"; across biases (not tested): {listing(biases)}" if biases else ""
        return Verdict(verdict.outcome, verdict.detail + extra)


RULE = RatioSpread
