"""``weight_bias_gap``: in some layer the weight's and the bias's ‖w‖/‖∇w‖ at init differ by orders of magnitude
(LARS, arXiv:1708.03888, Table 1 lists weights and biases apart)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from largebatch.reproduce.claims.seeds import DecadesClaim, against, per_seed
from largebatch.reproduce.rules import INCONCLUSIVE, Evidence, Verdict


class WeightBiasGap(DecadesClaim):
    rule: Literal["weight_bias_gap"]

    def statement(self, unit: str) -> str:
        return (f"holds if at init the largest weight/bias gap of ‖w‖/‖∇w‖ within a layer is more than "
                f"{self.min_decades:g} decade(s) (mean over seeds, lower bound)")

    def judge(self, evidence: Evidence) -> Verdict:
        gaps: dict[int, float] = {}
        for seed, rows in per_seed(evidence.ratios, 0.0).items():
            base = rows.assign(base=rows["layer"].str.rsplit(".", n=1).str[0])
            wide = base.pivot_table(index="base", columns="kind", values="ratio", aggfunc="first")
            if {"weight", "bias"} <= set(wide.columns):
                both = wide.dropna(subset=["weight", "bias"])
                if not both.empty:
                    gaps[seed] = float(np.abs(np.log10(both["weight"] / both["bias"])).max())
        if not gaps:
            return Verdict(INCONCLUSIVE, "no layer with both a weight and a bias ratio at init (a BN model has no "
                                         "biases)")
        return against(gaps, self.min_decades, evidence, "largest weight/bias gap (decades):")


RULE = WeightBiasGap
