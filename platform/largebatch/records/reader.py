"""Reading run directories that may be damaged: the healthy parts, plus one :class:`Damage` record per bad file.

Every view that reads runs (``runs list``/``show``, ``sweep status``, ``dashboard``, ``reproduce``) reads them
through :func:`read_run` (and :func:`read_rows` for the CSVs), so a damaged run never stops a view: the view
shows the readable runs and prints one line per damaged file (:func:`report_damage`). Nothing is ever written
here; the files of healthy and damaged runs alike are left as they are.

What counts as damage, and what the reader does with it:

- ``config.yaml`` that is not UTF-8 YAML, not a mapping, or lacks a key every run has (:data:`REQUIRED_CONFIG`):
  the run is left out (nothing can place it in a batch-size or optimizer view).
- ``summary.json`` missing (it is written before ``config.yaml``, so a run never lacks it), not UTF-8 JSON, not a
  mapping, or with an unknown ``status``: the run is left out.
- ``provenance.json`` unreadable: the run is kept without its provenance (start time, git commit).
- ``metrics.csv`` / ``layers.csv`` with a foreign header or unparsable rows: the run is left out of the views
  that need that file's rows; with a last line cut off mid-row (a write interrupted by a crash or power cut) the
  complete rows are kept and the partial line is ignored, as the store always does (not reported while the run's
  writer is alive: it may be in the middle of that line).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from largebatch.core.errors import ConfigError
from largebatch.core.yaml_io import read_yaml
from largebatch.records.store import (
    CONFIG, LAYER_DTYPES, LAYERS, LOCK, METRIC_DTYPES, METRICS, PROVENANCE, STATUSES, SUMMARY, RunStore, csv_cell,
    default_summary,
)

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")
LEFT_OUT = "run left out"
REQUIRED_CONFIG: dict[str, tuple[type, ...]] = {
    "name": (str,), "batch_size": (int,), "optimizer.name": (str,), "optimizer.lr": (int, float),
}
CSV_HEADERS = {METRICS: ",".join(map(csv_cell, METRIC_DTYPES)), LAYERS: ",".join(map(csv_cell, LAYER_DTYPES))}


@dataclass(frozen=True)
class Damage:
    """One damaged file of one run: ``problem`` says what is wrong and what the reader did about it."""

    run_id: str
    file: Path
    problem: str

    def __str__(self) -> str:
        return f"damaged run {self.run_id}: {self.file}: {self.problem}"


@dataclass(frozen=True)
class RunFiles:
    """What :func:`read_run` could read of one run directory (None where the file is damaged)."""

    path: Path
    config: dict[str, Any] | None
    summary: dict[str, Any] | None
    provenance: dict[str, Any]
    damage: tuple[Damage, ...]

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def readable(self) -> bool:
        """Whether the run can be shown at all: its config and summary are intact."""
        return self.config is not None and self.summary is not None


def one_line(err: BaseException) -> str:
    """An exception's message on one line (parsers put the offending text on the lines after the first)."""
    return " ".join(str(err).split()) or type(err).__name__


def _config(path: Path) -> dict[str, Any] | str:
    """The run's config, or what is wrong with it."""
    try:
        config = read_yaml(path)
    except ConfigError as err:
        return str(err).removeprefix(f"{path}: ")
    for dotted, kinds in REQUIRED_CONFIG.items():
        value: Any = config
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, kinds) or isinstance(value, bool):
            expected = " or ".join(kind.__name__ for kind in kinds)
            found = "missing" if value is None else f"{value!r} is not {expected}"
            return f"incomplete: {dotted} {found} (every run records name, batch_size, optimizer.name, optimizer.lr)"
    return config


def _json(path: Path) -> dict[str, Any] | str:
    """The JSON mapping in ``path``, or what is wrong with it."""
    if not path.is_file():
        return "missing"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        return f"not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})"
    except (OSError, ValueError) as err:
        return f"not valid JSON ({one_line(err)})"
    return data if isinstance(data, dict) else f"expected a JSON object, found {type(data).__name__}"


def _summary(path: Path) -> dict[str, Any] | str:
    stored = _json(path)
    if isinstance(stored, str):
        return stored
    if stored.get("status", "running") not in STATUSES:
        return f"unknown status {stored['status']!r} (allowed: {', '.join(STATUSES)})"
    return {**default_summary(), **stored}


def _being_written(path: Path) -> bool:
    """Whether the process named in the run's ``.lock`` (its writer, see ``RunStore.lock``) is alive on this host:
    its CSVs may then end in a line still being written."""
    try:
        pid = int((path / LOCK).read_text(encoding="utf-8"))
        if pid > 0:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except PermissionError:  # it exists, run by another user
        return True
    except (OSError, ValueError):  # no lock file, no such process, or not a pid
        return False
    return pid > 0


def _csv_problem(path: Path, writing: bool) -> str | None:
    """What is wrong with a store CSV's header or last line (cheap: reads the first line and the last byte); a last
    line without its newline is a problem only when no live writer may be finishing it."""
    if not path.exists():
        return None
    try:
        with path.open("rb") as file:
            first = file.readline()
            size = file.seek(0, 2)
            file.seek(max(size - 1, 0))
            last = file.read(1) or b"\n"  # an empty file: no rows, nothing cut off
    except OSError as err:
        return f"unreadable ({err.strerror or one_line(err)}): views that need its rows leave the run out"
    header = first.rstrip(b"\r\n")
    if header and header != CSV_HEADERS[path.name].encode():
        shown = header[:60].decode("utf-8", "backslashreplace")
        return (f"header {shown!r} is not {CSV_HEADERS[path.name]!r}: its rows cannot be read (views that need them "
                "leave the run out)")
    if last != b"\n" and not writing:
        return "last line cut off mid-row (a write interrupted by a crash): it is ignored, the complete rows are kept"
    return None


def read_run(path: str | Path) -> RunFiles:
    """Read ``path``'s config, summary and provenance, and check its CSVs' header and last line, never raising
    for a damaged file (see the module docstring for what is kept and what is left out)."""
    path = Path(path)
    damage: list[Damage] = []

    def intact(file: str, read: Callable[[Path], dict[str, Any] | str], consequence: str) -> dict[str, Any] | None:
        result = read(path / file)
        if isinstance(result, str):
            damage.append(Damage(path.name, path / file, f"{result}; {consequence}"))
            return None
        return result

    config = intact(CONFIG, _config, LEFT_OUT)
    summary = intact(SUMMARY, _summary, LEFT_OUT)
    provenance = intact(PROVENANCE, _json, "shown without its provenance") if (path / PROVENANCE).exists() else {}
    writing = summary is not None and summary["status"] == "running" and _being_written(path)
    for name in (METRICS, LAYERS):
        problem = _csv_problem(path / name, writing)
        if problem:
            damage.append(Damage(path.name, path / name, problem))
    return RunFiles(path, config, summary, provenance or {}, tuple(damage))


def read_rows(path: str | Path, file: str, read: Callable[[RunStore], T]) -> T | Damage:
    """``read(store)`` of the run at ``path`` (e.g. ``RunStore.read_metrics``), or a :class:`Damage` for ``file``
    when its rows cannot be parsed."""
    path = Path(path)
    try:
        return read(RunStore(path))
    except (OSError, ValueError) as err:  # pandas' parser and dtype errors, UnicodeDecodeError are ValueErrors
        return Damage(path.name, path / file, f"rows cannot be read ({one_line(err)[:200]}); {LEFT_OUT}")


def read_metrics(path: str | Path) -> pd.DataFrame | Damage:
    """The run's metrics.csv rows (:meth:`RunStore.read_metrics`), or what is wrong with them."""
    return read_rows(path, METRICS, RunStore.read_metrics)


def read_layers(path: str | Path) -> pd.DataFrame | Damage:
    """The run's layers.csv rows (:meth:`RunStore.read_layers`), or what is wrong with them."""
    return read_rows(path, LAYERS, RunStore.read_layers)


def report_damage(damage: Iterable[Damage], stream: IO[str] | None = None) -> None:
    """Print one line per damaged file (to stderr unless ``stream`` is given), each damage once, in order."""
    for record in dict.fromkeys(damage):
        print(record, file=stream or sys.stderr)
