"""largebatch.analysis: each view's numbers on synthetic tables with known answers, and loading stored runs."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from largebatch.analysis import (
    EVALUATORS,
    Results,
    best_in_cells,
    curves,
    direction,
    generalization_gap,
    good_lr_band,
    load_results,
    lr_batch_grid,
    lr_scaling,
    param_importance,
    race_to_target,
    runs_study,
    select_runs,
    steps_to_target,
    studies,
    trust_ratio_at_init,
)
from largebatch.analysis.importance import journal_studies
from largebatch.analysis.tables import filter_runs
from largebatch.records.store import RunStore

BY = ("optimizer.name",)


def runs_frame(rows: list[tuple]) -> pd.DataFrame:
    """A runs table from (optimizer, batch, lr, val_acc, gen_gap, status) rows, in start order."""
    frame = pd.DataFrame(rows, columns=["optimizer.name", "batch_size", "lr", "eval.val_acc", "eval.gen_gap", "status"])
    return frame.assign(
        run_id=[f"r{i:02d}" for i in range(len(frame))],
        sweep="",
        sweep_dir="",
        started=pd.date_range("2026-01-01", periods=len(frame), freq="min", tz="UTC"),
        diverged=frame["status"].eq("diverged"),
        **{"optimizer.lr": frame["lr"], "final.val/acc": frame["eval.val_acc"]},
    )


NAN = math.nan
GRID = runs_frame(
    [
        ("lars", 64, 0.01, 0.88, 0.02, "completed"),
        ("lars", 64, 0.1, 0.90, 0.05, "completed"),
        ("lars", 64, 1.0, NAN, NAN, "diverged"),
        ("lars", 256, 0.01, 0.90, 0.01, "completed"),
        ("lars", 256, 0.1, 0.50, 0.03, "completed"),
        ("lars", 256, 1.0, 0.90, 0.07, "completed"),
        ("sgd", 64, 0.1, 0.80, 0.04, "completed"),
        ("sgd", 64, 0.12, 0.85, 0.06, "completed"),
    ]
)


def cell(table: pd.DataFrame, series: str, batch: int) -> pd.Series:
    rows = table[(table["series"] == series) & (table["batch_size"] == batch)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_best_per_cell_takes_the_best_finite_run_and_the_earliest_on_ties() -> None:
    best = best_in_cells(GRID, "eval.val_acc", None, ["optimizer.name", "batch_size"]).set_index(
        ["optimizer.name", "batch_size"]
    )
    assert best.loc[("lars", 64), "run_id"] == "r01"
    assert best.loc[("lars", 256), "run_id"] == "r03"  # tie 0.90 with r05: the earlier run
    assert best.loc[("sgd", 64), "lr"] == 0.12
    lowest = best_in_cells(GRID, "eval.val_acc", "min", ["optimizer.name", "batch_size"])
    assert set(lowest["run_id"]) == {"r00", "r04", "r06"}


def test_direction_is_inferred_or_required() -> None:
    assert direction("eval.val_acc") == "max" and direction("val/loss") == "min"
    assert direction("eval.gen_gap", "min") == "min"
    with pytest.raises(ValueError, match="give mode"):
        direction("eval.gen_gap")


def test_generalization_gap_of_the_best_trial_and_its_spread_over_lr() -> None:
    table = generalization_gap(GRID, by=BY)
    lars64 = cell(table, "lars", 64)
    assert lars64["gap"] == 0.05 and lars64["best_lr"] == 0.1 and lars64["best_run_id"] == "r01"
    assert (lars64["gap_min"], lars64["gap_median"], lars64["gap_max"]) == pytest.approx((0.02, 0.035, 0.05))
    assert (lars64["n_trials"], lars64["n_diverged"]) == (3, 1)
    lars256 = cell(table, "lars", 256)
    assert lars256["gap"] == 0.01 and lars256["gap_max"] == 0.07
    assert list(table["series"]) == ["lars", "lars", "sgd"]


def test_heat_map_bins_learning_rates_and_marks_diverged_cells() -> None:
    grid = lr_batch_grid(GRID, by=BY, bins_per_decade=4)
    lars64 = grid[(grid["series"] == "lars") & (grid["batch_size"] == 64)].set_index("lr_bin")
    assert list(lars64.index) == [-8, -4, 0]  # 0.01, 0.1, 1.0 at 4 bins per decade
    assert bool(lars64.loc[0, "diverged"]) and math.isnan(lars64.loc[0, "value"])
    assert not lars64.loc[-4, "diverged"] and lars64.loc[-4, "value"] == 0.90
    sgd = grid[grid["series"] == "sgd"]
    assert len(sgd) == 1  # 0.1 and 0.12 share the bin [10^-1, 10^-0.75)
    assert sgd.iloc[0]["lr"] == pytest.approx(math.sqrt(0.1 * 0.12))
    assert sgd.iloc[0]["value"] == 0.85 and sgd.iloc[0]["n_trials"] == 2
    shared = lr_batch_grid(
        runs_frame([("sgd", 64, 0.1, 0.5, 0.0, "completed"), ("sgd", 256, 0.12, 0.6, 0.0, "completed")])
    )
    assert list(shared["lr"]) == pytest.approx([math.sqrt(0.1 * 0.12)] * 2)  # one column label across batch sizes
    coarse = lr_batch_grid(GRID, by=BY, bins_per_decade=1)
    assert len(coarse[coarse["series"] == "lars"]) == 6


def test_heat_map_on_the_base_learning_rate_column() -> None:
    runs = GRID.assign(**{"optimizer.lr": GRID["lr"] / 2})
    grid = lr_batch_grid(runs, lr="optimizer.lr", by=BY)
    assert set(grid["lr_column"]) == {"optimizer.lr"}
    assert cell(grid[grid["value"] == 0.88], "lars", 64)["lr"] == pytest.approx(0.005)


def test_good_lr_band_width_in_decades_edges_and_gaps() -> None:
    band = good_lr_band(GRID, tolerance=0.05, by=BY)
    lars64 = cell(band, "lars", 64)  # 0.88 and 0.90 are good, 1.0 diverged
    assert lars64["width_decades"] == pytest.approx(1.0)
    assert (lars64["lr_low"], lars64["lr_high"], lars64["best_lr"]) == (0.01, 0.1, 0.1)
    assert lars64["lower_edge"] and not lars64["upper_edge"] and lars64["contiguous"]
    assert lars64["n_good"] == 2 and lars64["fraction_good"] == pytest.approx(2 / 3)
    lars256 = cell(band, "lars", 256)  # good at both ends, bad in the middle
    assert lars256["width_decades"] == pytest.approx(2.0) and not lars256["contiguous"]
    tight = good_lr_band(GRID, tolerance=0.0, by=BY)
    assert cell(tight, "lars", 64)["width_decades"] == 0.0
    with pytest.raises(ValueError, match="tolerance"):
        good_lr_band(GRID, tolerance=-1, by=BY)


def history_frame(
    curves_by_run: dict[str, tuple[int, list[tuple[int, float]]]], metric: str = "val/acc"
) -> pd.DataFrame:
    rows = [
        (run_id, step, None, step * batch, metric, value)
        for run_id, (batch, points) in curves_by_run.items()
        for step, value in points
    ]
    return pd.DataFrame(rows, columns=["run_id", "step", "epoch", "samples", "metric", "value"])


def test_steps_to_target_and_the_perfect_scaling_line() -> None:
    runs = runs_frame(
        [
            ("lamb", 64, 0.01, 0.6, 0.0, "completed"),
            ("lamb", 64, 0.1, 0.6, 0.0, "completed"),
            ("lamb", 256, 0.1, 0.6, 0.0, "completed"),
            ("lamb", 1024, 0.1, 0.6, 0.0, "completed"),
            ("lamb", 4096, 0.1, 0.3, 0.0, "completed"),
        ]
    )
    history = history_frame(
        {
            "r00": (64, [(100, 0.2), (400, 0.55), (500, 0.4)]),
            "r01": (64, [(100, 0.3), (300, 0.51), (400, 0.6)]),
            "r02": (256, [(50, 0.3), (100, 0.5)]),
            "r03": (1024, [(25, 0.4), (50, 0.7)]),
            "r04": (4096, [(10, 0.3)]),
        }
    )
    table = steps_to_target(runs, history, metric="val/acc", target=0.5, by=BY).set_index("batch_size")
    assert list(table["steps"].iloc[:3]) == [300, 100, 50]
    assert table.loc[64, "run_id"] == "r01" and table.loc[64, "n_reached"] == 2
    assert table.loc[256, "samples"] == 100 * 256
    assert list(table["perfect_steps"]) == pytest.approx([300, 75, 18.75, 4.6875])
    assert table.loc[256, "efficiency"] == pytest.approx(0.75)
    assert set(table["perfect_samples"]) == {300 * 64}
    assert not table.loc[4096, "reached"] and math.isnan(table.loc[4096, "steps"])


def test_race_to_target_counts_every_seed_and_summarises_those_that_got_there() -> None:
    """Schedules compared over seeds: medians over the runs that reached the target, misses counted, samples from
    the history (a growing batch sees more samples per step)."""
    runs = runs_frame([("lamb", 32, 0.01, 0.8, 0.0, "completed")] * 3 + [("lamb", 32, 0.01, 0.8, 0.0, "completed")] * 2)
    runs["batch_schedule.kind"] = ["fixed"] * 3 + ["steps"] * 2
    history = history_frame({"r00": (32, [(100, 0.5), (200, 0.81)]), "r01": (32, [(100, 0.7), (300, 0.85)]),
                             "r02": (32, [(100, 0.6), (400, 0.82)]), "r03": (32, [(50, 0.5), (120, 0.9)]),
                             "r04": (32, [(50, 0.5), (120, 0.7)])})
    history.loc[history["run_id"] == "r03", "samples"] = [1600, 8000]  # the batch grew
    per_run, summary = race_to_target(runs, history, metric="val/acc", target=0.8, by=("batch_schedule.kind",))
    fixed, steps = summary.set_index("series").loc["fixed"], summary.set_index("series").loc["steps"]
    assert (fixed["n_runs"], fixed["n_reached"], fixed["steps_median"]) == (3, 3, 300)
    assert (fixed["steps_min"], fixed["steps_max"], fixed["samples_median"]) == (200, 400, 300 * 32)
    assert (steps["n_runs"], steps["n_reached"], steps["steps_median"], steps["samples_median"]) == (2, 1, 120, 8000)
    assert list(per_run["reached"]) == [True, True, True, True, False]
    from largebatch.dashboard.race import race_figure, race_sentence

    assert race_sentence(summary) == ("fixed · B=32 in 300 steps (9600 samples); reached only by steps · B=32 "
                                      "in 1/2 runs")
    figure = race_figure(per_run, summary, {"fixed": "black", "steps": "red"}, "t")
    dots = [trace for trace in figure.data if trace.marker.size == 7]  # one dot per run that reached the target
    assert sorted(len(trace.y) for trace in dots) == [1, 1, 3, 3]


def test_steps_to_target_when_lower_is_better() -> None:
    runs = runs_frame([("sgd", 32, 0.1, 0.0, 0.0, "completed"), ("sgd", 128, 0.1, 0.0, 0.0, "completed")])
    history = history_frame({"r00": (32, [(10, 2.0), (20, 0.9)]), "r01": (128, [(5, 1.5), (10, 1.0)])}, "val/loss")
    table = steps_to_target(runs, history, metric="val/loss", target=1.0, by=BY)
    assert list(table["steps"]) == [20, 10]
    assert list(table["perfect_steps"]) == [20, 5]


def test_lr_scaling_fits_the_exponent_and_draws_both_rules() -> None:
    rows = [
        ("lars", b, lr, 0.9 if lr == 0.1 * (b / 64) ** 0.5 else 0.5, 0.0, "completed")
        for b in (64, 256, 1024)
        for lr in (0.1 * (b / 64) ** 0.5, 0.05, 10.0)
    ]
    table = lr_scaling(runs_frame(rows), by=BY).set_index("batch_size")
    assert table["alpha"].iloc[0] == pytest.approx(0.5)
    assert list(table["best_lr"]) == pytest.approx([0.1, 0.2, 0.4])
    assert list(table["linear_lr"]) == pytest.approx([0.1, 0.4, 1.6])
    assert list(table["sqrt_lr"]) == pytest.approx([0.1, 0.2, 0.4])
    assert list(table["fitted_lr"]) == pytest.approx([0.1, 0.2, 0.4])
    assert not table["at_edge"].any()
    edge = lr_scaling(GRID, by=BY).set_index(["series", "batch_size"])
    assert edge.loc[("lars", 256), "at_edge"]  # best 0.01 is the smallest rate tried
    assert math.isnan(edge.loc[("sgd", 64), "alpha"])  # one batch size: no fit


def layers_frame() -> pd.DataFrame:
    rows = []
    for run_id, scale in (("r01", 1.0), ("r03", 2.0)):
        for step in (1, 10):
            for layer, ratio in (("conv.weight", 0.05), ("head.weight", 0.5), ("conv.bias", 1.0)):
                rows.append((run_id, step, layer, 1.0, 1.0, 1.0, ratio * scale * step, 0.1))
    columns = ["run_id", "step", "layer", "weight_norm", "grad_norm", "update_norm", "trust_ratio", "lr"]
    return pd.DataFrame(rows, columns=columns)


def test_trust_ratio_selection_and_table_at_initialisation() -> None:
    layers = layers_frame()
    selected = select_runs(GRID, layers, by=BY)
    assert list(selected["run_id"]) == ["r01", "r03"]  # only runs with telemetry; best per cell
    table = trust_ratio_at_init(layers, selected)
    assert list(table["layer"]) == ["conv.weight", "head.weight", "conv.bias"]
    assert list(table.columns[1:]) == ["lars · B=64 · lr=0.1", "lars · B=256 · lr=0.01"]
    assert list(table.iloc[:, 1]) == [0.05, 0.5, 1.0] and list(table.iloc[:, 2]) == [0.1, 1.0, 2.0]
    assert list(select_runs(GRID, layers, per="series", by=BY)["run_id"]) == ["r01"]


def test_curves_of_the_best_run_per_cell() -> None:
    history = history_frame({"r00": (64, [(1, 0.1)]), "r01": (64, [(1, 0.2), (2, 0.3)])})
    table = curves(GRID, history, metrics=["val/acc"], by=BY)
    assert list(table["run_id"]) == ["r01", "r01"] and list(table["samples"]) == [64, 128]


def test_runs_study_and_both_named_evaluators() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(30):
        lr = 10 ** rng.uniform(-3, 0)
        rows.append(
            (
                "lamb" if rng.random() < 0.5 else "sgd",
                int(rng.choice([64, 256])),
                lr,
                1 - abs(math.log10(lr) + 1.5) / 2 + rng.normal(0, 0.005),
                0.0,
                "completed",
            )
        )
    rows.append(("sgd", 64, 5.0, NAN, NAN, "diverged"))
    runs = runs_frame(rows)
    study = runs_study(runs, ["lr", "batch_size", "optimizer.name", "sweep"], "eval.val_acc")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and len(states) == 31
    assert set(study.trials[0].params) == {"lr", "batch_size", "optimizer.name"}  # 'sweep' does not vary
    assert study.trials[0].distributions["lr"].log
    found = studies(load_like(runs), params=["lr", "batch_size", "optimizer.name"], target="eval.val_acc")
    table = param_importance(found, ["ped-anova", "fanova"])
    assert set(table["evaluator_name"]) == {EVALUATORS["ped-anova"], EVALUATORS["fanova"]}
    for _, scores in table.groupby("evaluator"):
        assert scores["importance"].sum() == pytest.approx(1.0)
        assert scores.sort_values("importance").iloc[-1]["param"] == "lr"
    assert set(table["source"]) == {"runs table"} and set(table["n_trials"]) == {30}


def load_like(runs: pd.DataFrame, journals: dict[str, Path] | None = None) -> Results:
    """Results holding only a runs table (and the given sweep journals)."""
    return Results(runs, pd.DataFrame(), pd.DataFrame(), journals or {})


def test_stored_study_is_preferred_and_infinite_objectives_become_failures(tmp_path: Path) -> None:
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "optuna.journal"
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    stored = optuna.create_study(study_name="sw", storage=storage, direction="maximize")
    distribution = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-3, 1, log=True)}
    for lr, value in ((0.01, 0.5), (0.1, 0.9), (0.5, 0.7), (0.9, -math.inf)):
        stored.add_trial(optuna.create_trial(params={"optimizer.lr": lr}, distributions=distribution, value=value))
    copies = journal_studies(journal)
    assert [c.name for c in copies] == ["sw"] and copies[0].n_complete == 3
    runs = GRID.assign(sweep="sw", sweep_dir="/x/sw")
    found = studies(load_like(runs, {"/x/sw": journal}))
    assert [(s.name, s.source.split(" ")[0]) for s in found] == [("sw", "optuna.journal")]
    assert [s.source for s in studies(load_like(runs, {"/x/sw": journal}), source="runs")] == ["runs table"]
    table = param_importance(found, ["fanova"])
    assert list(table["param"]) == ["optimizer.lr"] and list(table["evaluator"]) == ["fanova"]
    with pytest.raises(ValueError, match="allowed: auto, journal, runs"):
        studies(load_like(runs), source="db")


def test_filter_runs_by_values_and_unknown_column() -> None:
    assert set(filter_runs(GRID, {"optimizer.name": ["sgd"]})["run_id"]) == {"r06", "r07"}
    assert len(filter_runs(GRID, {"batch_size": ["256"], "status": ["completed"]})) == 3
    with pytest.raises(ValueError, match="no column 'optimiser'"):
        filter_runs(GRID, {"optimiser": ["sgd"]})


def write_run(root: Path, run_id: str, batch: int, lr: float, accs: list[float], status: str = "completed") -> Path:
    store = RunStore.create(root, "t", run_id=run_id)
    store.write_config(
        {
            "name": "t",
            "batch_size": batch,
            "optimizer": {"name": "lars", "lr": lr / 2},
            "plan": {"lr": lr, "total_steps": 10 * len(accs)},
        }
    )
    for epoch, acc in enumerate(accs):
        store.log_metrics(10 * (epoch + 1), {"val/acc": acc, "train/loss": 1 - acc}, epoch=epoch)
    store.log_layers(1, {"layer": ["a.weight", "a.bias"], "trust_ratio": [0.1, 1.0]})
    store.write_summary(status=status, eval={"val_acc": accs[-1], "gen_gap": 0.01}, steps=10 * len(accs))
    store.close()
    return store.path


def test_load_results_from_runs_sweeps_and_run_directories(tmp_path: Path) -> None:
    plain = tmp_path / "runs"
    write_run(plain, "a", 64, 0.1, [0.3, 0.6])
    sweep = tmp_path / "runs" / "sw"
    sweep.mkdir(parents=True)
    (sweep / "sweep.yaml").write_text(yaml.safe_dump({"name": "sw"}))
    (sweep / "optuna.journal").write_text("")
    trial = write_run(sweep / "runs", "t0", 256, 0.2, [0.5], status="diverged")
    results = load_results([plain, trial])  # the trial is found twice, loaded once
    runs = results.runs.set_index("run_id")
    assert sorted(runs.index) == ["a", "t0"]
    assert runs.loc["t0", "sweep"] == "sw" and runs.loc["a", "sweep"] == ""
    assert runs.loc["a", "lr"] == 0.1 and bool(runs.loc["t0", "diverged"])
    assert list(results.studies) == [str(sweep.resolve())]
    assert list(results.finished()["run_id"]) == ["a", "t0"]
    history = results.history
    assert list(history.columns) == ["run_id", "step", "epoch", "samples", "metric", "value"]
    val = history[(history["run_id"] == "a") & (history["metric"] == "val/acc")]
    assert list(val["samples"]) == [640, 1280] and list(val["value"]) == [0.3, 0.6]
    assert list(results.layers["layer"].unique()) == ["a.weight", "a.bias"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no runs"):
        load_results(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing")


def test_analysis_never_imports_ray_or_lightning() -> None:
    code = (
        "import sys, largebatch.analysis; bad = [m for m in ('ray', 'lightning', 'pytorch_lightning') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
