"""Sweeps on a real local Ray cluster (2 CPUs, shared by this module): end to end with a failing and a diverging
trial, Optuna + ASHA, a data-parallel trial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from largebatch.cli import main
from largebatch.records.runs import runs_table
from largebatch.records.store import collect_provenance
from largebatch.sweep import SweepFolder, load_sweep, sweep_table

EXPERIMENT = str(Path(__file__).parents[1] / "experiments" / "mnist1d_cnn.yaml")
TINY = ["data.options.num_samples=800", "model.options.channels=8", "optimizer.options={}",
        "logging.telemetry_every_n_steps=4", "tracking.wandb.mode=offline"]

pytestmark = pytest.mark.slow


def make_sweep(tmp_path: Path, **keys):
    data = {"name": "tiny", "experiment": EXPERIMENT, "overrides": TINY, "budget": {"epochs": 1},
            "search": {"algorithm": "random"}, **keys}
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    sweep = load_sweep(path)
    return sweep, SweepFolder.of(tmp_path / "runs", sweep.name)


def run(sweep, folder):
    from largebatch.sweep.launch import run_sweep

    return run_sweep(sweep, folder, echo=lambda *_: None)


def test_tiny_sweep_end_to_end_with_a_failing_and_a_diverging_trial(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep, folder = make_sweep(tmp_path, max_failures=1, grid={"setting": [
        {"batch_size": 32}, {"batch_size": 64},
        {"optimizer.name": "sgd", "optimizer.lr": 1.0e6},                  # diverges: a result, not retried
        {"optimizer.name": "sgd", "optimizer.options": {"momentum": -1.0}},  # raises in training: retried once
    ]})
    outcome = run(sweep, folder)
    assert not outcome.interrupted and outcome.counts() == {"completed": 2, "diverged": 1, "failed": 1}
    assert sorted(entry["failures"] for entry in outcome.trials.values()) == [0, 0, 0, 2]
    runs = runs_table(folder.runs_dir)
    assert set(runs["run_id"]) == set(outcome.trials) and set(runs["tracking.wandb.group"]) == {"tiny"}
    assert sorted(runs["status"]) == ["completed", "completed", "diverged", "failed"]
    assert "momentum" in runs.set_index("status").loc["failed", "error"]
    assert all(Path(p).parent == folder.runs_dir and Path(p).is_absolute() for p in runs["path"])
    assert all(list((Path(p) / "wandb").glob("offline-run-*")) for p in runs["path"])
    driver = collect_provenance()  # recorded once by the sweep's driver, not by Ray's worker processes
    for path in runs["path"]:
        provenance = json.loads((Path(path) / "provenance.json").read_text())
        assert {k: provenance[k] for k in ("command", "cwd", "git_commit", "git_dirty")} == {
            k: driver[k] for k in ("command", "cwd", "git_commit", "git_dirty")}
        assert provenance["sweep"] == "tiny" and provenance["sweep_dir"] == str(folder.root)
    assert {"sweep.yaml", "trials.json", "ray", "runs"} <= {p.name for p in folder.root.iterdir()}
    table = sweep_table(folder).set_index("run_id")
    assert (table["state"] == runs.set_index("run_id")["status"].reindex(table.index)).all()
    assert (table.loc[table["state"] == "completed", "final.val/acc"] > 0).all()
    assert main(["sweep", "status", "tiny", "--root", str(folder.root.parent)]) == 0
    shown = capsys.readouterr().out
    assert "sweep tiny: 4 trials (2 completed, 1 diverged, 1 failed)" in shown and "optimizer.lr" in shown
    script = "import sys, largebatch.sweep.command, largebatch.sweep.status; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", script], check=True)


def test_optuna_search_with_asha(ray_cluster: None, tmp_path: Path) -> None:
    sweep, folder = make_sweep(
        tmp_path, name="asha", grid={"batch_size": [32, 64]}, num_samples=2, budget={"epochs": 3},
        sample={"optimizer.lr": {"distribution": "loguniform", "low": 1e-3, "high": 0.1}},
        search={"algorithm": "optuna", "sampler": "tpe"}, max_concurrent=2,
        scheduler={"name": "asha", "time_attr": "epochs", "grace_period": 1, "reduction_factor": 2},
    )
    outcome = run(sweep, folder)
    assert len(outcome.trials) == 4 and set(outcome.counts()) <= {"completed", "stopped"}
    study = optuna.load_study(study_name="asha", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder.journal))))
    assert [t.params["batch_size"] for t in study.trials] == [32, 64, 32, 64]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for trial_id, entry in outcome.trials.items():
        summary = json.loads((folder.runs_dir / trial_id / "summary.json").read_text())
        if entry["state"] == "completed":
            assert summary["status"] == "completed" and entry["epochs"] == 3
            assert summary["steps"] == summary["plan"]["total_steps"]
        else:  # stopped by ASHA at a rung: the run was interrupted (or killed with its actor before saying so)
            assert summary["status"] in ("interrupted", "running") and 1 <= entry["epochs"] < 3


def test_data_parallel_trial_with_two_cpu_workers(ray_cluster: None, tmp_path: Path) -> None:
    sweep, folder = make_sweep(tmp_path, name="ddp", grid={"batch_size": [64]}, devices_per_trial=2,
                               resources={"cpu": 1, "gpu": 0})
    outcome = run(sweep, folder)
    assert outcome.counts() == {"completed": 1} and [e["failures"] for e in outcome.trials.values()] == [0]
    (run_dir,) = folder.runs_dir.iterdir()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["trainer"]["devices"] == 2 and config["plan"]["micro_batch"] == 32
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert "val/acc" in set(metrics["name"])
