"""The base of every claim rule: its schema (a pydantic model whose ``rule`` literal names it), the statistical test
it runs (``test``, printed with the confidence level), the numbers it reads (``numbers_kind``), its wording
(:meth:`ClaimBase.statement`) and its verdict (:meth:`ClaimBase.judge`). A rule missing any of these is refused
when the registry (:mod:`largebatch.reproduce.claims`) is built, i.e. at import."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from largebatch.reproduce.rules import Evidence, Verdict, percent

NumbersKind = Literal["batch_cells", "layer_ratios"]
NUMBERS_KINDS: tuple[str, ...] = ("batch_cells", "layer_ratios")


class ClaimBase(BaseModel):
    """One claim of a table spec: ``id``, the claim in words, the published values it refers to, and the rule's
    own parameters (declared by each rule's subclass)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    test: ClassVar[str] = ""
    numbers_kind: ClassVar[str] = ""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    claim: str
    published: list[str] = Field(default_factory=list, description="ids of the table's published values")

    def series_ids(self) -> list[str]:
        """The series this claim compares (checked against the spec's series ids)."""
        return []

    @abstractmethod
    def statement(self, unit: str) -> str:
        """When the claim holds, in words (``unit``: ``points`` for accuracies shown in percent, else ``raw``)."""

    @abstractmethod
    def judge(self, evidence: Evidence) -> Verdict:
        """The verdict: holds, does not hold, or inconclusive with the reason."""

    def wording(self, unit: str, confidence: float) -> str:
        """The rule column: the named test at its confidence level, then when the claim holds."""
        return f"{self.test} at {percent(confidence)}: {self.statement(unit)}"


def tolerance_text(value: float, unit: str) -> str:
    return f"{value:g} ({value * 100:g} %-points)" if unit == "points" else f"{value:g}"


class OneSeriesClaim(ClaimBase):
    """A claim about one series against its own smallest-batch value, within ``tolerance``."""

    numbers_kind: ClassVar[str] = "batch_cells"

    series: str
    tolerance: float = Field(gt=0)

    def series_ids(self) -> list[str]:
        return [self.series]
