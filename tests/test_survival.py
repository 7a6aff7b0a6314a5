"""The main job's answer: how far each optimizer's good-lr band survives as the batch grows, and the verdict."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from largebatch.analysis import good_lr_band
from largebatch.analysis.survival import band_survival, verdict
from largebatch.dashboard.pages import Context
from largebatch.dashboard.survival import SurvivalView, survival_page, survival_sentence

BY = ("optimizer.name",)
LRS = (0.01, 0.03, 0.1, 0.3)


def survival(accuracy: dict[tuple[str, int], tuple[float, ...]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells against one bar 0.05 below the best run, per-series survival)."""
    cells = good_lr_band(runs(accuracy), tolerance=0.05, by=BY, reference="all")
    return cells, band_survival(cells)


def runs(accuracy: dict[tuple[str, int], tuple[float, ...]]) -> pd.DataFrame:
    """A runs table: for each (optimizer, batch) the val accuracy at each of ``LRS`` (NaN: diverged)."""
    rows = [
        (name, batch, lr, value)
        for (name, batch), values in accuracy.items()
        for lr, value in zip(LRS, values, strict=True)
    ]
    frame = pd.DataFrame(rows, columns=["optimizer.name", "batch_size", "lr", "eval.val_acc"])
    return frame.assign(run_id=[f"r{i:02d}" for i in range(len(frame))], sweep="",
                        diverged=frame["eval.val_acc"].isna())


NAN = math.nan
# lamb keeps a rate within 0.05 of the best (0.95) up to B=256; sgd only at B=32; both stop inside the lr grid
LAMB_LONGER = {
    ("sgd", 32): (0.80, 0.95, 0.90, NAN),
    ("sgd", 128): (0.70, 0.85, 0.88, 0.60),
    ("sgd", 256): (0.60, 0.75, 0.85, NAN),
    ("lamb", 32): (0.91, 0.94, 0.80, NAN),
    ("lamb", 128): (0.85, 0.93, 0.91, 0.70),
    ("lamb", 256): (0.80, 0.86, 0.80, 0.50),
}


def test_bands_against_one_bar_and_where_each_stops() -> None:
    cells, table = survival(LAMB_LONGER)
    assert cells["threshold"].tolist() == pytest.approx([0.90] * 6)
    series = table.set_index("series")
    assert series.loc["lamb", "survives_to"] == 128 and series.loc["lamb", "stops_at"] == 256
    assert series.loc["sgd", "survives_to"] == 32 and series.loc["sgd", "stops_at"] == 128
    assert series.loc["sgd", "stop_best"] == 0.88 and series.loc["sgd", "stop_best_lr"] == 0.1
    lamb128 = cells[(cells["series"] == "lamb") & (cells["batch_size"] == 128)].iloc[0]
    assert (lamb128["lr_low"], lamb128["lr_high"], lamb128["n_good"]) == (0.03, 0.1, 2)
    found = verdict(table)
    assert (found.outcome, found.leader, found.order) == ("longer", "lamb", ["lamb", "sgd"])


def test_the_sentence_is_computed_from_the_data() -> None:
    cells, table = survival(LAMB_LONGER)
    text = survival_sentence(verdict(table), table, cells, "eval.val_acc", "max", 0.05, 3)
    assert text.startswith("lamb's good-lr band survives to larger batches than sgd's: lamb keeps a good lr up to "
                           "B=128 and stops scaling at B=256 (best 0.86 at lr 0.03); sgd keeps a good lr up to B=32")
    assert "; at B=256 the best runs reach lamb 0.860, sgd 0.850 (good: eval.val_acc >= 0.9, within 0.05 of the best " \
        "run (0.95); 3 batch sizes)" in text
    swapped = {(("sgd" if n == "lamb" else "lamb"), b): v for (n, b), v in LAMB_LONGER.items()}
    cells, table = survival(swapped)
    assert survival_sentence(verdict(table), table, cells, "eval.val_acc", "max", 0.05, 3).startswith("sgd's")


@pytest.mark.parametrize(
    ("change", "outcome", "reason"),
    [
        # both keep a good rate at every batch size tried: the range cannot tell them apart
        ({("sgd", 128): (0.7, 0.92, 0.9, 0.6), ("sgd", 256): (0.6, 0.91, 0.8, NAN),
          ("lamb", 256): (0.8, 0.92, 0.8, 0.5)}, "inconclusive", "extend the batch range"),
        # sgd's best rate at B=128 is the largest tried: a larger one might still be good
        ({("sgd", 128): (0.5, 0.6, 0.7, 0.88)}, "inconclusive", "widen the lr grid"),
        # sgd has no good rate at B=128 but one again at B=256, beyond lamb's reach: the edge is not placed
        ({("sgd", 256): (0.6, 0.75, 0.92, NAN), ("lamb", 256): (0.8, 0.86, 0.80, 0.5)}, "inconclusive",
         "refine the lr grid"),
        # both stop at B=128
        ({("lamb", 128): (0.85, 0.86, 0.88, 0.70)}, "same", ""),
        ({("sgd", 32): (0.5, 0.6, 0.5, 0.5), ("lamb", 32): (0.5, 0.6, 0.5, 0.5),
          ("sgd", 128): (0.95, 0.5, 0.5, 0.5), ("lamb", 128): (0.95, 0.5, 0.5, 0.5)},
         "inconclusive", "no series reaches the bar"),
    ],
)
def test_inconclusive_when_the_data_cannot_decide(change: dict, outcome: str, reason: str) -> None:
    _, table = survival({**LAMB_LONGER, **change})
    found = verdict(table)
    assert found.outcome == outcome and reason in found.reason and found.leader is None


def test_no_runs_or_only_diverged_runs_give_a_page_that_says_so() -> None:
    view = SurvivalView(view="band_survival")
    diverged = runs({("sgd", 32): (NAN, NAN, NAN, NAN), ("lamb", 32): (NAN, NAN, NAN, NAN)})
    for table in (diverged.iloc[:0], diverged):
        page = survival_page(view, Context(None, table, BY, {"sgd": "red", "lamb": "blue"}))  # type: ignore[arg-type]
        assert page.title == "Good-lr band vs batch size: no finished run with a value to compare"
        assert not page.figures and "Nothing to plot" in page.notes[-1]


def test_survival_needs_one_bar_for_every_cell() -> None:
    with pytest.raises(ValueError, match="reference='all'"):
        band_survival(good_lr_band(runs(LAMB_LONGER), tolerance=0.05, by=BY))


def test_a_sole_leader_stopping_at_the_grid_edge_still_leads() -> None:
    edge = {**LAMB_LONGER, ("lamb", 256): (0.5, 0.6, 0.7, 0.85)}  # lamb's best at B=256 is its largest rate
    _, table = survival(edge)
    assert table.set_index("series").loc["lamb", "censored"]
    assert verdict(table).leader == "lamb"
