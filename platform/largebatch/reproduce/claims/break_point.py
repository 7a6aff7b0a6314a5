"""``break_point``: a series is flat over at least a ``min_flat``× range of batch sizes, then breaks; the break
point is the first batch that breaks (Goyal et al., arXiv:1706.02677, Figure 1: flat to 8k, then rising)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from largebatch.reproduce.claims.base import OneSeriesClaim, tolerance_text
from largebatch.reproduce.claims.course import first_break
from largebatch.reproduce.rules import FAILS, HOLDS, INCONCLUSIVE, Evidence, Verdict


class BreakPoint(OneSeriesClaim):
    rule: Literal["break_point"]
    test: ClassVar[str] = "TOST per batch (flat), one-sided Welch t, Bonferroni over the larger batches (break)"

    min_flat: float = Field(4.0, ge=1)

    def statement(self, unit: str) -> str:
        return (f"holds if {self.series}'s drop below its smallest-batch value lies inside "
                f"±{tolerance_text(self.tolerance, unit)} at every batch up to at least {self.min_flat:g}× the "
                "smallest, then decisively exceeds it (or diverges); does not hold if it decisively breaks before "
                f"{self.min_flat:g}×")

    def judge(self, evidence: Evidence) -> Verdict:
        found = first_break(evidence, self.series, self.tolerance)
        if isinstance(found, Verdict):
            return found
        c, family, broken = found.course, found.family, found.step
        level, tol = evidence.confidence, self.tolerance
        reach = c.reference_batch * self.min_flat
        early = next((s for s in c.steps if s.batch < reach and s.breaks(tol, family)), None)
        if early is not None:
            return Verdict(FAILS, f"break point {early.describe(family)}, before {self.min_flat:g}× "
                                  f"({c.reference_batch}–{reach:g})")
        before = [s for s in c.steps if broken is None or s.batch < broken.batch]
        open_ = [s for s in before if not s.flat(tol, level)]
        if open_:
            return Verdict(INCONCLUSIVE, "; ".join(s.problem or f"{s.describe(level)} is not inside ±{tol:g}"
                                                   for s in open_))
        if broken is None:
            return Verdict(INCONCLUSIVE, f"flat over the whole tested range {c.span()}, no break; extend the range")
        last_flat = before[-1].batch if before else c.reference_batch
        detail = (f"flat {c.reference_batch}–{last_flat} ({last_flat / c.reference_batch:g}×), "
                  f"break point {broken.describe(family)}")
        if last_flat < reach:
            return Verdict(INCONCLUSIVE, f"{detail}: no batch between them decides the {self.min_flat:g}× range")
        return Verdict(HOLDS, detail)


RULE = BreakPoint
