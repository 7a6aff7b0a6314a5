"""The run store: append-only CSVs that survive crashes and resumes, atomic summaries, provenance, listing, CLI."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from largebatch.records.runs import add_runs_command, find_runs, history, layers, resolve_run, runs_table
from largebatch.records.store import RunStore, best_direction, collect_provenance, csv_cell
from largebatch.train.logger import RunStoreLogger

PLATFORM = Path(__file__).parents[1] / "platform"


def new_run(root: Path, name: str = "demo", run_id: str | None = None, **config) -> RunStore:
    store = RunStore.create(root, name, run_id=run_id)
    store.write_config({"name": name, "optimizer": {"name": "lamb", "lr": 0.01}, "batch_size": 128, **config})
    return store


def test_create_names_runs_and_refuses_to_reuse_them(tmp_path: Path) -> None:
    store = new_run(tmp_path, name="mnist 1d/cnn")
    assert re.fullmatch(r"\d{8}-\d{6}-mnist-1d-cnn-[0-9a-f]{6}", store.run_id)
    assert store.read_summary()["status"] == "running" and store.read_config()["batch_size"] == 128
    with pytest.raises(FileExistsError):
        RunStore.create(tmp_path, "demo", run_id=store.run_id)
    with pytest.raises(FileExistsError):
        store.write_config({"name": "other"})
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        RunStore.open(tmp_path / "nope")


def test_rows_survive_a_killed_writer_and_a_cut_off_line(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(PLATFORM)!r})
        from largebatch.records.store import RunStore
        store = RunStore.create({str(tmp_path)!r}, "crash", run_id="crash")
        store.write_config({{"name": "crash"}})
        for step in range(1, 4):
            store.log_metrics(step, {{"train/loss": 1.0 / step}}, epoch=0)
        store.log_layers(3, {{"layer": ["fc.weight"], "trust_ratio": [0.5]}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    run = tmp_path / "crash"
    assert RunStore.open(run).read_metrics()["step"].tolist() == [1, 2, 3]
    assert RunStore.open(run).read_layers()["trust_ratio"].tolist() == [0.5]

    with (run / "metrics.csv").open("a") as file:
        file.write("4,0,train/lo")  # a write cut off mid-row
    assert len(RunStore.open(run).read_metrics()) == 3
    with RunStore.open(run) as resumed:
        resumed.log_metrics(4, {"train/loss": 0.25}, epoch=1)
    metrics = RunStore.open(run).read_metrics()
    assert metrics["value"].tolist() == [1.0, 0.5, 1 / 3, 0.25] and metrics["epoch"].tolist() == [0, 0, 0, 1]


def test_resume_appends_under_one_header(tmp_path: Path) -> None:
    with new_run(tmp_path, run_id="r") as first:
        first.log_metrics(1, {"a": 1.0})
        first.log_layers(1, {"layer": ["w"], "lr": [0.1]})
    with RunStore.open(tmp_path / "r") as second:
        second.log_metrics(2, {"a": 2.0})
        second.log_layers(2, {"layer": ["w"], "lr": [0.2]})
        second.close()
        second.log_metrics(3, {"a": 3.0})  # reopens after close
    lines = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,name,value,time" and sum(line.startswith("step,") for line in lines) == 1
    assert RunStore.open(tmp_path / "r").read_metrics()["value"].tolist() == [1.0, 2.0, 3.0]
    assert (tmp_path / "r" / "layers.csv").read_text().count("step,layer") == 1


def test_names_and_values_round_trip(tmp_path: Path) -> None:
    names = ['loss, "smoothed"', "NA", "nan", "null", "acc/top-1"]
    values = [math.nan, math.inf, -math.inf, 0.1 + 0.2, 5e-324]
    with new_run(tmp_path) as store:
        store.log_metrics(7, dict(zip(names, values)))
        store.log_layers(7, {"layer": ["a,b", '"q"'], "weight_norm": [math.inf, None], "grad_norm": [1e-300, 2.0]})
        metrics, table = store.read_metrics(), store.read_layers()
    assert metrics["name"].tolist() == names and metrics["epoch"].isna().all()
    got = metrics["value"].tolist()
    assert math.isnan(got[0]) and got[1:] == values[1:]
    assert str(metrics["step"].dtype) == "int64" and str(metrics["epoch"].dtype) == "Int64"
    assert table["layer"].tolist() == ["a,b", '"q"'] and table["grad_norm"].tolist() == [1e-300, 2.0]
    assert table["weight_norm"].iloc[0] == math.inf and table[["weight_norm", "update_norm", "lr"]].iloc[1].isna().all()


@pytest.mark.parametrize("text", ["plain", "a,b", 'say "hi"', "line\nbreak", "cr\r", "", " lead", "ünï/côdé"])
def test_cells_read_back_through_the_csv_module(text: str) -> None:
    import csv
    import io

    line = "x," + csv_cell(text) + ",1.5\n"
    assert next(csv.reader(io.StringIO(line))) == ["x", text, "1.5"]
    assert pd.read_csv(io.StringIO("a,b,c\n" + line), keep_default_na=False)["b"].tolist() == [text]


def test_blocks_of_steps_write_the_rows_of_one_call_per_step(tmp_path: Path) -> None:
    names, layers = ["a", "b,c"], ["w", "%s"]
    with new_run(tmp_path / "block") as block, new_run(tmp_path / "steps") as steps:
        block.log_metric_block([2, 3], names, [1.5, math.nan, 2.5, math.inf])
        block.log_layer_block([2, 3], layers, {"weight_norm": [1.0, 2.0, 3.0, 4.0], "lr": [0.1, math.nan, 0.3, 0.4]})
        for step, metrics, weight, lr in ((2, [1.5, math.nan], [1.0, 2.0], [0.1, None]),
                                          (3, [2.5, math.inf], [3.0, 4.0], [0.3, 0.4])):
            steps.log_metrics(step, dict(zip(names, metrics)))
            steps.log_layers(step, {"layer": layers, "weight_norm": weight, "lr": lr})
        written = [store.read_metrics().drop(columns="time") for store in (block, steps)]
        pd.testing.assert_frame_equal(*written)
        pd.testing.assert_frame_equal(block.read_layers(), steps.read_layers())
        assert block.read_metrics()["step"].tolist() == [2, 2, 3, 3]  # read by another handle: flushed
        with pytest.raises(ValueError, match="2 x 2"):
            block.log_metric_block([4, 5], names, [1.0])
        with pytest.raises(ValueError, match="per step"):
            block.log_layer_block([4, 5], layers, {"lr": [1.0, 2.0]})


def test_bad_rows_are_refused(tmp_path: Path) -> None:
    with new_run(tmp_path) as store:
        with pytest.raises(ValueError, match="epoch"):
            store.log_metrics(1, {"epoch": 1.0})
        with pytest.raises(ValueError, match="needs .layer. and only"):
            store.log_layers(1, {"layer": ["a"], "trust": [1.0]})
        with pytest.raises(ValueError, match="one per layer"):
            store.log_layers(1, {"layer": ["a", "b"], "lr": [1.0]})
        with pytest.raises(ValueError, match="status"):
            store.write_summary(status="done")


def test_best_direction_rule() -> None:
    assert [best_direction(n) for n in ("val/acc", "top1_accuracy", "acc1", "train/loss", "val_loss_epoch")] == [
        "max", "max", "max", "min", "min"]
    assert [best_direction(n) for n in ("accumulate", "glossary", "gen_gap", "lr")] == [None] * 4


def test_summary_merges_and_computes_final_and_best(tmp_path: Path) -> None:
    store = new_run(tmp_path)
    store.write_summary(status="running", run_id=store.run_id, plan={"steps": 4})
    for step, (loss, acc) in enumerate([(2.0, 0.3), (1.0, 0.7), (1.5, 0.6), (0.4, 0.95)], start=1):
        store.log_metrics(step, {"train/loss": loss, "val/acc": acc, "gen_gap": 0.1 * step})
    # resumed from a checkpoint at step 2: steps 3-4 are logged again and replace the first attempt's
    store.log_metrics(3, {"train/loss": 1.2, "val/acc": 0.8, "gen_gap": 0.0})
    store.log_metrics(4, {"train/loss": math.nan, "val/acc": math.nan})
    summary = store.write_summary(status="completed", steps=4, wall_time_s=1.5, diverged_at=None)
    assert summary["final"] == {"train/loss": None, "val/acc": None, "gen_gap": 0.0}
    assert summary["best"] == {"train/loss": 1.0, "val/acc": 0.8}
    assert summary["best_step"] == {"train/loss": 2, "val/acc": 3}
    assert summary["run_id"] == store.run_id and summary["plan"] == {"steps": 4} and summary["steps"] == 4
    text = (store.path / "summary.json").read_text()
    assert json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON {token}")) == summary
    assert store.read_summary() == summary and sorted(p.name for p in store.path.iterdir() if p.name[0] == ".") == []
    wide = history(store.path)
    assert wide["step"].tolist() == [1, 2, 3, 4] and wide["val/acc"].tolist()[:3] == [0.3, 0.7, 0.8]
    assert math.isnan(wide.loc[3, "gen_gap"])  # step 4's first gen_gap was superseded by the resumed step 3


def test_summary_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = new_run(tmp_path)
    store.write_summary(status="running", note="before")

    def broken(*args: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk gone"):
        store.write_summary(status="failed", note="after")
    monkeypatch.undo()
    assert store.read_summary()["note"] == "before"
    assert sorted(p.name for p in store.path.iterdir()) == ["config.yaml", "summary.json"]


def git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_provenance_records_the_git_commit_inside_a_repository(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    repo.mkdir(), outside.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text("print(1)\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    monkeypatch.chdir(repo)
    clean = collect_provenance(seed=3)
    assert clean["git_commit"] == git(repo, "rev-parse", "HEAD") and clean["git_dirty"] is False
    (repo / "train.py").write_text("print(2)\n")
    assert collect_provenance()["git_dirty"] is True
    monkeypatch.chdir(outside)
    store = new_run(tmp_path / "runs")
    written = store.write_provenance(seed=3, extra={"note": "x"})
    assert written["git_commit"] is None and written["git_dirty"] is None
    assert json.loads((store.path / "provenance.json").read_text()) == written == store.read_provenance()
    assert written["seed"] == 3 and written["versions"]["torch"] and written["cpu_count"] >= 1
    assert isinstance(written["gpus"], list) and written["note"] == "x" and written["started"].endswith("+00:00")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``alone`` at the top, two runs in a sweep folder; a W&B-like config.yaml inside a run is not a run."""
    root = tmp_path / "runs"
    alone = new_run(root, run_id="20250101-000000-alone-aaaaaa", optimizer={"name": "sgd", "lr": 0.1})
    alone.write_provenance(seed=0)
    for i, batch in enumerate((256, 4096)):
        run = new_run(root / "sweep1", run_id=f"20250102-00000{i}-lamb-bbbbb{i}", batch_size=batch)
        run.write_provenance(seed=i)
        run.log_metrics(1, {"val/acc": 0.5 + i / 10, "train/loss": 1.0})
        run.write_summary(status="completed", steps=1, wall_time_s=2.0, eval={"val_acc": 0.5})
    (alone.path / "wandb" / "files").mkdir(parents=True)
    (alone.path / "wandb" / "files" / "config.yaml").write_text("a: 1\n")
    return root


def test_runs_table_over_nested_runs(tree: Path) -> None:
    assert [p.name for p in find_runs(tree)] == ["20250101-000000-alone-aaaaaa", "20250102-000000-lamb-bbbbb0",
                                                 "20250102-000001-lamb-bbbbb1"]
    table = runs_table([tree])
    assert list(table.columns[:7]) == ["run_id", "path", "status", "name", "started", "wall_time_s", "steps"]
    assert table["optimizer.name"].tolist() == ["sgd", "lamb", "lamb"]
    assert table["batch_size"].tolist() == [128, 256, 4096]
    assert table["status"].tolist() == ["running", "completed", "completed"]
    assert table["best.val/acc"].tolist()[1:] == [0.5, 0.6] and table["final.train/loss"].tolist()[1:] == [1.0, 1.0]
    assert table["eval.val_acc"].tolist()[1:] == [0.5, 0.5] and str(table["started"].dtype).startswith("datetime64")
    assert runs_table(tree / "sweep1")["run_id"].tolist() == table["run_id"].tolist()[1:]


def test_resolve_run_by_path_id_and_prefix(tree: Path) -> None:
    sweep_run = tree / "sweep1" / "20250102-000001-lamb-bbbbb1"
    assert resolve_run("20250101", tree) == tree / "20250101-000000-alone-aaaaaa"
    assert resolve_run("20250102-000001-lamb-bbbbb1", tree) == sweep_run
    assert resolve_run(str(sweep_run), tree) == sweep_run
    assert resolve_run("sweep1/20250102-000001-lamb-bbbbb1", tree) == sweep_run
    with pytest.raises(LookupError, match="matches 2 runs") as ambiguous:
        resolve_run("20250102", tree)
    assert "bbbbb0" in str(ambiguous.value) and "bbbbb1" in str(ambiguous.value)
    with pytest.raises(FileNotFoundError, match="no run '2024'"):
        resolve_run("2024", tree)


class TinyModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log("train/loss", loss)
        self.log("train/acc", (logits.argmax(1) == y).float().mean())
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class LayerTable(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        names = [name for name, _ in pl_module.named_parameters()]
        norms = [p.norm().item() for p in pl_module.parameters()]
        trainer.logger.log_layers(trainer.global_step, {"layer": names, "weight_norm": norms})


def test_lightning_trainer_logs_into_the_store(tmp_path: Path) -> None:
    store = new_run(tmp_path / "runs")
    logger = RunStoreLogger(store)
    assert (logger.name, logger.version, logger.log_dir) == ("largebatch", store.run_id, str(store.path))
    data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,))), batch_size=8)
    trainer = pl.Trainer(accelerator="cpu", max_steps=6, logger=logger, log_every_n_steps=1, callbacks=[LayerTable()],
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    trainer.fit(TinyModule(), data)
    metrics = RunStore.open(store.path).read_metrics()
    assert set(metrics["name"]) == {"train/loss", "train/acc"}
    assert metrics["step"].tolist() == sorted(metrics["step"]) and metrics["step"].max() >= 5
    assert metrics["epoch"].tolist()[-1] == 1 and metrics["value"].notna().all()
    table = layers(store.path)
    assert table["step"].tolist() == [s for s in range(1, 7) for _ in range(4)] and (table["weight_norm"] > 0).all()


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="largebatch")
    add_runs_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.run(args)


def test_cli_runs_list_and_show(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("runs", "list", "--root", str(tree)) == 0
    listed = capsys.readouterr().out
    assert "20250102-000001-lamb-bbbbb1" in listed and "optimizer.name" in listed and "best.val/acc" in listed
    assert run_cli("runs", "list", "--root", str(tree), "--columns", "run_id,best.*") == 0
    assert capsys.readouterr().out.split("\n")[0].split() == ["run_id", "best.val/acc", "best.train/loss"]
    assert run_cli("runs", "show", "20250102-000001", "--root", str(tree)) == 0
    shown = capsys.readouterr().out
    assert "20250102-000001-lamb-bbbbb1" in shown and "completed" in shown and "eval.val_acc" in shown
    assert re.search(r"val/acc\s+0\.6\s+0\.6\s+1", shown) and "metrics.csv" in shown


@pytest.mark.parametrize(("argv", "message"), [
    (("runs", "show", "20250102"), "matches 2 runs"),
    (("runs", "show", "nosuch"), "no run 'nosuch'"),
    (("runs", "list", "--columns", "nosuch"), "no column matches 'nosuch'"),
])
def test_cli_errors_are_clear_and_exit_2(tree: Path, capsys: pytest.CaptureFixture[str], argv, message) -> None:
    assert run_cli(*argv, "--root", str(tree)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
