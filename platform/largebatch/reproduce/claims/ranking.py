"""``ranking``: series ranked as published (best first) at the largest batch all of them ran (LAMB,
arXiv:1904.00962, ImageNet optimizer comparison at 16K)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from largebatch.reproduce.claims.base import ClaimBase, tolerance_text
from largebatch.reproduce.claims.pairs import at_largest_common, gap
from largebatch.reproduce.rules import FAILS, HOLDS, INCONCLUSIVE, Evidence, Verdict, did_not_learn


class Ranking(ClaimBase):
    rule: Literal["ranking"]
    test: ClassVar[str] = "one-sided Welch t per consecutive pair (reversals: Bonferroni over all pairs)"
    numbers_kind: ClassVar[str] = "batch_cells"

    order: list[str] = Field(min_length=2, description="series ids, best first")
    tolerance: float = Field(ge=0)

    def series_ids(self) -> list[str]:
        return list(self.order)

    def statement(self, unit: str) -> str:
        return (f"holds if, at the largest batch all ran, every consecutive pair of {' > '.join(self.order)} is "
                f"ordered as published by more than {tolerance_text(self.tolerance, unit)} (lower bound; a series "
                "that diverged in every seed ranks below one that did not); does not hold if some pair is decisively "
                "reversed; otherwise the partial order found is printed")

    def judge(self, evidence: Evidence) -> Verdict:
        found = at_largest_common(evidence, self.order)
        if isinstance(found, str):
            return Verdict(INCONCLUSIVE, found)
        batch, rows = found
        problems = [did_not_learn(rows[s], evidence) for s in self.order]
        if all(problems):
            return Verdict(INCONCLUSIVE, f"at {batch} none of them learned: {problems[0]}")
        level, tol = evidence.confidence, self.tolerance
        pairs = [(a, b) for i, a in enumerate(self.order) for b in self.order[i + 1:]]
        family = evidence.family(len(pairs))
        reversed_ = [f"{b} > {a} ({gap(rows[b], rows[a]).describe(family)})" for a, b in pairs
                     if gap(rows[a], rows[b]).behind(tol, family)]
        if reversed_:
            return Verdict(FAILS, f"at {batch}, reversed: {'; '.join(reversed_)}")
        steps, decided = [], []
        for a, b in zip(self.order, self.order[1:]):
            g = gap(rows[a], rows[b])
            decided.append(g.ahead(tol, level))
            steps.append(f"{a} {'>' if decided[-1] else '?'} {b} ({g.describe(level)})")
        detail = f"at {batch}: " + ", ".join(steps)
        if all(decided):
            return Verdict(HOLDS, detail)
        return Verdict(INCONCLUSIVE, f"{detail}; partial order found, ? = undecided")

RULE = Ranking
