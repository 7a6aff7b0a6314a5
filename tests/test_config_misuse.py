"""Misuse caught early with one line: YAML 1.1 words, duplicate keys, model options of the wrong type, more
devices than the machine has, bad noise-scale flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from largebatch.cli import main
from largebatch.core.errors import ConfigError
from largebatch.core.yaml_io import read_yaml
from largebatch.core.yaml_io import load_yaml
from largebatch.train.config import load_experiment
from largebatch.train.runner import available_devices, train

EXPERIMENT = Path(__file__).parents[1] / "experiments" / "mnist1d_cnn.yaml"


@pytest.mark.parametrize("word", ["on", "off", "On", "OFF", "yes", "no"])
def test_yaml_11_words_stay_words(word: str) -> None:
    assert load_yaml(f"key: {word}") == {"key": word}


def test_yaml_12_booleans_and_other_scalars_are_unchanged() -> None:
    data = load_yaml("a: true\nb: False\nc: 3\nd: 1.5e-3\ne: null\nf: [1, two]\n")
    assert data == {"a": True, "b": False, "c": 3, "d": 1.5e-3, "e": None, "f": [1, "two"]}


def test_on_off_reach_string_fields_as_words_and_bool_fields_as_booleans(tmp_path: Path) -> None:
    config = load_experiment(EXPERIMENT, ["logging.progress_bar=on", "tracking.wandb.mode=disabled",
                                          "trainer.deterministic=yes", "probes.noise_scale.enabled=off"])
    assert config.logging.progress_bar == "on" and config.trainer.deterministic is True
    assert config.probes.noise_scale.enabled is False
    assert load_experiment(EXPERIMENT, ["logging.progress_bar=off"]).logging.progress_bar == "off"
    written = tmp_path / "e.yaml"
    written.write_text("name: e\ndata: {name: digits}\nmodel: {name: mlp}\nbatch_size: 8\nbudget: {steps: 1}\n"
                       "logging: {progress_bar: off}\n")
    assert load_experiment(written).logging.progress_bar == "off"


def test_tracking_wandb_mode_off_means_disabled() -> None:
    assert load_experiment(EXPERIMENT, ["tracking.wandb.mode=off"]).tracking.wandb.mode == "disabled"
    with pytest.raises(ConfigError, match=r"tracking\.wandb\.mode.*'offline', 'online' or 'disabled'.*got 'on'"):
        load_experiment(EXPERIMENT, ["tracking.wandb.mode=on"])


def test_a_duplicate_key_is_refused_naming_key_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: x\noptimizer:\n  name: lamb\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError) as error:
        read_yaml(path)
    assert str(error.value) == f"{path}: duplicate key 'lr' on line 5 (first given on line 4)"


def test_a_duplicate_key_in_a_set_value_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"--set .*duplicate key 'channels' on line 1"):
        load_experiment(EXPERIMENT, ["model.options={channels: 8, channels: 9}"])


def test_merge_keys_may_still_be_overridden() -> None:
    assert load_yaml("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  x: 3\n")["use"] == {"x": 3, "y": 2}


def test_a_model_option_of_the_wrong_type_names_option_and_type(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(EXPERIMENT), "--runs-root", str(tmp_path), "--set", "model.options={channels: abc}",
                 "budget={steps: 1}", "tracking.wandb.mode=disabled"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "model 'cnn1d': option 'channels' expects int (got 'abc'" in err


def test_more_devices_than_the_machine_has_is_refused(tmp_path: Path) -> None:
    available, kind = available_devices(load_experiment(EXPERIMENT))
    config = load_experiment(EXPERIMENT, [f"trainer.devices={available + 1}", f"tracking.runs_root={tmp_path}"])
    with pytest.raises(ConfigError, match=rf"trainer.devices={available + 1}: this machine has {available} {kind}"):
        train(config)
    assert not any(tmp_path.iterdir())  # refused before a run directory exists


@pytest.mark.parametrize(("flags", "problem"), [
    (["--every", "-3"], "--every must be a whole number of steps >= 1 (got -3)"),
    (["--steps", "0"], "--steps must be a whole number of steps >= 1 (got 0)"),
    (["--ema", "1.5"], "--ema must lie in [0, 1)"),
])
def test_noise_scale_flags_out_of_range_give_one_line(flags: list[str], problem: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["noise-scale", str(EXPERIMENT), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"largebatch noise-scale: {problem}") and err.count("\n") == 1
