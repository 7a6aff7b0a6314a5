"""``matches``: the best of some tuned standard optimizers is within ``tolerance`` of a target (Nado et al. 2021,
arXiv:2102.06356: tuned momentum / Adam match LARS / LAMB), at the largest batch all of them ran."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from largebatch.reproduce.claims.base import ClaimBase, tolerance_text
from largebatch.reproduce.claims.pairs import at_largest_common, gap
from largebatch.reproduce.rules import FAILS, HOLDS, INCONCLUSIVE, Evidence, Verdict, all_diverged, did_not_learn


class Matches(ClaimBase):
    rule: Literal["matches"]
    test: ClassVar[str] = "one-sided Welch t non-inferiority per baseline, Bonferroni over the baselines"
    numbers_kind: ClassVar[str] = "batch_cells"

    series: list[str] = Field(min_length=1)
    target: str
    tolerance: float = Field(ge=0)

    def series_ids(self) -> list[str]:
        return [*self.series, self.target]

    def statement(self, unit: str) -> str:
        return (f"holds if, at the largest batch all ran, one of {', '.join(self.series)} is decisively no more than "
                f"{tolerance_text(self.tolerance, unit)} below {self.target} (lower bound of the gap); does not hold "
                "if every one is decisively further below (or diverged)")

    def judge(self, evidence: Evidence) -> Verdict:
        found = at_largest_common(evidence, [*self.series, self.target])
        if isinstance(found, str):
            return Verdict(INCONCLUSIVE, found)
        batch, rows = found
        target = rows[self.target]
        if all_diverged(target):
            return Verdict(INCONCLUSIVE, f"{self.target} diverged in every seed at {batch}: nothing to match")
        problem = did_not_learn(target, evidence)
        if problem:
            return Verdict(INCONCLUSIVE, problem)
        level, tol, family = evidence.confidence, self.tolerance, evidence.family(len(self.series))
        gaps = {s: gap(rows[s], target) for s in self.series}
        listed = ", ".join(f"{s} − {self.target} {g.describe(family)}" for s, g in gaps.items())
        matched = [s for s, g in gaps.items() if g.not_behind(tol, family)]
        if matched:
            return Verdict(HOLDS, f"at {batch}: {', '.join(matched)} within {tol:g}; {listed}")
        if all(g.behind(tol, level) for g in gaps.values()):
            return Verdict(FAILS, f"at {batch}: every baseline further below than {tol:g}; {listed}")
        return Verdict(INCONCLUSIVE, f"at {batch}: undecided; {listed}")


RULE = Matches
