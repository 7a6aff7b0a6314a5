"""``smaller_drop``: at the largest batch two series both ran, one loses at least ``margin`` less than the other,
each against its value at their smallest common batch (LARS, arXiv:1708.03888, Sec. 3: BN shrinks the gap)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from largebatch.reproduce.claims.base import ClaimBase, tolerance_text
from largebatch.reproduce.claims.course import course
from largebatch.reproduce.rules import FAILS, HOLDS, INCONCLUSIVE, Evidence, Verdict, common_batches, contrast


class SmallerDrop(ClaimBase):
    rule: Literal["smaller_drop"]
    test: ClassVar[str] = "one-sided Welch t on the difference of drops (four cells' spreads)"
    numbers_kind: ClassVar[str] = "batch_cells"

    series: str
    than: str
    margin: float = Field(0.0, ge=0)

    def series_ids(self) -> list[str]:
        return [self.series, self.than]

    def statement(self, unit: str) -> str:
        return (f"holds if, at the largest batch both ran, {self.series}'s drop (against their smallest common batch) "
                f"is smaller than {self.than}'s by more than {tolerance_text(self.margin, unit)} (lower bound); does "
                "not hold if the upper bound is below that margin")

    def judge(self, evidence: Evidence) -> Verdict:
        shared = common_batches(evidence.cells, [self.series, self.than])
        courses = [course(evidence, s, shared) for s in (self.series, self.than)]
        for c in courses:
            if isinstance(c, str):
                return Verdict(INCONCLUSIVE, c if shared else f"{self.series} and {self.than} share no batch size")
        ours, theirs = (c.steps[-1] for c in courses)  # type: ignore[union-attr]
        at = f"{ours.describe(evidence.confidence)} vs {theirs.describe(evidence.confidence)}"
        if ours.diverged or theirs.diverged:
            if ours.diverged and theirs.diverged:
                return Verdict(INCONCLUSIVE, f"both diverged at {ours.batch}")
            if ours.diverged:
                return Verdict(FAILS, f"{self.series} diverged, {self.than} did not: {at}")
            if ours.drop is not None:
                return Verdict(HOLDS, f"{self.than} diverged, {self.series} did not: {at}")
        if ours.drop is None or theirs.drop is None:
            return Verdict(INCONCLUSIVE, ours.problem or theirs.problem or at)
        mine, other = courses[0].reference, courses[1].reference  # type: ignore[union-attr]
        gain = contrast([(1.0, other), (-1.0, theirs.row), (-1.0, mine), (1.0, ours.row)])  # their drop − ours
        detail = (f"at {ours.batch}: {self.than} drops more by {gain.interval(evidence.confidence)} "
                  f"({self.series} {ours.drop.value:.3g}, {self.than} {theirs.drop.value:.3g})")
        if gain.lower(evidence.confidence) > self.margin:
            return Verdict(HOLDS, detail)
        if gain.upper(evidence.confidence) < self.margin:
            return Verdict(FAILS, detail)
        return Verdict(INCONCLUSIVE, f"{detail}: the interval contains the margin {self.margin:g}")


RULE = SmallerDrop
