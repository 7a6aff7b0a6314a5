"""Faults while a run is written, through ``largebatch train``: a full disk, a read-only runs root, a second
writer of the same run, SIGTERM; and resumes that would change a run (of a finished run, with ``--set``)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from largebatch.cli import main
from largebatch.records import store as store_module
from largebatch.records.store import RunBusyError, RunStore

ROOT = Path(__file__).parents[1]
EXPERIMENT = ROOT / "experiments" / "mnist1d_cnn.yaml"
TINY = ["data.options.num_samples=400", "model.options.channels=4", "budget={epochs: 2}",
        "tracking.wandb.mode=disabled", "logging.every_n_steps=1", "logging.telemetry_every_n_steps=1"]
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def train_cli(root: Path, *argv: str) -> int:
    return main(["train", str(EXPERIMENT), "--runs-root", str(root), *argv])


def only_run(root: Path) -> Path:
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    return run


class FillingFile:
    """A file on a disk with ``room`` bytes left: a flush past that fails with ENOSPC (no file name, as the OS
    says it), after writing out what fitted, which leaves a partial last line."""

    def __init__(self, file: Any, room: int) -> None:
        self.file, self.room = file, room

    def write(self, text: str) -> int:
        return self.file.write(text)

    def flush(self) -> None:
        self.file.flush()
        if self.file.tell() > self.room:
            self.file.buffer.raw.truncate(self.room)
            raise ENOSPC

    def close(self) -> None:
        self.file.close()


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """metrics.csv fills the disk after 3 kB; then summaries find no room for their temp copy
    (``disk["in_place"] = False``: nor in place)."""
    disk = {"full": False, "in_place": True}
    opened = store_module._Appender._open
    atomic, in_place = store_module.atomic_write_text, store_module._overwrite_text

    def open_filling(self: Any) -> Any:
        file = opened(self)
        return FillingFile(file, 3000) if self.path.name == "metrics.csv" else file

    def full_after_metrics(function: Any) -> Any:
        def write(path: Path, text: str) -> None:
            metrics = path.parent / "metrics.csv"
            if disk["full"] or metrics.exists() and metrics.stat().st_size >= 3000:
                disk["full"] = True
                if function is atomic or not disk["in_place"]:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) + ".tmp")
            function(path, text)
        return write

    monkeypatch.setattr(store_module._Appender, "_open", open_filling)
    monkeypatch.setattr(store_module, "atomic_write_text", full_after_metrics(atomic))
    monkeypatch.setattr(store_module, "_overwrite_text", full_after_metrics(in_place))
    return disk


def test_a_full_disk_ends_in_one_line_with_the_run_recorded_failed(
    full_disk: dict[str, bool], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_cli(tmp_path, "--set", *TINY) == 1
    run = only_run(tmp_path)
    err = capsys.readouterr().err
    assert err == (f"largebatch train: {run / 'metrics.csv'}: No space left on device; run {run.name} recorded as "
                   f"failed in {run / 'summary.json'}\n")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    rows = RunStore.open(run).read_metrics()  # what fitted on the disk, complete rows only
    assert 0 < len(rows) and rows["value"].notna().all()


def test_a_disk_with_no_room_at_all_says_the_status_was_not_recorded(
    full_disk: dict[str, bool], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full_disk["in_place"] = False
    assert train_cli(tmp_path, "--set", *TINY) == 1
    run = only_run(tmp_path)
    err = capsys.readouterr().err
    assert err.startswith(f"largebatch train: {run / 'metrics.csv'}: No space left on device; status not recorded "
                          f"(No space left on device: {run / 'summary.json'}") and err.count("\n") == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "running"


def test_a_read_only_runs_root_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    real_mkdir = os.mkdir

    def read_only(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    assert train_cli(tmp_path, "--set", *TINY) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"largebatch train: {tmp_path}/") and err.endswith(": Read-only file system\n")
    assert err.count("\n") == 1 and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    assert train_cli(root, "--set", *TINY) == 0
    return only_run(root)


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("argv", "message"), [
    ((), "is completed ({run}): resuming would train it again and overwrite its results; start a new run instead"),
    (("--set", "batch_size=64"), "--set cannot change a run being resumed (--resume {name} continues with the config "
                                 "in its config.yaml)"),
])
def test_a_resume_that_would_change_a_run_is_refused(finished_run: Path, capsys: pytest.CaptureFixture[str],
                                                      argv: tuple[str, ...], message: str) -> None:
    before = fingerprint(finished_run)
    assert train_cli(finished_run.parent, "--resume", finished_run.name, *argv) == 2
    err = capsys.readouterr().err
    assert message.format(run=finished_run, name=finished_run.name) in err and err.count("\n") == 1
    assert fingerprint(finished_run) == before


def test_one_writer_per_run_and_a_killed_writer_frees_it(finished_run: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import pathlib, sys, time; from largebatch.records.store import RunStore; "
         "store = RunStore(pathlib.Path(sys.argv[1])); store.lock(); print('locked', flush=True); time.sleep(120)",
         str(finished_run)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "platform")})
    try:
        assert holder.stdout.readline() == "locked\n"
        assert train_cli(finished_run.parent, "--resume", finished_run.name) == 2
        err = capsys.readouterr().err
        assert f"{finished_run} is being written by process {holder.pid} (another train or --resume" in err
        with pytest.raises(RunBusyError, match=f"process {holder.pid}"):
            RunStore.open(finished_run).lock()
    finally:
        holder.kill()
        holder.wait()
    with RunStore.open(finished_run) as store:  # SIGKILL left no stale lock
        store.lock()
        assert (finished_run / ".lock").read_text() == f"{os.getpid()}\n"


@pytest.mark.slow
def test_sigterm_records_interrupted_says_so_exits_143_and_finishes_the_wandb_mirror(tmp_path: Path) -> None:
    from largebatch.train.wandb_mirror import read_offline_history

    overrides = [*TINY[:2], "budget={epochs: 200}", "tracking.wandb.mode=offline", "logging.every_n_steps=1"]
    command = [sys.executable, "-m", "largebatch", "train", str(EXPERIMENT), "--runs-root", str(tmp_path),
               "--set", *overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "platform"), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while sum(p.stat().st_size for p in tmp_path.glob("*/metrics.csv")) < 20_000:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    run = only_run(tmp_path)
    assert process.returncode == 143, err
    assert err.splitlines()[-1] == (f"largebatch train: stopped by SIGTERM; run {run.name} recorded as interrupted "
                                    f"in {run / 'summary.json'}; continue it with --resume {run.name}")
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    metrics = RunStore.open(run).read_metrics()
    (mirror,) = run.glob("wandb/offline-run-*/run-*.wandb")
    assert len(read_offline_history(mirror)["train/loss"]) == (metrics["name"] == "train/loss").sum()


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 40 kB file system (tmpfs), where mounting is allowed (root with CAP_SYS_ADMIN), else the test skips."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_a_real_full_disk(tiny_tmpfs: Path) -> None:
    command = [sys.executable, "-m", "largebatch", "train", str(EXPERIMENT), "--runs-root", str(tiny_tmpfs),
               "--set", *TINY, "budget={epochs: 20}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "platform")})
    run = only_run(tiny_tmpfs)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"largebatch train: {run}/") and ": No space left on device; " in line
    assert line.endswith(f"run {run.name} recorded as failed in {run / 'summary.json'}")
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert len(RunStore.open(run).read_metrics()) > 0
