"""What every verdict rule shares: the outcomes, the statistics (scipy's Student t over the seeds of each cell) and
the preconditions under which no test is run. Nothing here reads files; the tables come from
:mod:`largebatch.reproduce.numbers`, and each claim rule (its schema, its test, its wording) lives in its own module
of :mod:`largebatch.reproduce.claims`.

*Cells* (batch-size tables): one row per ``series`` × ``batch_size`` with ``mean`` and ``std`` (over seeds, of
the metric as reported), ``score`` (the mean signed so that higher is better), ``seeds`` (seeds with a value),
``seeds_run`` (seeds with a finished trial), ``seeds_diverged`` (seeds whose every trial diverged), ``trials`` and
``diverged`` (finished trials, and how many of them diverged) and ``loss_fell`` (seeds whose chosen trial ended
with a training loss below its first recorded one).

Every comparison of cells is a difference of cell means, tested with Welch's t (the standard error and the
Welch–Satterthwaite degrees of freedom from each cell's seed spread; scipy's Student t quantiles). A bound at
``confidence`` is one-sided; "within a tolerance" is an equivalence test (TOST: both one-sided bounds inside the
tolerance). A claim that needs *some* cell to pass splits its error rate over the cells it tries (Bonferroni); a
claim that needs *every* cell to pass tests each at the full level (an intersection–union test needs no
correction).

*Ratios* (layer tables, LARS Table 1): one row per ``seed`` × ``layer`` × ``epoch`` (0 = init) with ``kind``
(``weight`` or ``bias``) and ``ratio`` = ‖w‖/‖∇w‖. Their rules test a per-seed statistic against a threshold with
a one-sample t over the seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from scipy import stats

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
NOT_EVIDENCE = "smoke: not evidence"
MIN_SEEDS = 2  # a t test needs a spread: one seed never pretends its spread is 0


@dataclass(frozen=True)
class Verdict:
    outcome: str
    detail: str

    def text(self) -> str:
        return f"**{self.outcome}**: {self.detail}"

    def not_evidence(self) -> Verdict:
        """The verdict of a smoke run: it tests the code path, never the claim (the statistic is kept)."""
        return Verdict(NOT_EVIDENCE, f"a smoke profile checks that the table runs; its statistic: {self.detail}")


@dataclass(frozen=True)
class Evidence:
    """What a claim is judged on: the batch-size cells or the layer ratios, the confidence level of every test, and
    the metric's chance level (None where the table states none)."""

    cells: pd.DataFrame
    ratios: pd.DataFrame
    confidence: float
    chance: float | None = None

    def family(self, tries: int) -> float:
        """The per-test confidence when a claim needs one of ``tries`` tests to pass (Bonferroni)."""
        return 1.0 - (1.0 - self.confidence) / max(tries, 1)


def percent(confidence: float) -> str:
    return f"{100 * confidence:g}%"


# --- statistics ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """A difference of means with its standard error and degrees of freedom (Welch–Satterthwaite)."""

    value: float
    se: float
    df: float

    def lower(self, confidence: float) -> float:
        """One-sided lower confidence bound."""
        return self.value - self._margin(confidence)

    def upper(self, confidence: float) -> float:
        """One-sided upper confidence bound."""
        return self.value + self._margin(confidence)

    def _margin(self, confidence: float) -> float:
        return 0.0 if self.se == 0 else float(stats.t.ppf(confidence, self.df)) * self.se

    def interval(self, confidence: float) -> str:
        """``0.031 [0.012, 0.05]``: the estimate and both one-sided bounds at ``confidence``."""
        return f"{self.value:.3g} [{self.lower(confidence):.3g}, {self.upper(confidence):.3g}]"


def contrast(terms: Sequence[tuple[float, pd.Series]]) -> Estimate:
    """Σ coefficient × score over cells (rows of the cells table with at least two seeds), Welch's standard error
    √Σ c²s²/n and Welch–Satterthwaite degrees of freedom."""
    parts = [(c * c * float(row["std"]) ** 2 / int(row["seeds"]), int(row["seeds"]) - 1) for c, row in terms]
    variance = sum(v for v, _ in parts)
    value = sum(c * float(row["score"]) for c, row in terms)
    if variance == 0:
        return Estimate(value, 0.0, math.inf)
    return Estimate(value, math.sqrt(variance), variance**2 / sum(v * v / dof for v, dof in parts))


def one_sample(values: Sequence[float], threshold: float) -> Estimate:
    """Mean of ``values`` − ``threshold`` with the one-sample t standard error (at least two values)."""
    series = pd.Series(list(values), dtype=float)
    return Estimate(float(series.mean()) - threshold, float(series.std()) / math.sqrt(len(series)), len(series) - 1)


# --- cells and preconditions ------------------------------------------------------------------------------------

def series_cells(cells: pd.DataFrame, series: str, batches: Sequence[int] | None = None) -> pd.DataFrame:
    """The cells of one series with finished trials, by batch size (only ``batches`` when given)."""
    rows = cells[(cells["series"] == series) & (cells["trials"] > 0)]
    if batches is not None:
        rows = rows[rows["batch_size"].isin(list(batches))]
    return rows.sort_values("batch_size").reset_index(drop=True)


def common_batches(cells: pd.DataFrame, series: Sequence[str]) -> list[int]:
    """The batch sizes every one of ``series`` ran (comparisons happen only there)."""
    sets = [set(series_cells(cells, s)["batch_size"].astype(int)) for s in series]
    return sorted(set.intersection(*sets)) if sets else []


def name(row: pd.Series) -> str:
    return f"{row['series']} at {int(row['batch_size'])}"


def all_diverged(row: pd.Series) -> bool:
    """Every seed of the cell diverged (divergence is a result)."""
    return bool(row["seeds_run"] > 0 and row["seeds_diverged"] >= row["seeds_run"])


def partly_diverged(row: pd.Series) -> str | None:
    """``'lars at 512: 1/2 seeds diverged'`` when some but not all seeds diverged, else None."""
    if 0 < row["seeds_diverged"] < row["seeds_run"]:
        return f"{name(row)}: {int(row['seeds_diverged'])}/{int(row['seeds_run'])} seeds diverged"
    return None


def too_few_seeds(row: pd.Series) -> str | None:
    """Why a cell cannot enter a t test (fewer than two seeds with a value), else None."""
    if row["seeds"] < MIN_SEEDS:
        return f"{name(row)} has {int(row['seeds'])} seed(s) with a value; the test needs ≥ {MIN_SEEDS}"
    return None


def testable(row: pd.Series) -> str | None:
    """Why a cell that did not diverge entirely cannot be compared (partial divergence, too few seeds)."""
    return partly_diverged(row) or too_few_seeds(row)


def did_not_learn(row: pd.Series, evidence: Evidence) -> str | None:
    """Why the reference cell ``row`` shows no learning, else None: it must not have diverged, its training loss
    must have fallen below its first recorded value in every seed, and (where the table states a chance level) its
    mean must be above chance by a one-sided one-sample t at the evidence's confidence."""
    if all_diverged(row):
        return f"the reference {name(row)} diverged in every seed"
    problem = testable(row)
    if problem:
        return f"the reference {problem}"
    if row["loss_fell"] < row["seeds"]:
        return (f"the reference {name(row)} did not learn: its training loss did not fall below its first recorded "
                f"value in {int(row['seeds'] - row['loss_fell'])}/{int(row['seeds'])} seed(s)")
    if evidence.chance is not None:
        above = Estimate(float(row["mean"]) - evidence.chance, float(row["std"]) / math.sqrt(row["seeds"]),
                         int(row["seeds"]) - 1)
        if above.lower(evidence.confidence) <= 0:
            return (f"the reference {name(row)} did not learn: {float(row['mean']):.3g} is not above chance "
                    f"{evidence.chance:g} at {percent(evidence.confidence)} (one-sided t, bound "
                    f"{above.lower(evidence.confidence) + evidence.chance:.3g})")
    return None
