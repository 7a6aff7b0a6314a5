"""Damaged run directories are reported in one line each and never stop a view; user files that are not UTF-8
YAML are one clear line. Every damage kind goes through ``runs list``, ``runs show``, ``sweep status`` and
``dashboard`` (the CLI, in-process), and the files of every run are left byte for byte as they were."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from largebatch.analysis import load_results
from largebatch.cli import main
from largebatch.records.store import RunStore
from largebatch.sweep import SweepFolder, load_sweep

ROOT = Path(__file__).parents[1]
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"
# (optimizer, batch size): the healthy runs of the sweep; a copy of the first one is damaged
HEALTHY = [("lars", 64), ("lars", 256), ("sgd", 64), ("sgd", 256)]
DASHBOARD = """\
title: damage
series_by: [optimizer.name]
views:
  - {view: curves, metrics: [val/acc]}
  - {view: generalization_gap}
  - {view: trust_ratio}
"""


def write_run(runs_dir: Path, run_id: str, optimizer: str, batch: int) -> Path:
    store = RunStore.create(runs_dir, "t", run_id=run_id)
    store.write_config({"name": "t", "batch_size": batch, "optimizer": {"name": optimizer, "lr": 0.1},
                        "plan": {"lr": 0.1 * batch / 64, "total_steps": 20}})
    store.write_provenance(seed=0)
    for epoch, acc in enumerate((0.3, 0.6)):
        store.log_metrics(10 * (epoch + 1), {"val/acc": acc, "train/loss": 1 - acc}, epoch=epoch)
        store.log_layers(10 * (epoch + 1), {"layer": ["a.weight", "a.bias"], "trust_ratio": [0.1, 1.0]})
    store.write_summary(status="completed", eval={"val_acc": 0.6, "gen_gap": 0.01}, steps=20)
    store.close()
    return store.path


def cut_line(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        with (run / name).open("a", encoding="utf-8") as file:
            file.write("30,val/a" if name == "layers.csv" else "30,2,val/a")
    return damage


# kind: (how to damage the run, the damaged file, words of the line, whether views still show the run)
KINDS = {
    "yaml syntax error": (lambda run: (run / "config.yaml").write_text("name: [t\nbatch_size: 64\n"), "config.yaml",
                          "not valid YAML", False),
    "incomplete config": (lambda run: (run / "config.yaml").write_text("name: t\noptimizer: {name: sgd}\n"),
                          "config.yaml", "incomplete: batch_size missing", False),
    "binary config": (lambda run: (run / "config.yaml").write_bytes(BINARY), "config.yaml", "not a UTF-8 text file",
                      False),
    "missing summary": (lambda run: (run / "summary.json").unlink(), "summary.json", "missing", False),
    "binary summary": (lambda run: (run / "summary.json").write_bytes(BINARY), "summary.json", "not UTF-8", False),
    "binary provenance": (lambda run: (run / "provenance.json").write_bytes(BINARY), "provenance.json",
                          "not UTF-8 text (byte 0x89 at offset 0); shown without its provenance", True),
    "torn metrics": (cut_line("metrics.csv"), "metrics.csv", "last line cut off mid-row", True),
    "torn layers": (cut_line("layers.csv"), "layers.csv", "last line cut off mid-row", True),
    "binary metrics": (lambda run: (run / "metrics.csv").write_bytes(BINARY * 50), "metrics.csv", "header", False),
}
DAMAGED = "20250101-000000-damaged-dddddd"


@pytest.fixture(scope="module")
def sweep_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep folder (the quickstart sweep's ``sweep.yaml``) holding the healthy runs."""
    root = tmp_path_factory.mktemp("runs")
    folder = SweepFolder.of(root, "quickstart")
    folder.root.mkdir(parents=True)
    folder.write_sweep(load_sweep(ROOT / "sweeps" / "quickstart.yaml"))
    for i, (optimizer, batch) in enumerate(HEALTHY):
        write_run(folder.runs_dir, f"2025010{i + 2}-000000-t-aaaaa{i}", optimizer, batch)
    return root


def fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(params=sorted(KINDS))
def damaged(request: pytest.FixtureRequest, sweep_template: Path, tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "runs"
    shutil.copytree(sweep_template, root)
    run = write_run(root / "quickstart" / "runs", DAMAGED, *HEALTHY[0])
    KINDS[request.param][0](run)
    return root, request.param


def damage_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("damaged run ")]


def expect_one_line(err: str, root: Path, kind: str) -> None:
    _, file, words, _ = KINDS[kind]
    assert "Traceback" not in err
    (line,) = damage_lines(err)
    assert line.startswith(f"damaged run {DAMAGED}: {root / 'quickstart' / 'runs' / DAMAGED / file}: "), line
    assert words in line, line


def test_every_view_reports_the_damaged_run_and_shows_the_others(
    damaged: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, kind = damaged
    shown = KINDS[kind][3]
    before = fingerprint(root)
    healthy = sorted(p.name for p in (root / "quickstart" / "runs").iterdir() if p.name != DAMAGED)

    assert main(["runs", "list", "--root", str(root), "--columns", "run_id,status"]) == 0
    out, err = capsys.readouterr()
    expect_one_line(err, root, kind)
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert sorted(listed) == sorted(healthy + ([DAMAGED] if shown or kind == "binary metrics" else []))  # by start

    assert main(["runs", "show", DAMAGED, "--root", str(root)]) == 0
    out, err = capsys.readouterr()
    expect_one_line(err, root, kind)
    assert out.startswith(f"run {DAMAGED}\n")

    assert main(["sweep", "status", "quickstart", "--runs-root", str(root)]) == 0
    out, err = capsys.readouterr()
    expect_one_line(err, root, kind)
    assert all(run_id in out for run_id in healthy)

    config = tmp_path / "dashboard.yaml"
    config.write_text(DASHBOARD)
    out_dir = tmp_path / "site"
    assert main(["dashboard", str(root), "--config", str(config), "--out", str(out_dir), "--no-png"]) == 0
    out, err = capsys.readouterr()
    expect_one_line(err, root, kind)
    assert (out_dir / "index.html").is_file()

    results = load_results(root)
    assert sorted(results.runs["run_id"]) == sorted(healthy + ([DAMAGED] if shown else []))
    if shown:  # the complete rows of the torn file are all kept
        assert len(results.history[results.history["run_id"] == DAMAGED]) == 4
        assert len(results.layers[results.layers["run_id"] == DAMAGED]) == 4
    assert fingerprint(root) == before  # no view wrote anything, healthy or damaged


def test_only_damaged_runs_is_one_clear_error(sweep_template: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    run = write_run(root, DAMAGED, "sgd", 64)
    (run / "config.yaml").write_bytes(BINARY)
    assert main(["dashboard", str(root), "--out", str(tmp_path / "o"), "--no-png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"largebatch dashboard: no readable runs under {root}; 1 damaged file(s), the first: "
                          f"damaged run {DAMAGED}: ") and err.count("\n") == 1
    assert main(["runs", "list", "--root", str(root)]) == 0
    out, err = capsys.readouterr()
    assert out == f"no readable runs under {root}\n" and len(damage_lines(err)) == 1


@pytest.mark.parametrize("command", [
    ["train", "{file}"],
    ["sweep", "{file}"],
    ["dashboard", "--config", "{file}", "--no-png", "--out", "{out}"],
])
def test_a_binary_user_file_is_one_line_naming_it(command: list[str], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "picture.yaml"
    file.write_bytes(BINARY)
    write_run(tmp_path / "runs", DAMAGED, "sgd", 64)
    argv = [a.format(file=file, out=tmp_path / "o") for a in command]
    argv += [str(tmp_path / "runs")] if command[0] == "dashboard" else ["--runs-root", str(tmp_path / "runs")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{file}: not a UTF-8 text file (byte 0x89 at offset 0); expected YAML" in err


@pytest.mark.slow
def test_reproduce_reports_a_damaged_trial_and_judges_the_others(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["reproduce", "lars-trust-ratios", "--profile", "smoke", "--runs-root", str(tmp_path),
            "--specs", str(ROOT / "sweeps" / "reproduce"), "--no-png"]
    assert main(args) == 0
    first = capsys.readouterr().out
    runs = tmp_path / "repro-lars-trust-ratios-smoke" / "runs"
    (trial,) = list(runs.iterdir())
    shutil.copytree(trial, runs / DAMAGED)
    (runs / DAMAGED / "config.yaml").write_text("name: [t\n")
    assert main(args) == 0  # the finished sweep is reused; the copy is reported and left out
    out, err = capsys.readouterr()
    (line,) = damage_lines(err)
    assert line.startswith(f"damaged run {DAMAGED}: {runs / DAMAGED / 'config.yaml'}: not valid YAML")
    assert "### Claims" in out and first.endswith(out)  # the same numbers and verdicts as before the damage


def test_a_torn_line_of_a_run_being_written_is_not_damage(tmp_path: Path) -> None:
    from largebatch.records.reader import read_run

    run = write_run(tmp_path, DAMAGED, "sgd", 64)
    RunStore.open(run).write_summary(status="running")
    cut_line("metrics.csv")(run)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for writer, reported in ((os.getpid(), False), (int(dead.stdout), True), ("", True)):
        (run / ".lock").write_text(f"{writer}\n")
        assert [d.file.name for d in read_run(run).damage] == (["metrics.csv"] if reported else [])


def test_an_empty_csv_is_no_rows_not_damage(tmp_path: Path) -> None:
    from largebatch.records.reader import read_run

    run = write_run(tmp_path, DAMAGED, "sgd", 64)
    (run / "layers.csv").write_bytes(b"")  # a writer killed between creating the file and writing its header
    assert read_run(run).damage == () and load_results(tmp_path).layers.empty
