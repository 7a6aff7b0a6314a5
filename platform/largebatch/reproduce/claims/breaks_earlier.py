"""``breaks_earlier``: each of some series breaks (falls more than ``tolerance`` below its smallest-batch value, or
diverges) at a smaller batch than a reference series, compared on the batch sizes both ran (LAMB,
arXiv:1904.00962: AdamW and LARS fail at batches where LAMB still holds)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from largebatch.reproduce.claims.base import ClaimBase, tolerance_text
from largebatch.reproduce.claims.course import Course, course
from largebatch.reproduce.rules import FAILS, HOLDS, INCONCLUSIVE, Evidence, Verdict, common_batches


class BreaksEarlier(ClaimBase):
    rule: Literal["breaks_earlier"]
    test: ClassVar[str] = "one-sided Welch t per batch (breaks: Bonferroni over the larger batches)"
    numbers_kind: ClassVar[str] = "batch_cells"

    series: list[str] = Field(min_length=1)
    than: str
    tolerance: float = Field(gt=0)

    def series_ids(self) -> list[str]:
        return [*self.series, self.than]

    def statement(self, unit: str) -> str:
        return (f"holds if each of {', '.join(self.series)} decisively breaks (drop above "
                f"{tolerance_text(self.tolerance, unit)}, or diverges) at a batch where {self.than}'s drop is "
                "decisively below it at that batch and every smaller one; does not hold if one of them is decisively "
                f"unbroken up to where {self.than} breaks (or everywhere, when neither breaks)")

    def _one(self, series: str, evidence: Evidence) -> tuple[str, str]:
        shared = common_batches(evidence.cells, [series, self.than])
        pair = [course(evidence, s, shared) for s in (series, self.than)]
        for c in pair:
            if isinstance(c, str):
                return INCONCLUSIVE, c if shared else f"{series} and {self.than} share no batch size"
        ours, ref = pair
        assert isinstance(ours, Course) and isinstance(ref, Course)
        family, level, tol = evidence.family(len(ours.steps)), evidence.confidence, self.tolerance
        broken = ours.first_break(tol, family)
        if broken is not None:
            before = [s for s in ref.steps if s.batch <= broken.batch]
            if all(s.below(tol, level) for s in before):
                return HOLDS, f"{series} breaks at {broken.describe(family)}, {self.than} holds to {broken.batch}"
        theirs = ref.first_break(tol, evidence.family(len(ref.steps)))
        upto = [s for s in ours.steps if theirs is None or s.batch < theirs.batch]
        if (theirs is not None or all(s.below(tol, level) for s in ref.steps)) and all(
                s.below(tol, level) for s in upto):
            where = f"breaks at {theirs.batch}" if theirs else "never breaks"
            return FAILS, f"{series} does not break before {self.than}, which {where}"
        listed = "; ".join(s.describe(level) for s in (*ours.steps, *ref.steps))
        return INCONCLUSIVE, f"{series} vs {self.than} undecided: {listed}"

    def judge(self, evidence: Evidence) -> Verdict:
        results = {s: self._one(s, evidence) for s in self.series}
        detail = "; ".join(text for _, text in results.values())
        outcomes = {outcome for outcome, _ in results.values()}
        if FAILS in outcomes:
            return Verdict(FAILS, detail)
        return Verdict(HOLDS if outcomes == {HOLDS} else INCONCLUSIVE, detail)


RULE = BreaksEarlier
