"""``stays_within``: a series stays within ``tolerance`` of its smallest-batch value at every larger batch, none
diverging (LARS keeps accuracy, arXiv:1708.03888 Sec. 4–5; LAMB's flat F1, arXiv:1904.00962 Table 1)."""

from __future__ import annotations

from typing import ClassVar, Literal

from largebatch.reproduce.claims.base import OneSeriesClaim, tolerance_text
from largebatch.reproduce.claims.course import course
from largebatch.reproduce.rules import FAILS, HOLDS, INCONCLUSIVE, Evidence, Verdict


class StaysWithin(OneSeriesClaim):
    rule: Literal["stays_within"]
    test: ClassVar[str] = "equivalence test (TOST, two one-sided Welch t) per larger batch"

    def statement(self, unit: str) -> str:
        return (f"holds if at every batch size the confidence interval of {self.series}'s drop below its "
                f"smallest-batch value lies inside ±{tolerance_text(self.tolerance, unit)}, no seed diverging; does "
                "not hold if some batch decisively falls beyond it or diverges in every seed (Bonferroni)")

    def judge(self, evidence: Evidence) -> Verdict:
        c = course(evidence, self.series)
        if isinstance(c, str):
            return Verdict(INCONCLUSIVE, c)
        family = evidence.family(len(c.steps))
        broken = c.first_break(self.tolerance, family)
        if broken is not None:
            return Verdict(FAILS, f"{self.series} breaks at {broken.describe(family)}")
        open_ = [s for s in c.steps if not s.flat(self.tolerance, evidence.confidence)]
        if not open_:
            worst = max(c.steps, key=lambda s: abs(s.drop.value) if s.drop else 0.0)
            return Verdict(HOLDS, f"{self.series} stays within ±{self.tolerance:g} over {c.span()}; largest drop at "
                                  f"{worst.describe(evidence.confidence)}")
        reasons = "; ".join(s.problem or f"{s.describe(evidence.confidence)} is not inside ±{self.tolerance:g}"
                            for s in open_)
        return Verdict(INCONCLUSIVE, reasons)


RULE = StaysWithin
