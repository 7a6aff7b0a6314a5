"""``largebatch sweep`` under attack: a sweep killed with SIGKILL at five different moments (then a trial worker
killed too) resumes each time to the end state of an uninterrupted sweep, with no Ray process outliving any kill;
the uninterrupted sweep's cluster listens on loopback only, with Ray's token authentication, and is gone after the
command; a sweep stopped by SIGTERM records its trial ``interrupted`` with a complete W&B mirror, and resumes."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import psutil
import pytest
import yaml

EXPERIMENT = str(Path(__file__).parents[1] / "experiments" / "mnist1d_cnn.yaml")
RUN_FILES = ("config.yaml", "provenance.json", "summary.json", "metrics.csv", "layers.csv")
REPO = Path(__file__).parents[1]
OVERRIDES = ["data.options.num_samples=800", "model.options.channels=8", "optimizer.options={}",
             "tracking.wandb.mode=disabled"]  # tiny trials; no W&B mirror, except where a test turns it on

pytestmark = pytest.mark.slow


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    """The environment of a user's shell: Ray's own authentication default, a short session folder of its own."""
    with tempfile.TemporaryDirectory(prefix="lbf-", dir="/tmp") as temp:
        yield {**{k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}, "RAY_TMPDIR": temp, "CI": "1",
               "PYTHONPATH": str(REPO / "platform")}


def sweep_file(tmp_path: Path, name: str, **keys) -> Path:
    data = {"name": name, "experiment": EXPERIMENT, "budget": {"epochs": 2}, "max_concurrent": 1,
            "overrides": OVERRIDES,
            "grid": {"batch_size": [32, 64]}, "num_samples": 2,
            "sample": {"optimizer.lr": {"distribution": "loguniform", "low": 1e-3, "high": 0.1}}, **keys}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def launch(path: Path, runs_root: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "largebatch", "sweep", str(path), "--runs-root", str(runs_root),
                             *extra], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def tree(process: subprocess.Popen[str]) -> list[psutil.Process]:
    try:
        root = psutil.Process(process.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}: {process.stdout.read()}")
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def trials(folder: Path) -> dict[str, dict]:
    try:
        return json.loads((folder / "trials.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def summaries(folder: Path) -> dict[str, str]:
    found = {}
    for run in (folder / "runs").glob("*/summary.json"):
        try:
            found[run.parent.name] = json.loads(run.read_text())["status"]
        except (FileNotFoundError, json.JSONDecodeError):
            continue
    return found


def logged(folder: Path) -> int:
    """How many bytes of metrics the sweep's running trials have written."""
    sizes = [(folder / "runs" / run / "metrics.csv") for run, status in summaries(folder).items() if status == "running"]
    return sum(path.stat().st_size for path in sizes if path.exists())


def watch_sockets(process: subprocess.Popen[str]) -> tuple[list[psutil.Process], dict[str, set[str]], dict[str, str | None]]:
    """Until ``process`` ends, every 0.3 s: its processes, the addresses each process name listened on, and each
    one's ``RAY_AUTH_MODE``."""
    seen: dict[int, psutil.Process] = {}
    listening: dict[str, set[str]] = {}
    environments: dict[str, str | None] = {}
    while process.poll() is None:
        for proc in tree(process):
            try:
                ports = [c.laddr.ip for c in proc.net_connections("inet") if c.status == psutil.CONN_LISTEN]
                name = proc.name()
                environments.setdefault(name, proc.environ().get("RAY_AUTH_MODE"))
            except psutil.Error:
                continue
            seen[proc.pid] = proc
            listening.setdefault(name, set()).update(ports)
        time.sleep(0.3)
    return list(seen.values()), listening, environments


def assert_loopback_only_with_token_auth(listening: dict[str, set[str]], environments: dict[str, str | None]) -> None:
    """Ray's servers, agents and a trial worker were seen; every address any of them listened on is loopback;
    the cluster ran with Ray's token authentication."""
    names = set(listening)
    assert {"gcs_server", "raylet", "ray::RuntimeEnvAgent", "ray::DashboardAgent"} <= names, names
    assert any(name.startswith("ray::ImplicitFunc") for name in names), names
    addresses = {name: ips for name, ips in listening.items() if ips}
    assert {"gcs_server", "raylet", "ray::RuntimeEnvAgent"} <= set(addresses), addresses
    exposed = {name: ips for name, ips in addresses.items() if not all(map(is_loopback, ips))}
    assert not exposed, exposed
    assert environments["gcs_server"] == "token" and environments["raylet"] == "token"  # Ray's default: on


def assert_cluster_gone(processes: list[psutil.Process]) -> None:
    """Every process of the killed sweep (its Ray cluster, workers and agents) ends within a few seconds."""
    gone, alive = psutil.wait_procs(processes, timeout=20)
    assert not alive, [(p.pid, p.name()) for p in alive]


def kill_when(process: subprocess.Popen[str], condition: Callable[[], bool], what: str, group: bool = False,
              workers_too: bool = False) -> None:
    """SIGKILL the driver (or its whole process group; or its trial workers, then the driver, as a power cut would)
    as soon as ``condition`` holds; its cluster must follow."""
    wait_for(condition, process, 600, what)
    processes = tree(process)
    if workers_too:  # else a trial could finish in the moment the watchdog takes to tear the cluster down
        for worker in trial_workers(process):
            worker.kill()
    if group:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert_cluster_gone(processes[1:])


def finished_files(folder: Path) -> dict[tuple[str, str], bytes]:
    """The bytes of every finished run's files (which no resume may change)."""
    return {(run_id, name): (folder / "runs" / run_id / name).read_bytes()
            for run_id, status in summaries(folder).items() if status == "completed"
            for name in RUN_FILES if (folder / "runs" / run_id / name).exists()}


def end_state(folder: Path) -> tuple[Counter, Counter]:
    """How many trials each grid cell got, and how many trials ended in each state."""
    entries = trials(folder).values()
    return Counter(entry["params"]["batch_size"] for entry in entries), Counter(entry["state"] for entry in entries)


def trial_workers(process: subprocess.Popen[str]) -> list[psutil.Process]:
    """The Tune trial actors among the sweep's processes."""
    found = []
    for proc in tree(process):
        try:
            if proc.name().startswith("ray::ImplicitFunc"):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.timeout(1200)  # 7 launches of a local Ray cluster: ~2 min on 2 idle cores, far more on a shared machine
def test_a_sweep_killed_five_times_ends_like_an_uninterrupted_one_on_a_loopback_only_cluster(tmp_path: Path, env: dict[str, str]) -> None:
    path = sweep_file(tmp_path, "faults")
    folder = tmp_path / "runs" / "faults"
    started = time.monotonic()

    def done() -> int:
        return sum(status == "completed" for status in summaries(folder).values())

    def in_training() -> bool:  # a run has logged rows and is still running
        return any(status == "running" and (folder / "runs" / run / "metrics.csv").stat().st_size > 100
                   for run, status in summaries(folder).items() if (folder / "runs" / run / "metrics.csv").exists())

    kept: dict[tuple[str, str], bytes] = {}
    moments = [
        ("right after start", lambda: (folder / "sweep.yaml").exists(), False, False),
        ("during a trial (whole process group)", in_training, True, False),
        ("as a trial writes its summary", lambda: done() >= 1 and any(
            e["state"] == "running" for e in trials(folder).values()), False, False),
        ("between trials", lambda: done() >= 2 and not in_training(), False, False),
        ("near the end (the trial's worker too)", lambda: done() >= 3 and in_training(), False, True),
    ]
    for number, (what, condition, group, workers_too) in enumerate(moments):
        process = launch(path, tmp_path / "runs", env, *(["--resume"] if number else []))
        kill_when(process, condition, what, group, workers_too)
        assert all(finished_files(folder).get(key) == content for key, content in kept.items()), what
        kept = finished_files(folder)
    final = launch(path, tmp_path / "runs", env, "--resume")  # its trial's worker is killed too: Tune retries it
    wait_for(lambda: bool(trial_workers(final)), final, 600, "the last trial's worker started")
    (last,) = [run for run, entry in trials(folder).items() if entry["state"] != "completed"]
    for worker in trial_workers(final):
        worker.kill()
    output = final.communicate(timeout=600)[0]
    assert final.returncode == 0 and "4 of 4 trials (4 completed)" in output, output
    assert trials(folder)[last]["failures"] == 1
    assert all(finished_files(folder)[key] == content for key, content in kept.items())
    faulted = time.monotonic() - started

    reference = launch(path, tmp_path / "reference", env)  # uninterrupted; its sockets are watched on the way
    try:
        processes, listening, environments = watch_sockets(reference)
    finally:
        reference.kill()
    output = reference.stdout.read()
    assert reference.returncode == 0 and "loopback only" in output, output
    assert_loopback_only_with_token_auth(listening, environments)
    assert not [proc for proc in processes if proc.is_running()]  # the cluster is gone with the command
    assert end_state(folder) == end_state(tmp_path / "reference" / "faults")
    runs = sorted(p.name for p in (folder / "runs").iterdir())
    assert runs == sorted(trials(folder)) and len(runs) == 4  # unfinished trials continued in their own runs
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "optuna.journal")))
    study = optuna.load_study(study_name="faults", storage=storage)
    assert sorted(t.user_attrs["run_id"] for t in study.trials) == runs
    for trial in study.trials:
        summary = json.loads((folder / "runs" / trial.user_attrs["run_id"] / "summary.json").read_text())
        assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == summary["final"]["val/acc"]
        assert trial.params == trials(folder)[trial.user_attrs["run_id"]]["params"]
    print(f"5 kills and 6 launches: {faulted:.0f} s")


def stop_while_training(path: Path, runs_root: Path, env: dict[str, str], stop: signal.Signals, *extra: str) -> str:
    """Launch the one-trial sweep ``path``, send ``stop`` to its driver once the trial has logged more rows than
    it had before this launch, and return the driver's output once it has ended with 128 + ``stop``."""
    folder = runs_root / path.stem
    before = logged(folder)
    process = launch(path, runs_root, env, *extra)
    try:
        wait_for(lambda: logged(folder) > before + 2000, process, 240, "the trial trained")
        process.send_signal(stop)
        output = process.communicate(timeout=120)[0]
    finally:
        process.kill()
    assert process.returncode == 128 + stop, output
    assert output.splitlines()[-1] == (f"stopped by {stop.name}; finish it with: largebatch sweep {path} --resume "
                                       f"--runs-root {runs_root}")
    return output


@pytest.mark.timeout(400)
def test_a_stopped_sweep_records_its_trial_interrupted_with_all_its_wandb_rows_and_resumes(
    tmp_path: Path, env: dict[str, str]
) -> None:
    from largebatch.records.store import RunStore
    from largebatch.train.wandb_mirror import read_offline_history

    path = sweep_file(tmp_path, "stop", grid={"batch_size": [32]}, num_samples=1, sample={}, budget={"epochs": 10},
                      overrides=[*OVERRIDES, "logging.every_n_steps=1", "tracking.wandb.mode=offline"])
    folder = tmp_path / "runs" / "stop"
    stop_while_training(path, tmp_path / "runs", env, signal.SIGINT)  # Ctrl-C
    (run,) = (folder / "runs").iterdir()
    assert summaries(folder) == {run.name: "interrupted"} and trials(folder)[run.name]["state"] == "pending"
    metrics = RunStore.open(run).read_metrics()
    (mirror,) = run.glob("wandb/offline-run-*/run-*.wandb")
    assert len(read_offline_history(mirror)["train/loss"]) == (metrics["name"] == "train/loss").sum() > 0
    assert not (folder / "stop-requested").exists()

    stop_while_training(path, tmp_path / "runs", env, signal.SIGTERM, "--resume")  # a scheduler's stop
    assert summaries(folder) == {run.name: "interrupted"} and trials(folder)[run.name]["state"] == "pending"

    resumed = launch(path, tmp_path / "runs", env, "--resume")
    output = resumed.communicate(timeout=240)[0]
    assert resumed.returncode == 0 and "1 of 1 trials (1 completed)" in output, output
    assert summaries(folder) == {run.name: "completed"}
