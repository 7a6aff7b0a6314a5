"""Resuming a sweep from its folder alone, without Ray: the plan rebuilt from run directories and ``trials.json``,
the Optuna study rebuilt from the plan (linked to the runs), random search by slot, and the watchdog that takes
a local cluster down with its driver."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import psutil
import pytest
import yaml

from largebatch.records.store import RunStore
from largebatch.sweep import SweepFolder, load_sweep, sweep_table
from largebatch.sweep.plan import RUN_ID, plan_trials, points, slot_of
from largebatch.sweep.search import PlannedSearch, random_params, rebuild_study

EXPERIMENT = str(Path(__file__).parents[1] / "experiments" / "mnist1d_cnn.yaml")
PLAN = {"steps_per_epoch": 4, "batch_size": 32}


def make_sweep(tmp_path: Path, **keys):
    data = {"name": "sw", "experiment": EXPERIMENT, "grid": {"batch_size": [32, 64]}, "num_samples": 2,
            "sample": {"optimizer.lr": {"distribution": "loguniform", "low": 1e-3, "high": 0.1}}, **keys}
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    sweep = load_sweep(path)
    folder = SweepFolder.of(tmp_path / "runs", sweep.name)
    folder.write_sweep(sweep)
    return sweep, folder


def add_run(folder: SweepFolder, run_id: str, params: dict, index_state: str, status: str | None,
            acc: float = 0.5) -> None:
    """A trial as a killed sweep leaves it: its index entry and (unless ``status`` is None) its run directory."""
    trials = folder.read_trials()
    trials[run_id] = {"state": index_state, "params": params, "failures": 0}
    folder.write_trials(trials)
    if status is None:
        return
    store = RunStore.create(folder.runs_dir, "sw", run_id=run_id)
    store.write_config({"name": "sw", "batch_size": params["batch_size"],  # what a readable run's config holds
                        "optimizer": {"name": "sgd", "lr": params["optimizer.lr"]}})
    if status != "running":
        store.write_summary(status=status, final={"val/acc": acc if status == "completed" else math.nan},
                            steps=8, plan=PLAN)


def test_plan_keeps_finished_trials_and_reruns_the_others_in_their_own_run_directories(tmp_path: Path) -> None:
    sweep, folder = make_sweep(tmp_path)
    add_run(folder, "sw-0-aaaaaa", {"batch_size": 32, "optimizer.lr": 0.01}, "completed", "completed", 0.7)
    add_run(folder, "sw-1-bbbbbb", {"batch_size": 64, "optimizer.lr": 0.02}, "running", "completed", 0.6)  # index lags
    add_run(folder, "sw-2-cccccc", {"batch_size": 32, "optimizer.lr": 0.03}, "running", "running")  # killed mid-run
    before = {p.name: p.read_bytes() for p in (folder.runs_dir / "sw-0-aaaaaa").iterdir()}

    plan = plan_trials(sweep, folder)

    assert [(f.run_id, f.state, f.value) for f in plan.finished] == [
        ("sw-0-aaaaaa", "completed", 0.7), ("sw-1-bbbbbb", "completed", 0.6)]
    assert [(t.slot, t.run_id, t.params) for t in plan.todo] == [
        (2, "sw-2-cccccc", {"batch_size": 32, "optimizer.lr": 0.03}), (3, None, None)]
    assert plan.todo[1].cell == {"batch_size": 64}
    states = {run_id: entry["state"] for run_id, entry in folder.read_trials().items()}
    assert states == {"sw-0-aaaaaa": "completed", "sw-1-bbbbbb": "completed", "sw-2-cccccc": "pending"}
    assert folder.read_trials()["sw-1-bbbbbb"]["metric"] == 0.6
    assert {p.name: p.read_bytes() for p in (folder.runs_dir / "sw-0-aaaaaa").iterdir()} == before


def test_status_shows_a_finished_runs_own_outcome_before_the_sweep_resumes(tmp_path: Path) -> None:
    sweep, folder = make_sweep(tmp_path)
    add_run(folder, "sw-0-aaaaaa", {"batch_size": 32, "optimizer.lr": 0.01}, "running", "completed")  # index lags
    add_run(folder, "sw-1-bbbbbb", {"batch_size": 64, "optimizer.lr": 0.02}, "running", "running")
    table = sweep_table(folder).set_index("run_id")
    assert table["state"].to_dict() == {"sw-0-aaaaaa": "completed", "sw-1-bbbbbb": "running"}


def test_plan_keeps_driver_verdicts_and_places_old_trial_ids_by_cell(tmp_path: Path) -> None:
    sweep, folder = make_sweep(tmp_path)
    add_run(folder, "6ab1c_00000", {"batch_size": 64, "optimizer.lr": 0.01}, "failed", "failed")  # Tune-era id
    add_run(folder, "6ab1c_00001", {"batch_size": 64, "optimizer.lr": 0.02}, "stopped", "interrupted")
    add_run(folder, "sw-0-dddddd", {"batch_size": 32, "optimizer.lr": 0.05}, "completed", "diverged")
    plan = plan_trials(sweep, folder)
    outcomes = {f.run_id: (f.state, f.value) for f in plan.finished}
    assert outcomes["6ab1c_00000"] == ("failed", None) and outcomes["sw-0-dddddd"] == ("diverged", -math.inf)
    assert outcomes["6ab1c_00001"] == ("stopped", -math.inf)  # stopped without a recorded value: the worst
    assert [(t.slot, t.cell) for t in plan.todo] == [(2, {"batch_size": 32})]  # both 64-cells are taken
    assert folder.read_trials()["sw-0-dddddd"]["state"] == "diverged"


def test_run_ids_name_their_slot(tmp_path: Path) -> None:
    sweep, _ = make_sweep(tmp_path, name="my-sweep", num_samples=6)
    assert len(points(sweep)) == 12
    assert slot_of("my-sweep-07-abcdef", sweep) == 7 and slot_of("other-07-abcdef", sweep) is None
    assert slot_of("6ab1c_00007", sweep) is None


def test_random_search_draws_each_slot_from_its_own_seed(tmp_path: Path) -> None:
    sweep, folder = make_sweep(tmp_path, search={"algorithm": "random", "seed": 3}, sample={
        "optimizer.lr": {"distribution": "loguniform", "low": 1e-3, "high": 0.1},
        "seed": {"distribution": "int", "low": 1, "high": 4, "log": True},
        "model.options.channels": {"distribution": "choice", "values": [4, 8]}})
    plan = plan_trials(sweep, folder)
    drawn = [random_params(sweep, todo) for todo in plan.todo]
    assert drawn == [random_params(sweep, todo) for todo in reversed(plan.todo)][::-1]  # order does not matter
    assert len({d["optimizer.lr"] for d in drawn}) == 4 and all(1e-3 <= d["optimizer.lr"] <= 0.1 for d in drawn)
    assert all(1 <= d["seed"] <= 4 and d["model.options.channels"] in (4, 8) for d in drawn)
    assert [d["batch_size"] for d in drawn] == [32, 64, 32, 64]
    searcher = PlannedSearch(sweep, folder, plan.todo, None)
    handed = [searcher.suggest(f"t{i}") for i in range(5)]
    assert [{k: v for k, v in h.items() if k != RUN_ID} for h in handed[:4]] == drawn
    assert [slot_of(h[RUN_ID], sweep) for h in handed[:4]] == [0, 1, 2, 3] and handed[4] == "FINISHED"


def load(folder: SweepFolder) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder.journal)))
    return optuna.load_study(study_name="sw", storage=storage)


def test_study_is_rebuilt_from_the_plan_and_links_each_trial_to_its_run(tmp_path: Path) -> None:
    sweep, folder = make_sweep(tmp_path)
    add_run(folder, "sw-0-aaaaaa", {"batch_size": 32, "optimizer.lr": 0.01}, "completed", "completed", 0.7)
    add_run(folder, "sw-1-bbbbbb", {"batch_size": 64, "optimizer.lr": 0.02}, "failed", "failed")
    add_run(folder, "sw-2-cccccc", {"batch_size": 32, "optimizer.lr": 0.03}, "running", "running")
    folder.journal.write_text('{"op_code": 0, "worker_id": "stale", "study_name": "sw", "directions": [1]}\n')
    plan = plan_trials(sweep, folder)
    study = rebuild_study(sweep, folder, plan.finished, resume=True)
    searcher = PlannedSearch(sweep, folder, plan.todo, study)
    again, new = searcher.suggest("t0"), searcher.suggest("t1")
    assert again == {"batch_size": 32, "optimizer.lr": 0.03, RUN_ID: "sw-2-cccccc"}  # its own parameters and run
    assert new["batch_size"] == 64 and slot_of(new[RUN_ID], sweep) == 3
    searcher.on_trial_complete("t0", {"val/acc": 0.9})
    searcher.on_trial_complete("t1", None, error=True)
    trials = load(folder).trials
    assert [(t.state.name, t.value) for t in trials] == [("COMPLETE", 0.7), ("FAIL", None), ("COMPLETE", 0.9),
                                                        ("FAIL", None)]
    assert [t.user_attrs["run_id"] for t in trials] == ["sw-0-aaaaaa", "sw-1-bbbbbb", "sw-2-cccccc", new[RUN_ID]]
    assert all(t.user_attrs["run_dir"] == str(folder.runs_dir / t.user_attrs["run_id"]) for t in trials)
    assert trials[3].params["batch_size"] == 64 and 1e-3 <= trials[3].params["optimizer.lr"] <= 0.1
    assert not folder.journal.with_name("optuna.journal.new").exists()


def test_a_shared_storage_refuses_another_sweeps_study_and_replaces_its_own_on_resume(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    sweep, folder = make_sweep(tmp_path, storage=url)
    optuna.create_study(storage=url, study_name="sw").enqueue_trial({"batch_size": 32})
    with pytest.raises(FileExistsError, match="already exists"):
        rebuild_study(sweep, folder, [], resume=False)
    assert len(rebuild_study(sweep, folder, [], resume=True).trials) == 0


WATCHED_DRIVER = """
import subprocess, sys, time
from largebatch.sweep.cluster import watched_processes
with watched_processes() as watchdog:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print(watchdog.pid, child.pid, flush=True)
    time.sleep(1.5)  # the watchdog records the child (it polls every 0.5 s)
    if sys.argv[1] == "killed":
        print("recorded", flush=True)
        time.sleep(300)
"""


@pytest.mark.parametrize("ending", ["killed", "normal"])
def test_the_watchdog_kills_what_the_driver_started_however_it_ends(ending: str) -> None:
    """A child left running (a Ray agent, say) dies with the driver, by SIGKILL or at the end of the block."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "platform")}
    driver = subprocess.Popen([sys.executable, "-c", WATCHED_DRIVER, ending], stdout=subprocess.PIPE, text=True,
                              env=env, start_new_session=True)
    watchdog, child = (psutil.Process(int(pid)) for pid in driver.stdout.readline().split())
    if ending == "killed":
        assert driver.stdout.readline() == "recorded\n"
        driver.send_signal(signal.SIGKILL)
    assert driver.wait(timeout=60) == (-signal.SIGKILL if ending == "killed" else 0)
    gone, alive = psutil.wait_procs([child, watchdog], timeout=30)
    assert not alive
