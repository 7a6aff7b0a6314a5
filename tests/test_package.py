"""Packaging guards."""

import subprocess
import sys
import sysconfig
from pathlib import Path


def test_platform_is_the_standard_library_module() -> None:
    import platform

    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib
    assert not (Path(__file__).parents[1] / "platform" / "__init__.py").exists()


def test_largebatch_imports_from_platform_dir() -> None:
    import largebatch

    assert Path(largebatch.__file__).resolve().parent.parent.name == "platform"


def test_cli_help_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "largebatch", "--help"], capture_output=True, text=True, check=True)
    assert "largebatch" in out.stdout


HEAVY = ("torch", "lightning", "ray", "optuna")
GROUND_FLOOR_READER = """
import sys
from pathlib import Path

import largebatch.core.errors, largebatch.core.yaml_io
import largebatch.records.reader, largebatch.records.runs, largebatch.records.store
from largebatch.analysis import load_results
from largebatch.dashboard.build import build

root, dashboard, out = map(Path, sys.argv[1:])
results = load_results([root])
built = build([root], [dashboard], out, images=False)
print(len(results.finished()), built.index.is_file())
print(sorted(name for name in sys.modules if name.split(".")[0] in {heavy}))
"""


def test_reading_and_showing_finished_runs_imports_no_torch_ray_or_optuna(tmp_path: Path) -> None:
    """The ground floor, the analysis of finished runs and the dashboard build import none of the heavy stacks."""
    from largebatch.records.store import RunStore

    for run_id, acc in (("a", 0.4), ("b", 0.6)):
        store = RunStore.create(tmp_path / "runs", "t", run_id=run_id)
        store.write_config({"name": "t", "batch_size": 64, "optimizer": {"name": "lars", "lr": 0.1}})
        store.log_metrics(10, {"val/acc": acc}, epoch=0)
        store.write_summary(status="completed", eval={"val_acc": acc}, steps=10)
        store.close()
    dashboard = tmp_path / "d.yaml"
    dashboard.write_text("title: t\nviews:\n  - view: curves\n    metrics: [val/acc]\n")
    code = GROUND_FLOOR_READER.format(heavy=set(HEAVY))
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "runs"), str(dashboard), str(tmp_path / "site")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["2 True", "[]"]
