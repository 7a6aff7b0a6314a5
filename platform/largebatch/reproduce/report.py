"""A reproduction's result: our numbers, the published numbers, and each claim's verdict, as Markdown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from largebatch.reproduce import rules
from largebatch.reproduce.published import load_published
from largebatch.reproduce.spec import Claim, Table, TableSpec


def tolerance_unit(spec: TableSpec) -> str:
    """How claim tolerances read: ``points`` for accuracies shown in percent, else plain numbers."""
    return "raw" if spec.numbers.display == "raw" else "points"


def judge(claim: Claim, spec: TableSpec, cells: pd.DataFrame, ratios: pd.DataFrame) -> rules.Verdict:
    """Apply the claim's rule (:mod:`largebatch.reproduce.rules`) to our numbers."""
    c: Any = claim
    noise = spec.noise
    apply: dict[str, Callable[[], rules.Verdict]] = {
        "degrades": lambda: rules.degrades(cells, c.series, c.tolerance, noise),
        "stays_within": lambda: rules.stays_within(cells, c.series, c.tolerance, noise),
        "smaller_drop": lambda: rules.smaller_drop(cells, c.series, c.than, c.margin, noise),
        "breaks_earlier": lambda: rules.breaks_earlier(cells, c.series, c.than, c.tolerance, noise),
        "break_point": lambda: rules.break_point(cells, c.series, c.tolerance, c.min_flat, noise),
        "ranking": lambda: rules.ranking(cells, c.order, c.tolerance, noise),
        "matches": lambda: rules.matches(cells, c.series, c.target, c.tolerance, noise),
        "ratio_spread": lambda: rules.ratio_spread(ratios, c.min_decades),
        "weight_bias_gap": lambda: rules.weight_bias_gap(ratios, c.min_decades),
        "ratio_falls": lambda: rules.ratio_falls(ratios, c.epoch, c.factor),
    }
    return apply[c.rule]()


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``frame`` (cells as text, pipes escaped)."""
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


@dataclass(frozen=True)
class Reproduction:
    """Everything one ``largebatch reproduce TABLE`` prints."""

    table: Table
    profile: str
    sweep_file: Path
    results: Path
    counts: dict[str, int]
    ours: pd.DataFrame
    verdicts: list[tuple[Claim, rules.Verdict]]
    dashboard: Path | None

    def markdown(self) -> str:
        spec = self.table.spec
        published = load_published()
        values = {v.id: v for v in published.values(spec.table)}
        n = spec.numbers
        if n.kind == "layer_ratios":
            what = "‖w‖/‖∇w‖ per layer (median over seeds), at the first step and after the listed epochs"
        else:
            shown = {"percent": "in %", "error_percent": "as error in %", "raw": ""}[n.display]
            what = (f"`{n.metric}` {shown} of the trial best by `{n.select}` per cell, mean ± sd over seeds".strip())
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items()) or "none"
        unit = tolerance_unit(spec)
        claims = pd.DataFrame(
            [{"claim": c.claim, "published": "; ".join(f"{values[p].text()} [{p}]" for p in c.published) or "–",
              "rule": c.statement(unit), "verdict": v.text()} for c, v in self.verdicts]
        )
        listing = pd.DataFrame(
            [{"id": v.id, "quantity": v.quantity, "batch": v.batch_size or "–", "published": v.text(),
              "source": published.cite(v)} for v in values.values()]
        )
        parts = [
            f"## {spec.table}: {spec.title}",
            f"Reproduces {spec.reproduces}. Profile `{self.profile}` (sweep `{self.sweep_file.name}`); "
            f"trials: {counts}; results: `{self.results}`"
            + (f"; dashboard: `{self.dashboard}`" if self.dashboard else "") + ".",
            f"### Ours: {what}",
            markdown_table(self.ours) if not self.ours.empty else "(no finished trials yet)",
            "### Published",
            markdown_table(listing) if not listing.empty else "(none recorded)",
            "### Claims",
            markdown_table(claims),
        ]
        return "\n\n".join(parts) + "\n"
