"""The built wheel carries the project's YAML, and the commands that default to it work outside a clone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "platform", "experiments", "sweeps", "dashboards")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources (setuptools' build/ folder stays out of the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".",
                           "-w", str(root / "dist")], cwd=source, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (built,) = (root / "dist").glob("largebatch-*.whl")
    return built


def shipped_in_repo() -> set[str]:
    return {f"largebatch/shipped_yaml/{p.relative_to(REPO).as_posix()}"
            for folder in ("experiments", "sweeps", "dashboards") for p in (REPO / folder).rglob("*.yaml")}


@pytest.mark.slow
def test_the_wheel_ships_every_yaml_file_of_experiments_sweeps_and_dashboards(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = shipped_in_repo()
    assert {"largebatch/shipped_yaml/dashboards/scaling.yaml",
            "largebatch/shipped_yaml/sweeps/reproduce/lars-trust-ratios/table.yaml"} <= expected
    assert expected <= names
    assert {"largebatch/reproduce/published.yaml", "largebatch/optim/_fused_cpu.cpp"} <= names


OUTSIDE_A_CLONE = """
from largebatch.dashboard.build import default_configs
from largebatch.reproduce.spec import find_tables, load_table, spec_dir
from largebatch.sweep.config import load_sweep_file
print("dashboards:", *[p.relative_to(p.parents[2]) for p in default_configs()])
for table in find_tables(spec_dir()).values():
    profiles = load_table(table).spec.profiles
    load_sweep_file(table.parent / profiles.smoke.sweep)  # resolves the sweep's ../../../experiments/ file
"""


@pytest.mark.slow
def test_dashboard_and_reproduce_find_their_yaml_in_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"  # no experiments/, sweeps/ or dashboards/ here or above the installed package
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run([sys.executable, "-m", "largebatch", "reproduce", "--list"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    tables = {p.parent.name for p in (REPO / "sweeps" / "reproduce").glob("*/table.yaml")}
    assert all(f"| {name} |" in listed.stdout for name in tables), listed.stdout
    found = subprocess.run([sys.executable, "-c", OUTSIDE_A_CLONE], cwd=work, env=env, capture_output=True,
                           text=True, timeout=300)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["dashboards:", "shipped_yaml/dashboards/sensitivity.yaml",  # the index's first
                                    "shipped_yaml/dashboards/scaling.yaml"]
