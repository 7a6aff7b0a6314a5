"""``ratio_falls``: the median weight-layer ‖w‖/‖∇w‖ is high at first and falls in the first epochs (LARS,
arXiv:1708.03888, Sec. 3). Tested on log10 of the fall, since ratios multiply."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from largebatch.reproduce.claims.seeds import SeedStatisticClaim, against, per_seed
from largebatch.reproduce.rules import INCONCLUSIVE, Evidence, Verdict


class RatioFalls(SeedStatisticClaim):
    rule: Literal["ratio_falls"]
    epoch: float = Field(gt=0)
    factor: float = Field(2.0, gt=1)

    def statement(self, unit: str) -> str:
        return (f"holds if the median ‖w‖/‖∇w‖ over weight layers falls more than {self.factor:g}× from init to "
                f"epoch {self.epoch:g} (mean of log10 over seeds, lower bound)")

    def judge(self, evidence: Evidence) -> Verdict:
        start = per_seed(evidence.ratios, 0.0, "weight")
        later = per_seed(evidence.ratios, self.epoch, "weight")
        seeds = sorted(set(start) & set(later))
        if not seeds:
            return Verdict(INCONCLUSIVE, f"no weight-layer ratios both at init and after epoch {self.epoch:g} "
                                         "(too few finished trials, or runs shorter than that)")
        falls = {s: math.log10(start[s]["ratio"].median() / later[s]["ratio"].median()) for s in seeds}
        return against(falls, math.log10(self.factor), evidence, f"log10(init ÷ epoch {self.epoch:g}):")


RULE = RatioFalls
