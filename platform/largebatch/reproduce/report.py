"""A reproduction's result: our numbers, the published numbers, and each claim's verdict, as Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from largebatch.reproduce import rules
from largebatch.reproduce.claims import ClaimBase
from largebatch.reproduce.published import load_published
from largebatch.reproduce.spec import NOT_EVIDENCE, Table, TableSpec

SMOKE_BANNER = ("> **Smoke profile `{profile}`: not evidence.** It runs a few tiny trials to check that the table "
                "builds end to end; its numbers and verdicts say nothing about the papers' claims. Run `--profile cpu` "
                "or `--profile gpu` for evidence.")


def tolerance_unit(spec: TableSpec) -> str:
    """How claim tolerances read: ``points`` for accuracies shown in percent, else plain numbers."""
    return "raw" if spec.numbers.display == "raw" else "points"


def judge(claim: ClaimBase, spec: TableSpec, cells: pd.DataFrame, ratios: pd.DataFrame) -> rules.Verdict:
    """Run the claim's test (:mod:`largebatch.reproduce.claims`) on our numbers at the spec's confidence level."""
    evidence = rules.Evidence(cells, ratios, spec.confidence, spec.numbers.chance)
    return claim.judge(evidence)


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
    verdicts: list[tuple[ClaimBase, rules.Verdict]]
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
        smoke = self.profile in NOT_EVIDENCE
        claims = pd.DataFrame(
            [{"claim": c.claim, "published": "; ".join(f"{values[p].text()} [{p}]" for p in c.published) or "–",
              "rule": c.wording(unit, spec.confidence), "verdict": (v.not_evidence() if smoke else v).text()}
             for c, v in self.verdicts]
        )
        listing = pd.DataFrame(
            [{"id": v.id, "quantity": v.quantity, "batch": v.batch_size or "–", "published": v.text(),
              "source": published.cite(v)} for v in values.values()]
        )
        parts = [
            f"## {spec.table}: {spec.title}",
            *([SMOKE_BANNER.format(profile=self.profile)] if smoke else []),
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
