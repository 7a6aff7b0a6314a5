"""``largebatch sweep`` as a user runs it: interrupted with Ctrl-C then resumed, and on an existing two-node
Ray cluster given by ``--address``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from largebatch.records.runs import runs_table

EXPERIMENT = str(Path(__file__).parents[1] / "experiments" / "mnist1d_cnn.yaml")
RAY = str(Path(sys.executable).with_name("ray"))

pytestmark = pytest.mark.slow


def sweep_file(tmp_path: Path, name: str, batch_sizes: list[int], samples: int, epochs: int) -> Path:
    data = {"name": name, "experiment": EXPERIMENT, "budget": {"epochs": epochs}, "search": {"algorithm": "random"},
            "overrides": [f"data.options.num_samples={samples}", "model.options.channels=8", "optimizer.options={}"],
            "grid": {"batch_size": batch_sizes}, "max_concurrent": 1 if name == "resume" else None}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def ray_env() -> Iterator[dict[str, str]]:
    """The environment for commands that start Ray: its own short session folder, Ray's default authentication."""
    with tempfile.TemporaryDirectory(prefix="lbc-", dir="/tmp") as temp:
        yield {**os.environ, "RAY_TMPDIR": temp, "CI": "1"}


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "largebatch", "sweep", *args]


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def states(trials_file: Path) -> dict[str, str]:
    try:
        return {k: v["state"] for k, v in json.loads(trials_file.read_text()).items()}
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_interrupted_sweep_resumes_only_what_is_unfinished(tmp_path: Path, ray_env: dict[str, str]) -> None:
    path = sweep_file(tmp_path, "resume", [32, 64, 128], samples=2000, epochs=3)
    runs_root = tmp_path / "runs"
    folder = runs_root / "resume"
    command = sweep_command(str(path), "--runs-root", str(runs_root))
    process = subprocess.Popen(command, env=ray_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: "completed" in states(folder / "trials.json").values(), 240, "no trial completed")
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=120)[0]
    finally:
        process.kill()
    assert process.returncode == 130 and "--resume" in output, output
    before = states(folder / "trials.json")
    done = [trial for trial, state in before.items() if state == "completed"]
    assert 1 <= len(done) < 3
    files = {run.name: (run / "metrics.csv").read_bytes() for run in (folder / "runs").iterdir()
             if (run / "metrics.csv").exists()}

    resumed = subprocess.run([*command, "--resume"], env=ray_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(states(folder / "trials.json").values()) == {"completed"} and len(states(folder / "trials.json")) == 3
    runs = runs_table(folder / "runs")
    assert len(runs) == 3 and set(runs["status"]) == {"completed"}
    assert (runs["steps"] == runs["plan.total_steps"]).all()
    for run_id, content in files.items():
        after = (folder / "runs" / run_id / "metrics.csv").read_bytes()
        assert after == content if run_id in done else after.startswith(content)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def two_node_cluster(tmp_path: Path, ray_env: dict[str, str]) -> Iterator[str]:
    """A head and a worker node of 1 CPU each, started with ``ray start --block`` and stopped by their PIDs
    (``ray stop`` would stop every Ray cluster of this user on the machine)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--block"]
    logs = [open(tmp_path / f"{node}.log", "w") for node in ("head", "worker")]
    head = subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                             "--temp-dir", ray_env["RAY_TMPDIR"], *common], env=ray_env, stdout=logs[0],
                            stderr=subprocess.STDOUT)
    nodes = [head]
    try:
        wait_for(lambda: listening(port), 60, "the Ray head did not start")
        nodes.append(subprocess.Popen([RAY, "start", "--address", address, *common], env=ray_env, stdout=logs[1],
                                      stderr=subprocess.STDOUT))
        wait_for(lambda: "Ray runtime started" in (tmp_path / "worker.log").read_text(), 60, "no worker node")
        yield address
    finally:
        for node in reversed(nodes):
            node.terminate()
            node.wait(timeout=60)
        for log in logs:
            log.close()


def test_sweep_on_an_existing_cluster(tmp_path: Path, ray_env: dict[str, str], two_node_cluster: str) -> None:
    path = sweep_file(tmp_path, "remote", [32, 64], samples=800, epochs=1)
    done = subprocess.run(sweep_command(str(path), "--address", two_node_cluster, "--runs-root", str(tmp_path)),
                          env=ray_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"the Ray cluster at {two_node_cluster}" in done.stdout and "cluster: 2 CPU" in done.stdout
    assert "2 of 2 trials (2 completed)" in done.stdout
    status = subprocess.run(sweep_command("status", "remote", "--root", str(tmp_path)), capture_output=True,
                            text=True, check=True).stdout
    assert "sweep remote: 2 trials (2 completed)" in status
