"""``stays_within``: a series stays within ``tolerance`` of its smallest-batch value at every larger batch, none
diverging (LARS keeps accuracy, arXiv:1708.03888 Sec. 4–5; LAMB's flat F1, arXiv:1904.00962 Table 1)."""

from __future__ import annotations

from typing import ClassVar, Literal

from largebatch.reproduce.claims.base import OneSeriesClaim, tolerance_text
from largebatch.reproduce.claims.course import first_break
from largebatch.reproduce.rules import FAILS, HOLDS, INCONCLUSIVE, Evidence, Verdict


class StaysWithin(OneSeriesClaim):
    rule: Literal["stays_within"]
    test: ClassVar[str] = "equivalence test (TOST, two one-sided Welch t) per larger batch"

    def statement(self, unit: str) -> str:
        return (f"holds if at every batch size the confidence interval of {self.series}'s drop below its "
                f"smallest-batch value lies inside ±{tolerance_text(self.tolerance, unit)}, no seed diverging; does "
                "not hold if some batch decisively falls beyond it or diverges in every seed (Bonferroni)")

    def judge(self, evidence: Evidence) -> Verdict:
        found = first_break(evidence, self.series, self.tolerance)
        if isinstance(found, Verdict):
            return found
        steps, level, tol = found.course.steps, evidence.confidence, self.tolerance
        open_ = [s for s in steps if not s.flat(tol, level)]
        if not open_:  # every interval inside ±tol: none can break
            worst = max(steps, key=lambda s: abs(s.drop.value) if s.drop else 0.0)
            return Verdict(HOLDS, f"{self.series} stays within ±{tol:g} over {found.course.span()}; largest drop at "
                                  f"{worst.describe(level)}")
        if found.step is not None:
            return Verdict(FAILS, f"{self.series} breaks at {found.step.describe(found.family)}")
        return Verdict(INCONCLUSIVE, "; ".join(s.problem or f"{s.describe(level)} is not inside ±{tol:g}"
                                               for s in open_))

RULE = StaysWithin
