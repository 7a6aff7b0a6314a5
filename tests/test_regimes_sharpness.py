"""Scaling regimes (fitted S(B) = S_min(1 + B_crit/B), regions, trade-off, B_simple prediction) and sharpness vs
batch size: analysis on synthetic tables with known answers, and both dashboard pages built from them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from largebatch.analysis import (
    Results,
    compare_prediction,
    fit_scaling,
    fitted_curve,
    noise_scale_at_target,
    rank_correlation,
    scaling_regimes,
    sharpness_vs_batch,
    steps_to_target,
)
from largebatch.analysis.regimes import REGIONS, region
from largebatch.dashboard.build import build
from largebatch.dashboard.config import validate_dashboard
from largebatch.dashboard.kinds import build_page
from largebatch.dashboard.pages import Context
from largebatch.dashboard.style import palette

BATCHES = np.array([16, 32, 64, 128, 256, 512, 1024, 2048, 4096], dtype=float)
S_MIN, B_CRIT = 40.0, 300.0


def noisy_steps(seed: int, noise: float = 0.05, s_min: float = S_MIN, b_crit: float = B_CRIT) -> np.ndarray:
    """S(B) = S_min(1 + B_crit/B) times log-normal noise of ``noise`` (McCandlish et al. eq. 2.11)."""
    rng = np.random.default_rng(seed)
    return s_min * (1 + b_crit / BATCHES) * np.exp(rng.normal(0, noise, len(BATCHES)))


@pytest.mark.parametrize("seed", range(5))
def test_fit_recovers_s_min_and_b_crit_from_noisy_measurements(seed: int) -> None:
    fit = fit_scaling(BATCHES, noisy_steps(seed))
    assert fit["s_min"] == pytest.approx(S_MIN, rel=0.12)
    assert fit["b_crit"] == pytest.approx(B_CRIT, rel=0.25)
    assert fit["e_min"] == pytest.approx(fit["s_min"] * fit["b_crit"])
    assert fit["b_crit_low"] < B_CRIT < fit["b_crit_high"] or abs(math.log(fit["b_crit"] / B_CRIT)) < 0.1
    assert fit["r2_log"] > 0.98 and 1 < fit["rms_factor"] < 1.1


def test_exact_data_is_fitted_exactly_and_bad_input_is_refused() -> None:
    fit = fit_scaling(BATCHES, S_MIN * (1 + B_CRIT / BATCHES))
    assert fit["s_min"] == pytest.approx(S_MIN, rel=1e-6) and fit["b_crit"] == pytest.approx(B_CRIT, rel=1e-6)
    assert fit["r2_log"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3 distinct batch sizes"):
        fit_scaling(np.array([16.0, 32.0]), np.array([10.0, 5.0]))
    with pytest.raises(ValueError, match="positive"):
        fit_scaling(BATCHES[:3], np.array([10.0, 0.0, 5.0]))


def test_pure_perfect_scaling_puts_the_knee_beyond_the_batch_sizes_measured() -> None:
    fit = fit_scaling(BATCHES, 1e5 / BATCHES)
    assert fit["b_crit"] > 100 * BATCHES.max() and math.isinf(fit["b_crit_high"])
    flat = fit_scaling(BATCHES, np.full(len(BATCHES), 30.0))
    assert flat["b_crit"] < BATCHES.min() / 100 and flat["s_min"] == pytest.approx(30.0, rel=1e-3)


def test_region_rule_at_its_thresholds() -> None:
    assert region(25.0, 100.0, 0.25) == REGIONS[0]  # B = r·B_crit: E = 1.25·E_min, still perfect
    assert region(26.0, 100.0, 0.25) == REGIONS[1]
    assert region(399.0, 100.0, 0.25) == REGIONS[1]
    assert region(400.0, 100.0, 0.25) == REGIONS[2]  # B = B_crit/r: S = 1.25·S_min


def steps_table(series_steps: dict[str, np.ndarray]) -> pd.DataFrame:
    """A steps_to_target-shaped table: every batch size reached, except NaN entries."""
    frames = []
    for series, steps in series_steps.items():
        frames.append(
            pd.DataFrame(
                {
                    "series": series,
                    "batch_size": BATCHES.astype(int),
                    "steps": steps,
                    "samples": steps * BATCHES,
                    "reached": ~np.isnan(steps),
                    "run_id": [f"{series}{int(b)}" for b in BATCHES],
                    "lr": 0.1,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_regimes_per_series_with_region_labels_and_the_trade_off() -> None:
    exact = S_MIN * (1 + B_CRIT / BATCHES)
    few = np.full(len(BATCHES), np.nan)
    few[:2] = [100.0, 50.0]
    fits, points = scaling_regimes(steps_table({"lamb": exact, "sgd": few}))
    assert list(fits["series"]) == ["lamb"]  # sgd: 2 batch sizes reached, no fit
    fit = fits.iloc[0]
    assert fit["perfect_below"] == pytest.approx(0.25 * B_CRIT) and fit["parallel_above"] == pytest.approx(4 * B_CRIT)
    assert fit["knee_in_range"] and fit["n_points"] == len(BATCHES)
    labels = dict(zip(points["batch_size"], points["region"]))
    assert [labels[b] for b in (16, 64)] == [REGIONS[0]] * 2  # ≤ 75
    assert [labels[b] for b in (128, 256, 512, 1024)] == [REGIONS[1]] * 4
    assert [labels[b] for b in (2048, 4096)] == [REGIONS[2]] * 2  # ≥ 1200
    # on the fitted curve every point satisfies (S/S_min − 1)(E/E_min − 1) = 1 (McCandlish et al. eq. 2.12)
    assert points["tradeoff"].to_numpy() == pytest.approx(1.0, rel=1e-5)
    assert points["residual_factor"].to_numpy() == pytest.approx(1.0, rel=1e-5)
    curve = fitted_curve(fits)
    s, e = curve["steps"] / fit["s_min"] - 1, curve["samples"] / fit["e_min"] - 1
    assert (s * e).to_numpy() == pytest.approx(1.0)
    # measured range 16 … 4096 covers B_crit/8 … 8·B_crit = 37.5 … 2400
    assert curve["batch_size"].agg(["min", "max"]).tolist() == pytest.approx([16, 4096])
    with pytest.raises(ValueError, match="tolerance"):
        scaling_regimes(steps_table({"lamb": exact}), tolerance=1.5)


def test_trade_off_fit_on_noisy_points() -> None:
    fits, points = scaling_regimes(steps_table({"sgd": noisy_steps(3, noise=0.08)}))
    # noisy points scatter around the fitted hyperbola, the product stays of order 1 near the knee
    near = points[(points["batch_size"] >= 64) & (points["batch_size"] <= 1024)]
    assert near["tradeoff"].between(0.5, 2.0).all()
    assert fits.iloc[0]["e_min"] == pytest.approx(S_MIN * B_CRIT, rel=0.35)


def runs_and_history(b_simple: float | None = 250.0, sharp: bool = True) -> Results:
    """Two optimizers × 9 batch sizes × 2 learning rates; val/acc crosses 0.5 at S(B) of the series' model (one
    rate is slower), B_simple logged every 10 steps, λ_max and the gap growing with B for sgd."""
    runs, history = [], []
    models = {"lamb": (S_MIN, B_CRIT), "sgd": (60.0, 120.0)}
    for optimizer, (s_min, b_crit) in models.items():
        for b in BATCHES.astype(int):
            for k, lr in enumerate((0.1, 0.3)):
                run_id = f"{optimizer}-{b}-{k}"
                reach = int(round(s_min * (1 + b_crit / b) * (1 + k)))
                gap = 0.01 * math.log2(b) if optimizer == "sgd" else 0.02
                runs.append(
                    {
                        "run_id": run_id, "optimizer.name": optimizer, "batch_size": b, "lr": lr, "sweep": "",
                        "status": "completed", "diverged": False, "eval.val_acc": 0.9 - 0.1 * k,
                        "eval.gen_gap": gap + 0.01 * k, "eval.train_loss": 0.3,
                        "final.sharpness/lambda_max": (b ** 0.5 if optimizer == "sgd" else 5.0) * (1 + k)
                        if sharp else math.nan,
                    }
                )
                for step in (reach - 1, reach):
                    history.append((run_id, step, 0, step * b, "val/acc", 0.4 if step < reach else 0.6))
                if b_simple is not None:
                    for step in range(10, reach + 20, 10):
                        history.append((run_id, step, 0, step * b, "noise_scale/b_simple", b_simple * (1 + step / 1e4)))
    columns = ["run_id", "step", "epoch", "samples", "metric", "value"]
    return Results(pd.DataFrame(runs), pd.DataFrame(history, columns=columns), pd.DataFrame())


def test_noise_scale_at_target_and_the_predicted_to_fitted_ratio() -> None:
    results = runs_and_history()
    steps = steps_to_target(results.runs, results.history, target=0.5, by=("optimizer.name",))
    fits, _ = scaling_regimes(steps)
    assert fits.set_index("series")["b_crit"].to_dict() == pytest.approx({"lamb": B_CRIT, "sgd": 120.0}, rel=0.05)
    at_target = noise_scale_at_target(steps, results.history)
    row = at_target[(at_target["series"] == "lamb") & (at_target["batch_size"] == 16)].iloc[0]
    reach = steps.set_index(["series", "batch_size"]).loc[("lamb", 16), "steps"]
    assert row["b_simple_step"] == 10 * (reach // 10) and row["b_simple"] == pytest.approx(250 * (1 + row["b_simple_step"] / 1e4))
    table = compare_prediction(fits, at_target).set_index("series")
    assert table.loc["lamb", "ratio"] == pytest.approx(table.loc["lamb", "predicted_b_crit"] / table.loc["lamb", "b_crit"])
    assert table.loc["sgd", "ratio"] == pytest.approx(250 / 120, rel=0.1) and table.loc["sgd", "n_b_simple"] == 9
    none = compare_prediction(fits, noise_scale_at_target(steps, results.history.iloc[:0]))
    assert none["ratio"].isna().all() and (none["n_b_simple"] == 0).all()


def test_sharpness_vs_batch_pairs_each_best_run_with_its_own_gap() -> None:
    results = runs_and_history()
    blown = results.runs["run_id"] == "sgd-64-1"
    results.runs.loc[blown, ["status", "diverged", "final.sharpness/lambda_max"]] = ["diverged", True, 1e6]
    results.runs.loc[blown, ["eval.val_acc", "eval.gen_gap"]] = math.nan
    table = sharpness_vs_batch(results.runs, by=("optimizer.name",))
    sgd = table[table["series"] == "sgd"].set_index("batch_size")
    assert sgd.loc[128, "sharpness"] == pytest.approx(128**0.5) and sgd.loc[128, "sharpness_max"] == pytest.approx(
        2 * 128**0.5
    )
    assert sgd.loc[128, "best_run_id"] == "sgd-128-0" and sgd.loc[128, "gap"] == pytest.approx(0.07)
    assert sgd.loc[128, "gap_max"] == pytest.approx(0.08) and sgd.loc[128, "train_loss"] == 0.3
    # the diverged run's λ_max (weights blown up) is not part of the cell's spread; it is counted as diverged
    assert sgd.loc[64, "sharpness_max"] == pytest.approx(8.0) and sgd.loc[64, "n_diverged"] == 1
    rho = rank_correlation(table, "sharpness")
    assert rho["sgd"] == pytest.approx(1.0) and math.isnan(rho["lamb"])  # lamb constant: no ranking
    with pytest.raises(ValueError, match="no column 'final.sharpness/lambda_max'"):
        sharpness_vs_batch(results.runs.drop(columns=["final.sharpness/lambda_max"]))


def context(results: Results) -> Context:
    runs = results.runs.assign(series=results.runs["optimizer.name"])
    return Context(results, runs, ("series",), palette(runs["series"]))


def pages(results: Results, **regimes: object):
    config = validate_dashboard(
        {"title": "t", "views": [{"view": "scaling_regimes", "target": 0.5, **regimes}, {"view": "sharpness"}]}, "t"
    )
    return [build_page(view, context(results)) for view in config.views]


def test_pages_state_the_fit_the_prediction_and_the_sharpness_trend() -> None:
    regimes, sharpness = pages(runs_and_history())
    assert "lamb B_crit≈" in regimes.title and "B_simple predicts" in regimes.title
    assert len(regimes.figures) == 2 and set(regimes.tables) == {"", "fits", "curve"}
    assert {"predicted_b_crit", "ratio", "b_crit", "s_min", "e_min", "r2_log"} <= set(regimes.tables["fits"].columns)
    assert {"region", "b_simple", "fitted_steps", "tradeoff"} <= set(regimes.tables[""].columns)
    assert any("perfect scaling B ≤ r·B_crit" in n for n in regimes.notes)
    layout = regimes.figures[0].layout
    assert any("r = 0.25" in a.text for a in layout.annotations)
    dotted = [s for s in layout.shapes if s.line.dash == "dot"]
    assert len(dotted) == 2  # one B_simple prediction per series
    assert "sgd λ_max 4 at B=16 → 64 at B=4096" in sharpness.title and "λ_max +1.00" in sharpness.title
    assert sharpness.figures and len(sharpness.tables[""]) == 2 * len(BATCHES)


def test_pages_without_probes_or_fits_say_so() -> None:
    regimes, sharpness = pages(runs_and_history(b_simple=None, sharp=False))
    assert "B_simple predicts" not in regimes.title
    assert any("No run logged noise_scale/b_simple" in n for n in regimes.notes)
    assert not sharpness.figures and "no run logged final.sharpness/lambda_max" in sharpness.title
    off, _ = pages(runs_and_history(), noise_scale=None)
    assert "B_simple" not in off.title and "b_simple" not in off.tables[""].columns
    high, _ = pages(runs_and_history(), target=0.7)  # never reached
    assert "no series reached the target" in high.title and not high.figures


def test_dashboard_site_with_the_new_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = runs_and_history()
    config = tmp_path / "cb.yaml"
    config.write_text(
        "title: cb\nseries_by: [optimizer.name]\nviews:\n  - {view: scaling_regimes, target: 0.5}\n"
        "  - {view: sharpness}\n"
    )
    monkeypatch.setattr("largebatch.dashboard.build.load_results", lambda paths: results)
    built = build([tmp_path], [config], tmp_path / "site", images=False)
    stems = [p.stem for p in built.pages]
    assert stems == ["cb-scaling_regimes", "cb-sharpness"]
    data = tmp_path / "site" / "data"
    fits = pd.read_csv(data / "cb-scaling_regimes-fits.csv")
    assert set(fits["series"]) == {"lamb", "sgd"} and fits["ratio"].notna().all()
    assert (data / "cb-scaling_regimes.csv").is_file() and (data / "cb-sharpness.csv").is_file()
    assert "B_crit" in (tmp_path / "site" / "cb-scaling_regimes.html").read_text()


def test_probes_are_enabled_and_configured_from_the_experiment_file() -> None:
    from largebatch.core.errors import ConfigError
    from largebatch.train.callbacks import NoiseScaleMonitor, SharpnessProbe
    from largebatch.train.config import load_experiment
    from largebatch.train.runner import _probes

    experiment = Path(__file__).parents[1] / "experiments" / "mnist1d_cnn.yaml"
    assert _probes(load_experiment(experiment)) == {}
    config = load_experiment(experiment, ["probes.noise_scale={enabled: true, probe_every_n_steps: 5, ema: 0.9}",
                                          "probes.sharpness.enabled=true", "probes.sharpness.tol=0.01"])
    probes = _probes(config)
    assert isinstance(probes["noise_scale"], NoiseScaleMonitor) and isinstance(probes["sharpness"], SharpnessProbe)
    assert probes["noise_scale"].probe_every_n_steps == 5 and probes["noise_scale"].estimator.beta == 0.9
    assert probes["sharpness"].tol == 0.01 and probes["sharpness"].batch_size == 512
    with pytest.raises(ConfigError, match=r"unknown key 'probes.sharpness.tolerance'; allowed keys here: batch_size"):
        load_experiment(experiment, ["probes.sharpness.tolerance=0.01"])


def test_runner_telemetry_is_typed_and_registers_probes_after_the_guard() -> None:
    from largebatch.train.callbacks import DivergenceGuard, GeneralizationGap, NoiseScaleMonitor, Throughput
    from largebatch.train.config import load_experiment
    from largebatch.train.runner import _callbacks

    experiment = Path(__file__).parents[1] / "experiments" / "mnist1d_cnn.yaml"
    ours = _callbacks(load_experiment(experiment, ["probes.noise_scale.enabled=true"]))
    assert isinstance(ours.guard, DivergenceGuard) and isinstance(ours.gap, GeneralizationGap)
    assert isinstance(ours.throughput, Throughput) and ours.throughput.samples_per_step == 128
    order, (noise,) = ours.in_order(), ours.probes
    assert isinstance(noise, NoiseScaleMonitor) and order.index(noise) > order.index(ours.guard)
