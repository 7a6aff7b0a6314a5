"""A series' larger batches, each against its reference (the smallest batch it ran): the drop
``reference score − cell score`` as a Welch estimate. Shared by the single-series rules and the rules that compare
two series' drops (on their common batch sizes only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from largebatch.reproduce.rules import INCONCLUSIVE, Estimate, Evidence, Verdict, all_diverged, contrast, did_not_learn
from largebatch.reproduce.rules import series_cells, testable


@dataclass(frozen=True)
class Step:
    """One larger batch of a series: its drop against the reference, or why it has none (every seed diverged:
    ``drop`` and ``problem`` both None; partial divergence or too few seeds: ``problem``)."""

    row: pd.Series
    drop: Estimate | None
    problem: str | None

    @property
    def batch(self) -> int:
        return int(self.row["batch_size"])

    @property
    def diverged(self) -> bool:
        return all_diverged(self.row)

    def breaks(self, tolerance: float, confidence: float) -> bool:
        """Diverged in every seed, or the drop's lower bound is above ``tolerance`` (one-sided Welch t)."""
        return self.diverged or (self.drop is not None and self.drop.lower(confidence) > tolerance)

    def below(self, tolerance: float, confidence: float) -> bool:
        """The drop's upper bound is below ``tolerance`` (it does not fall that far, one-sided Welch t)."""
        return self.drop is not None and self.drop.upper(confidence) < tolerance

    def flat(self, tolerance: float, confidence: float) -> bool:
        """The drop's confidence interval lies inside ±``tolerance`` (equivalence, TOST)."""
        return self.below(tolerance, confidence) and self.drop is not None and self.drop.lower(confidence) > -tolerance

    def describe(self, confidence: float) -> str:
        if self.diverged:
            return f"{self.batch}: diverged ({int(self.row['seeds_diverged'])}/{int(self.row['seeds_run'])} seeds)"
        if self.drop is None:
            return f"{self.problem}"
        return f"{self.batch}: drop {self.drop.interval(confidence)}"


@dataclass(frozen=True)
class Course:
    series: str
    reference: pd.Series
    steps: list[Step]

    @property
    def reference_batch(self) -> int:
        return int(self.reference["batch_size"])

    def span(self) -> str:
        last = self.steps[-1].batch
        return f"{self.reference_batch}–{last} ({last / self.reference_batch:g}×)"

    def first_break(self, tolerance: float, confidence: float) -> Step | None:
        return next((s for s in self.steps if s.breaks(tolerance, confidence)), None)


@dataclass(frozen=True)
class Broken:
    """A course with its first batch that decisively breaks (None if none), tested at ``family``: the per-batch
    confidence when some batch must break (Bonferroni over the larger batches)."""

    course: Course
    family: float
    step: Step | None


def first_break(evidence: Evidence, series: str, tolerance: float) -> Broken | Verdict:
    """The course of ``series`` and its first break, or the inconclusive verdict saying why it cannot be judged
    (see :func:`course`)."""
    c = course(evidence, series)
    if isinstance(c, str):
        return Verdict(INCONCLUSIVE, c)
    family = evidence.family(len(c.steps))
    return Broken(c, family, c.first_break(tolerance, family))


def course(evidence: Evidence, series: str, batches: Sequence[int] | None = None) -> Course | str:
    """The course of ``series`` (over ``batches`` only, when given), or why it cannot be judged: fewer than two
    batch sizes, or a reference that did not learn (see :func:`largebatch.reproduce.rules.did_not_learn`)."""
    rows = series_cells(evidence.cells, series, batches)
    if len(rows) < 2:
        return f"{series}: finished trials at {len(rows)} batch size(s), need 2"
    reference = rows.iloc[0]
    problem = did_not_learn(reference, evidence)
    if problem:
        everywhere = all(all_diverged(r) for _, r in rows.iterrows())
        return problem + (" (diverged everywhere)" if everywhere else "")
    steps = []
    for _, row in rows.iloc[1:].iterrows():
        untestable = None if all_diverged(row) else testable(row)
        drop = None if all_diverged(row) or untestable else contrast([(1.0, reference), (-1.0, row)])
        steps.append(Step(row, drop, untestable))
    return Course(series, reference, steps)
