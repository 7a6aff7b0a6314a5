"""``largebatch reproduce``: verdict rules on synthetic results (holds / does not hold / inconclusive each), table
spec and published-data validation, ``--list``, and the smoke profile of every table end to end through the CLI."""

from __future__ import annotations

import fnmatch
import math
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml

from largebatch.cli import main
from largebatch.reproduce import rules
from largebatch.reproduce.published import data_file, load_published, validate_published
from largebatch.reproduce.spec import find_tables, load_table, spec_dir, validate_spec
from largebatch.train.config import ConfigError, read_yaml

ROOT = Path(__file__).parents[1]
SPECS = ROOT / "sweeps" / "reproduce"
TABLES = ("lars-trust-ratios", "lars-batch-scaling", "lamb-bert-scaling", "goyal-linear-scaling",
          "lamb-optimizer-comparison", "smith-increase-batch")
H, F, I = rules.HOLDS, rules.FAILS, rules.INCONCLUSIVE


def cells(series: str, values: dict[int, float | None], std: float = math.nan, trials: int = 2,
          seeds: int = 2) -> pd.DataFrame:
    """Synthetic cells of one series: batch → mean accuracy (None: every trial diverged)."""
    rows = [{"series": series, "batch_size": b, "mean": math.nan if v is None else v, "std": std,
             "score": math.nan if v is None else v, "seeds": 0 if v is None else seeds, "trials": trials,
             "diverged": trials if v is None else 0} for b, v in values.items()]
    return pd.DataFrame(rows)


FLAT = {32: 0.90, 128: 0.90, 512: 0.895, 1024: 0.89}
FALLING = {32: 0.90, 128: 0.89, 512: 0.80, 1024: 0.60}
DIVERGING = {32: 0.90, 128: 0.90, 512: None, 1024: None}


# --- batch-size rules -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("table", "expected", "phrase"), [
    (cells("s", FALLING), H, "breaks at 512"),
    (cells("s", DIVERGING), H, "breaks at 512 (diverged)"),
    (cells("s", FLAT), F, "stays within"),
    (cells("s", {32: 0.90, 512: 0.85}, std=0.05), I, "within noise across seeds"),
    (cells("s", {32: 0.90}), I, "need 2"),
    (cells("s", {32: None, 512: None}), I, "diverged everywhere"),
])
def test_degrades(table: pd.DataFrame, expected: str, phrase: str) -> None:
    verdict = rules.degrades(table, "s", 0.02, noise=1.0)
    assert verdict.outcome == expected and phrase in verdict.detail, verdict


@pytest.mark.parametrize(("table", "expected"), [
    (cells("s", FLAT), H),
    (cells("s", FALLING), F),
    (cells("s", DIVERGING), F),
    (cells("s", {32: 0.90, 512: 0.86}, std=0.04), I),
    (cells("s", {32: None, 512: None, 1024: None}), I),
])
def test_stays_within(table: pd.DataFrame, expected: str) -> None:
    assert rules.stays_within(table, "s", 0.02, noise=1.0).outcome == expected


@pytest.mark.parametrize(("bn", "nobn", "std", "expected"), [
    ({32: 0.90, 1024: 0.88}, {32: 0.90, 1024: 0.70}, math.nan, H),
    ({32: 0.90, 1024: 0.70}, {32: 0.90, 1024: 0.72}, math.nan, F),
    ({32: 0.90, 1024: 0.80}, {32: 0.90, 1024: 0.70}, 0.1, I),       # 10 points apart, seeds spread 10 points
    ({32: 0.90, 1024: 0.85}, {32: 0.90, 1024: None}, math.nan, H),  # the baseline diverged: divergence is a result
    ({32: 0.90, 1024: None}, {32: 0.90, 1024: None}, math.nan, I),
])
def test_smaller_drop(bn: dict, nobn: dict, std: float, expected: str) -> None:
    table = pd.concat([cells("bn", bn, std), cells("nobn", nobn, std)])
    assert rules.smaller_drop(table, "bn", "nobn", margin=0.01, noise=1.0).outcome == expected


@pytest.mark.parametrize(("other", "reference", "expected"), [
    (FALLING, FLAT, H),                         # breaks at 512, the reference never
    (DIVERGING, FALLING, F),                    # both break at 512
    (FLAT, FLAT, F),                            # neither breaks in range
    ({32: 0.9, 128: 0.85, 512: 0.5}, FLAT, I),  # the drop at 128 is within the seeds' spread
])
def test_breaks_earlier(other: dict, reference: dict, expected: str) -> None:
    std = 0.05 if expected == I else math.nan
    table = pd.concat([cells("adamw", other, std), cells("lamb", reference, std)])
    assert rules.breaks_earlier(table, ["adamw"], "lamb", 0.02, noise=1.0).outcome == expected


@pytest.mark.parametrize(("values", "expected", "phrase"), [
    ({32: 0.9, 64: 0.9, 128: 0.9, 256: 0.89, 512: 0.8}, H, "break point 512"),
    ({32: 0.9, 64: 0.8, 128: 0.7, 256: 0.6}, F, "break point 64"),
    ({32: 0.9, 64: 0.9, 128: 0.9}, I, "no break within the tested range"),
    ({32: None, 64: None}, I, "diverged everywhere"),
])
def test_break_point(values: dict, expected: str, phrase: str) -> None:
    verdict = rules.break_point(cells("sgd", values), "sgd", 0.02, min_flat=4, noise=1.0)
    assert verdict.outcome == expected and phrase in verdict.detail, verdict


def one_batch(scores: dict[str, float | None], std: float = math.nan) -> pd.DataFrame:
    return pd.concat([cells(s, {4096: v}, std) for s, v in scores.items()])


@pytest.mark.parametrize(("scores", "std", "expected"), [
    ({"lamb": 0.9, "sgd": 0.85, "adagrad": 0.6}, math.nan, H),
    ({"lamb": 0.9, "sgd": 0.895, "adagrad": None}, math.nan, H),   # a tie and a diverged optimizer ranked last
    ({"lamb": 0.8, "sgd": 0.85, "adagrad": 0.6}, math.nan, F),
    ({"lamb": 0.9, "sgd": 0.85, "adagrad": 0.8}, 0.2, I),           # every gap within the seeds' spread
])
def test_ranking(scores: dict, std: float, expected: str) -> None:
    assert rules.ranking(one_batch(scores, std), ["lamb", "sgd", "adagrad"], 0.01, noise=1.0).outcome == expected


def test_ranking_without_trials_is_inconclusive() -> None:
    verdict = rules.ranking(one_batch({"lamb": 0.9}), ["lamb", "sgd"], 0.01, noise=1.0)
    assert verdict.outcome == I and "none for sgd" in verdict.detail


@pytest.mark.parametrize(("scores", "std", "expected"), [
    ({"sgd": 0.895, "adam": 0.7, "lamb": 0.9}, math.nan, H),
    ({"sgd": 0.80, "adam": 0.7, "lamb": 0.9}, math.nan, F),
    ({"sgd": 0.86, "adam": 0.7, "lamb": 0.9}, 0.05, I),
    ({"sgd": None, "adam": None, "lamb": None}, math.nan, I),
])
def test_matches(scores: dict, std: float, expected: str) -> None:
    assert rules.matches(one_batch(scores, std), ["sgd", "adam"], "lamb", 0.01, noise=1.0).outcome == expected


# --- layer-ratio rules ------------------------------------------------------------------------------------------

def ratios(per_seed: dict[int, dict[float, dict[str, float]]]) -> pd.DataFrame:
    """seed → epoch → layer → ‖w‖/‖∇w‖."""
    rows = [{"seed": seed, "layer": layer, "kind": "bias" if layer.endswith(".bias") else "weight", "epoch": epoch,
             "ratio": r} for seed, epochs in per_seed.items() for epoch, layers in epochs.items()
            for layer, r in layers.items()]
    return pd.DataFrame(rows)


WIDE = {"conv1.weight": 5.0, "conv1.bias": 400.0, "fc.weight": 2000.0, "fc.bias": 1.0}
NARROW = {"conv1.weight": 5.0, "conv1.bias": 6.0, "fc.weight": 8.0, "fc.bias": 7.0}


@pytest.mark.parametrize(("data", "expected"), [
    (ratios({0: {0.0: WIDE}, 1: {0.0: WIDE}}), H),
    (ratios({0: {0.0: NARROW}, 1: {0.0: NARROW}}), F),
    (ratios({0: {0.0: WIDE}, 1: {0.0: NARROW}}), I),
    (ratios({0: {0.0: {"conv1.weight": math.inf}}}), I),
])
def test_ratio_spread(data: pd.DataFrame, expected: str) -> None:
    assert rules.ratio_spread(data, 1.0).outcome == expected


@pytest.mark.parametrize(("data", "expected"), [
    (ratios({0: {0.0: WIDE}}), H),
    (ratios({0: {0.0: NARROW}}), F),
    (ratios({0: {0.0: {"conv1.weight": 5.0, "fc.weight": 50.0}}}), I),  # no biases (a BN model)
])
def test_weight_bias_gap(data: pd.DataFrame, expected: str) -> None:
    assert rules.weight_bias_gap(data, 1.0).outcome == expected


def falling(factor: float) -> dict[float, dict[str, float]]:
    return {0.0: WIDE, 5.0: {k: v / factor for k, v in WIDE.items()}}


@pytest.mark.parametrize(("data", "expected"), [
    (ratios({0: falling(4), 1: falling(3)}), H),
    (ratios({0: falling(0.5), 1: falling(1.2)}), F),
    (ratios({0: falling(4), 1: falling(1.0)}), I),   # seeds disagree
    (ratios({0: {0.0: WIDE}}), I),                   # the run never reached epoch 5
])
def test_ratio_falls(data: pd.DataFrame, expected: str) -> None:
    assert rules.ratio_falls(data, 5.0, 2.0).outcome == expected


# --- specs and published data -----------------------------------------------------------------------------------

def spec_data() -> dict:
    return read_yaml(SPECS / "lars-batch-scaling" / "table.yaml")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(colour="red"), "unknown key 'colour'; allowed keys here: claims, dashboard"),
    (lambda d: d["claims"][0].update(rule="wins"), "key 'claims[0].rule': unknown rule 'wins'; allowed rules: degrades"),
    (lambda d: d["claims"][0].update(tolerance_pts=2), "unknown key 'claims[0].tolerance_pts'; allowed keys here: "
                                                       "claim, id, published, rule, series, tolerance"),
    (lambda d: d["claims"][0].update(series="sgd"), "key 'claims[0]': unknown series 'sgd'; allowed: sgd-nobn"),
    (lambda d: d["claims"][0].update(published=["x"]), "unknown value 'x'; allowed (from the published data"),
    (lambda d: d["claims"].append({"id": "x", "claim": "c", "rule": "ratio_spread"}),
     "'ratio_spread' does not apply to numbers.kind batch_cells"),
    (lambda d: d["numbers"].update(display="fraction"), "key 'numbers.display'"),
    (lambda d: d["profiles"].pop("gpu"), "missing required key 'profiles.gpu'"),
])
def test_spec_errors_name_the_file_key_and_allowed_values(edit, message: str) -> None:
    data = spec_data()
    edit(data)
    with pytest.raises(ConfigError) as err:
        validate_spec(data, "my_table.yaml")
    assert str(err.value).startswith("my_table.yaml: ") and message in str(err.value), str(err.value)


def test_spec_paths_are_resolved_against_the_spec(tmp_path: Path) -> None:
    folder = tmp_path / "lars-batch-scaling"
    folder.mkdir()
    (folder / "table.yaml").write_text(yaml.safe_dump({**spec_data(), "dashboard": "nowhere.yaml"}))
    table = load_table(folder / "table.yaml")
    with pytest.raises(ConfigError, match=r"key 'dashboard': no such file .*nowhere.yaml"):
        table.dashboard_path()
    with pytest.raises(ConfigError, match="key 'profiles.cpu.sweep': no such file"):
        table.sweep_path("cpu")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "table.yaml").write_text(yaml.safe_dump(spec_data()))
    with pytest.raises(ConfigError, match="must be the folder's name, 'other'"):
        load_table(tmp_path / "other" / "table.yaml")


def test_shipped_specs_and_sweeps_are_valid() -> None:
    from largebatch.sweep import load_sweep

    assert tuple(sorted(find_tables(SPECS))) == tuple(sorted(TABLES))
    for path in find_tables(SPECS).values():
        table = load_table(path)
        for profile in ("smoke", "cpu", "gpu"):
            load_sweep(table.sweep_path(profile))
        table.dashboard_path()


def test_published_data_cites_every_value_and_flags_unverified_ones() -> None:
    published = load_published()
    assert set(TABLES) == set(published.tables)
    for table in TABLES:
        for value in published.values(table):
            assert published.cite(value).startswith("arXiv:") and value.where
            assert value.text().endswith("(UNVERIFIED)") != value.verified
    assert published.values("lamb-bert-scaling")[0].text() == "90.395"


def test_published_data_errors_name_the_key() -> None:
    data = read_yaml(data_file())
    data["tables"]["goyal-linear-scaling"][0]["source"] = "nobody2020"
    with pytest.raises(ConfigError, match="unknown source 'nobody2020'; allowed: lars2017"):
        validate_published(data, "published.yaml")
    data = read_yaml(data_file())
    data["tables"]["goyal-linear-scaling"][0]["year"] = 2017
    with pytest.raises(ConfigError, match=r"unknown key 'tables.goyal-linear-scaling\[0\].year'; allowed keys here: "
                                          "batch_size, id, quantity, source, unit, value, verified, where"):
        validate_published(data, "published.yaml")


def test_published_data_is_package_data() -> None:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["largebatch"]
    relative = data_file().relative_to(Path(data_file()).parents[1]).as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in setup), (relative, setup)


# --- CLI --------------------------------------------------------------------------------------------------------

def test_list_shows_tables_sources_and_runtimes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--list", "--specs", str(SPECS)]) == 0
    out = capsys.readouterr().out
    for table in TABLES:
        assert f"| {table} |" in out
    assert "arXiv:1708.03888" in out and "arXiv:2102.06356" in out and "cpu: ~" in out and "gpu: ~" in out


def test_unknown_table_and_profile_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "alexnet", "--specs", str(SPECS)]) == 2
    assert "unknown table 'alexnet'; tables in" in capsys.readouterr().err
    assert main(["reproduce"]) == 2
    assert "give a TABLE, or --list" in capsys.readouterr().err
    assert spec_dir(None).is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("table", TABLES)
def test_smoke_profile_end_to_end(table: str, ray_cluster: None, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = ["reproduce", table, "--profile", "smoke", "--runs-root", str(tmp_path), "--specs", str(SPECS), "--no-png"]
    assert main(args) == 0
    out = capsys.readouterr().out
    spec = load_table(SPECS / table / "table.yaml").spec
    claims = out.split("### Claims")[1]
    assert out.count("**holds**") + out.count("**does not hold**") + out.count("**inconclusive**") == len(spec.claims)
    for claim in spec.claims:
        assert claim.claim in claims
    assert "### Published" in out and "arXiv:" in out
    folder = tmp_path / f"repro-{table}-smoke"
    assert (folder / "dashboard" / "index.html").is_file() and (folder / "trials.json").is_file()
    assert main(args) == 0  # finished: reused without running anything
    assert "reusing its results" in capsys.readouterr().err


# --- our numbers from the results tables ------------------------------------------------------------------------

def test_batch_cells_take_the_best_trial_per_seed_and_count_divergence() -> None:
    from largebatch.analysis import Results
    from largebatch.reproduce.numbers import batch_cells
    from largebatch.reproduce.spec import Numbers, Series

    runs = pd.DataFrame({
        "run_id": list("abcdef"), "status": ["completed"] * 4 + ["diverged"] * 2,
        "optimizer.name": ["sgd"] * 4 + ["lars"] * 2, "batch_size": [32, 32, 32, 1024, 32, 1024],
        "seed": [0, 0, 1, 0, 0, 0], "eval.val_acc": [0.9, 0.8, 0.7, 0.6, math.nan, math.nan],
        "eval.test_acc": [0.88, 0.95, 0.72, 0.61, math.nan, math.nan], "diverged": [False] * 4 + [True] * 2,
    })
    series = [Series(id=n, label=n, where={"optimizer.name": [n]}) for n in ("sgd", "lars")]
    table = batch_cells(Results(runs, pd.DataFrame(), pd.DataFrame()), series, Numbers(kind="batch_cells"))
    sgd32 = table.set_index(["series", "batch_size"]).loc[("sgd", 32)]
    assert sgd32["mean"] == pytest.approx((0.88 + 0.72) / 2)  # selected by val acc (0.9, not 0.8), then test acc
    assert (sgd32["seeds"], sgd32["trials"], sgd32["diverged"]) == (2, 3, 0)
    lars = table[table["series"] == "lars"]
    assert list(lars["diverged"]) == [1, 1] and lars["mean"].isna().all()
    assert rules.degrades(table, "lars", 0.02, 1.0).outcome == I


def test_layer_ratios_at_init_and_completed_epochs_only() -> None:
    from largebatch.analysis import Results
    from largebatch.reproduce.numbers import layer_ratios

    runs = pd.DataFrame({"run_id": ["r"], "status": ["completed"], "seed": [3], "plan.steps_per_epoch": [10]})
    layers = pd.DataFrame([{"run_id": "r", "step": step, "layer": layer, "weight_norm": 2.0, "grad_norm": g}
                           for step, g in ((1, 0.01), (10, 0.1), (20, 1.0)) for layer in ("fc.weight", "fc.bias")])
    table = layer_ratios(Results(runs, pd.DataFrame(), layers), [1.0, 2.0, 5.0])
    assert sorted(set(table["epoch"])) == [0.0, 1.0, 2.0]  # epoch 5 was never reached
    assert table.set_index(["epoch", "layer"]).loc[(1.0, "fc.weight"), "ratio"] == pytest.approx(20.0)
    assert set(table["kind"]) == {"weight", "bias"} and set(table["seed"]) == {3}
