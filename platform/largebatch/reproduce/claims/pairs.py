"""Series compared pairwise at one batch size, the largest that all of them ran (never each at its own largest):
the gap ``a − b`` in score as a Welch estimate, or decided by divergence where one side diverged in every seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from largebatch.reproduce.rules import Estimate, Evidence, all_diverged, common_batches, contrast, name, series_cells
from largebatch.reproduce.rules import testable


def at_largest_common(evidence: Evidence, series: Sequence[str]) -> tuple[int, dict[str, pd.Series]] | str:
    """The largest batch every one of ``series`` ran and their cells there, or why there is none."""
    missing = [s for s in series if series_cells(evidence.cells, s).empty]
    if missing:
        return f"too few finished trials: none for {', '.join(missing)}"
    shared = common_batches(evidence.cells, series)
    if not shared:
        return f"no batch size that all of {', '.join(series)} ran"
    batch = shared[-1]
    return batch, {s: series_cells(evidence.cells, s, [batch]).iloc[0] for s in series}


@dataclass(frozen=True)
class Gap:
    """``a − b``: ``estimate`` (Welch), or ``winner`` +1 / −1 when only b / only a diverged in every seed;
    ``problem`` when it cannot be tested (both diverged, partial divergence, too few seeds)."""

    estimate: Estimate | None
    winner: int
    problem: str | None

    def ahead(self, tolerance: float, confidence: float) -> bool:
        """a is better than b by more than ``tolerance`` (lower bound), or b alone diverged."""
        return self.winner == 1 or (self.estimate is not None and self.estimate.lower(confidence) > tolerance)

    def behind(self, tolerance: float, confidence: float) -> bool:
        """a is worse than b by more than ``tolerance`` (upper bound), or a alone diverged."""
        return self.winner == -1 or (self.estimate is not None and self.estimate.upper(confidence) < -tolerance)

    def not_behind(self, tolerance: float, confidence: float) -> bool:
        """a is not worse than b by ``tolerance`` or more (non-inferiority: lower bound above −tolerance)."""
        return self.winner == 1 or (self.estimate is not None and self.estimate.lower(confidence) > -tolerance)

    def describe(self, confidence: float) -> str:
        if self.estimate is not None:
            return self.estimate.interval(confidence)
        return self.problem or ("the other diverged" if self.winner == 1 else "diverged")


def gap(a: pd.Series, b: pd.Series) -> Gap:
    """The gap between two cells of the cells table."""
    if all_diverged(a) and all_diverged(b):
        return Gap(None, 0, f"{name(a)} and {name(b)} both diverged")
    for row in (a, b):
        problem = None if all_diverged(row) else testable(row)
        if problem:
            return Gap(None, 0, problem)
    if all_diverged(a) or all_diverged(b):
        return Gap(None, -1 if all_diverged(a) else 1, None)
    return Gap(contrast([(1.0, a), (-1.0, b)]), 0, None)
