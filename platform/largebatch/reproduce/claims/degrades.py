"""``degrades``: a series falls more than ``tolerance`` below its smallest-batch value (or diverges) at some larger
batch (LARS, arXiv:1708.03888, Sec. 3: AlexNet without BN loses accuracy as the batch grows)."""

from __future__ import annotations

from typing import ClassVar, Literal

from largebatch.reproduce.claims.base import OneSeriesClaim, tolerance_text
from largebatch.reproduce.claims.course import first_break
from largebatch.reproduce.rules import FAILS, HOLDS, INCONCLUSIVE, Evidence, Verdict


class Degrades(OneSeriesClaim):
    rule: Literal["degrades"]
    test: ClassVar[str] = "one-sided Welch t per larger batch, Bonferroni over them"

    def statement(self, unit: str) -> str:
        return (f"holds if at some larger batch {self.series}'s drop below its smallest-batch value is above "
                f"{tolerance_text(self.tolerance, unit)} (or every seed diverged); does not hold if at every larger "
                "batch the drop is below it")

    def judge(self, evidence: Evidence) -> Verdict:
        found = first_break(evidence, self.series, self.tolerance)
        if isinstance(found, Verdict):
            return found
        c = found.course
        if found.step is not None:
            return Verdict(HOLDS, f"{self.series} breaks at {found.step.describe(found.family)}")
        listed = "; ".join(s.describe(evidence.confidence) for s in c.steps)
        if all(s.below(self.tolerance, evidence.confidence) for s in c.steps):
            return Verdict(FAILS, f"{self.series} falls less than {self.tolerance:g} at every batch over "
                                  f"{c.span()}: {listed}")
        return Verdict(INCONCLUSIVE, f"no batch decisively breaks, not every drop is decisively small: {listed}")


RULE = Degrades
