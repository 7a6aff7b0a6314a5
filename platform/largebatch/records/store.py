"""The run store: the one results format that training writes and everything above it reads.

One directory per run under a runs root (default ``./runs``; sweeps nest runs in sub-folders)::

    <runs_root>/<run_id>/
      config.yaml      resolved experiment config; written once, atomically. Its presence makes a folder a run.
      provenance.json  how the run was made: see ``collect_provenance``; atomic.
      metrics.csv      append-only, long format, one row per metric value: step,epoch,name,value,time
      layers.csv       append-only per-layer telemetry: step,layer,weight_norm,grad_norm,update_norm,trust_ratio,lr
      summary.json     status and results; rewritten atomically (temp file + os.replace) on every update
      checkpoints/     Lightning checkpoints (written by the trainer, not by this module)
      wandb/           W&B offline files (written by the W&B mirror, not by this module)
      .lock            the writer's pid; held with ``flock`` while a process writes the run (see ``RunStore.lock``)

``run_id`` defaults to ``<UTC yyyymmdd-HHMMSS>-<name>-<6 hex>``, so ids sort by creation time.

CSV files (RFC 4180, UTF-8, ``\\n`` line ends): the header is written only when the file is new, so a resumed
run appends to the same files. ``step`` is the optimizer step (an integer), ``epoch`` an integer or empty, ``time``
Unix seconds; metric values are written with ``repr`` (shortest exact form: ``nan``, ``inf`` and ``-inf``
round-trip), the per-layer statistics (float32 measurements) with 9 significant digits, which give back every float32
exactly; names are quoted as needed (commas, quotes). Each log call's rows (telemetry comes in blocks of steps, one
call each) are written and flushed to the OS before it returns, so a killed run keeps everything it logged. A trailing
partial line (a write cut off by a crash) is ignored by readers and dropped when the file is next opened for
appending.

Superseded rows: a run resumed from an earlier checkpoint logs some steps again. Files keep every row; a row
counts as *superseded* by any later row with the same name (layer, in ``layers.csv``) at the same or an
earlier step. ``current_rows`` drops them; summaries and the wide histories in ``runs`` are computed from
the current rows.

summary.json is strict JSON (non-finite floats become ``null``; the exact values are in the CSVs)::

    status        "running" | "completed" | "diverged" | "failed" | "interrupted"
    final         {metric: last value}                        } computed from metrics.csv when the status
    best          {metric: best value, see best_direction}    } becomes terminal (anything but "running")
    best_step     {metric: first step reaching the best}      }
    wall_time_s, steps, epochs, diverged_at, error            null until the writer sets them
    ...           any other keys the writer adds (the runner adds run_id, name, eval, throughput, plan)

Concurrency: one writer per run (the rank-zero process), enforced by ``RunStore.lock``: an exclusive ``flock`` on
``.lock`` that the OS releases when the writer ends, however it ends (even SIGKILL), so a second ``--resume`` of a
run in progress is refused with the writer's pid, and no stale lock outlives its owner. Any number of readers at
any time (they never lock).

Write errors (a full disk, a read-only file system) surface as OSError naming the file.
pandas is imported inside the functions that need it, so importing this module (and the CLI) stays fast.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from io import BytesIO
from itertools import chain, repeat
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal

import yaml

if TYPE_CHECKING:
    import pandas as pd

CONFIG = "config.yaml"
PROVENANCE = "provenance.json"
METRICS = "metrics.csv"
LAYERS = "layers.csv"
SUMMARY = "summary.json"
LOCK = ".lock"

METRIC_DTYPES = {"step": "int64", "epoch": "Int64", "name": "str", "value": "float64", "time": "float64"}
LAYER_STATS = ("weight_norm", "grad_norm", "update_norm", "trust_ratio", "lr")
LAYER_DTYPES = {"step": "int64", "layer": "str", **{column: "float64" for column in LAYER_STATS}}

FLOAT32_DIGITS = 9  # significant digits that give back every float32 exactly
TERMINAL = ("completed", "diverged", "failed", "interrupted")
FINISHED = ("completed", "diverged")  # the outcomes of a run that ended on its own: never trained again
STATUSES = ("running", *TERMINAL)
RESERVED_NAMES = ("step", "epoch")
VERSIONED = ("largebatch", "torch", "lightning", "numpy", "pandas", "pyarrow", "pydantic", "PyYAML", "wandb")

_ACCURACY = re.compile(r"(?<![a-z])acc(uracy)?(?![a-z])")
_LOSS = re.compile(r"(?<![a-z])loss(?![a-z])")


def best_direction(name: str) -> Literal["max", "min"] | None:
    """Which extreme of metric ``name`` is best: ``"max"`` for accuracies, ``"min"`` for losses, else None.

    A name is an accuracy when it contains ``acc`` or ``accuracy`` not flanked by letters (``val/acc``,
    ``top1_accuracy``, ``acc1``; not ``accumulate``), a loss likewise with ``loss``; accuracy wins if both.
    """
    lowered = name.lower()
    if _ACCURACY.search(lowered):
        return "max"
    if _LOSS.search(lowered):
        return "min"
    return None


def current_rows(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """The rows of ``frame`` (file order) not superseded by a later row with the same ``key`` at a step <= theirs."""
    if frame.empty:
        return frame
    backwards = frame.iloc[::-1]
    later_min = backwards.groupby(key, sort=False)["step"].cummin().groupby(backwards[key], sort=False).shift()
    keep = later_min.isna() | (backwards["step"] < later_min)
    return frame[keep.reindex(frame.index)]


def summarize_metrics(metrics: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``final``, ``best`` and ``best_step`` of the current rows of a long metrics frame (see the module doc).

    ``final`` is the last value of each metric, NaN included; ``best`` ignores NaN and exists only for metrics
    with a ``best_direction`` and at least one non-NaN value.
    """
    rows = current_rows(metrics, "name")
    last = rows.drop_duplicates("name", keep="last")
    final = dict(zip(last["name"], last["value"].tolist()))
    best: dict[str, float] = {}
    best_step: dict[str, int] = {}
    for name, group in rows.dropna(subset=["value"]).groupby("name", sort=False):
        direction = best_direction(str(name))
        if direction is not None:
            at = group["value"].idxmax() if direction == "max" else group["value"].idxmin()
            best[str(name)] = float(group.at[at, "value"])
            best_step[str(name)] = int(group.at[at, "step"])
    return {"final": final, "best": best, "best_step": best_step}


def plain_data(value: Any, *, finite: bool = False) -> Any:
    """``value`` as plain YAML/JSON data: mappings → dicts with str keys, lists/tuples → lists, numpy/torch
    scalars → Python scalars, paths → str; with ``finite=True`` NaN and ±inf become None."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v, finite=finite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v, finite=finite) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if finite and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new content, never a part (temp file + replace)."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _overwrite_text(path: Path, text: str) -> None:
    """Rewrite ``path`` in place: on a full disk the file's own freed blocks take the new text, where the temp
    copy of :func:`atomic_write_text` finds no room. Not atomic: a crash in between leaves a damaged file, which
    readers report (``largebatch.records.reader``); worth it only to record how a run ended when nothing else
    fits."""
    with path.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def _json_text(data: Mapping[str, Any]) -> str:
    return json.dumps(plain_data(data, finite=True), indent=2, allow_nan=False) + "\n"


def _git(args: Sequence[str], cwd: Path) -> str | None:
    """Stripped stdout of ``git args`` in ``cwd``, or None where git is missing or fails."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def collect_provenance(seed: int | None = None) -> dict[str, Any]:
    """How this process is running, for ``provenance.json``.

    Keys: ``started`` (UTC ISO time), ``seed``, ``command`` (``sys.argv``), ``cwd``, ``git_commit`` and
    ``git_dirty`` (of the working directory's repository, tracked files only; both null outside a repository
    or without git), ``python``, ``versions`` (installed versions of the key packages, null where absent),
    ``cuda`` (torch's CUDA version, null on CPU builds), ``hostname``, ``platform``, ``cpu_count``, ``gpus``
    (``torch.cuda`` device names).
    """
    import torch

    cwd = Path.cwd()
    commit = _git(["rev-parse", "HEAD"], cwd)
    changes = _git(["status", "--porcelain", "--untracked-files=no"], cwd) if commit else None
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "command": list(sys.argv),
        "cwd": str(cwd),
        "git_commit": commit,
        "git_dirty": None if changes is None else changes != "",
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in VERSIONED},
        "cuda": torch.version.cuda,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }


def default_summary() -> dict[str, Any]:
    """The summary of a run that has reported nothing yet."""
    return {"status": "running", "final": {}, "best": {}, "best_step": {}, "wall_time_s": None, "steps": None,
            "epochs": None, "diverged_at": None, "error": None}


@lru_cache(maxsize=4096)
def csv_cell(text: str) -> str:
    """``text`` as one RFC 4180 cell, quoted only when needed (what ``csv.writer``'s QUOTE_MINIMAL writes).

    Cached: metric and layer names repeat every logging step, so each is escaped once.
    """
    if any(c in text for c in ',"\r\n') or text == "":
        return '"' + text.replace('"', '""') + '"'
    return text


@lru_cache(maxsize=64)
def _layer_rows(layers: tuple[str, ...], present: tuple[bool, ...]) -> str:
    """The ``%``-template of one step's ``layers.csv`` rows: per layer the step, then each of ``LAYER_STATS``
    (9 significant digits where ``present``, else ``nan``)."""
    cells = ",".join(f"%.{FLOAT32_DIGITS}g" if given else "nan" for given in present)
    return "".join(f"%d,{csv_cell(layer).replace('%', '%%')},{cells}\n" for layer in layers)


@lru_cache(maxsize=256)
def _metric_rows(names: tuple[str, ...], digits: int | None) -> str:
    """The ``%``-template of one step's ``metrics.csv`` rows: per name the step, epoch cell, name, value
    (``repr``, or ``digits`` significant digits) and time cell."""
    value = "%r" if digits is None else f"%.{digits}g"
    return "".join(f"%d,%s,{csv_cell(name).replace('%', '%%')},{value},%s\n" for name in names)


class _Appender:
    """An append-only CSV file, opened on first write, header written only when the file is new.

    Rows arrive as ready-made text (names escaped once, see :func:`csv_cell`; a block of rows formatted with one
    ``%`` from a template cached per set of names, :func:`_metric_rows`, :func:`_layer_rows`): telemetry writes
    many rows per optimizer step, and this costs a fraction of ``csv.writer``.
    """

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        self.header = ",".join(map(csv_cell, header))
        self._file: IO[str] | None = None

    def _open(self) -> IO[str]:
        if self.path.exists():
            _drop_partial_line(self.path)
            with self.path.open(encoding="utf-8", newline="") as existing:
                first = existing.readline().rstrip("\r\n")
            if first and first != self.header:
                raise ValueError(f"{self.path}: header {first!r} is not {self.header!r}")
        file = self.path.open("a", encoding="utf-8", newline="")
        if file.tell() == 0:
            file.write(self.header + "\n")
        return file

    def write_text(self, text: str) -> None:
        """Append ``text`` (whole lines, each ending in a newline) and flush it to the OS.

        A write the disk refuses (full, read-only) is an OSError naming this file; the file is closed, dropping
        the unwritten rest (a partial last line, which readers ignore and the next open cuts off).
        """
        try:
            if self._file is None:
                self._file = self._open()
            self._file.write(text)
            self._file.flush()
        except OSError as err:
            self._discard()
            raise OSError(err.errno, err.strerror, str(self.path)) from err

    def _discard(self) -> None:
        """Close the file even if its buffer cannot be written out."""
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError:
                pass  # the rows that could not be written are lost either way; the file is closed regardless

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()


def _drop_partial_line(path: Path) -> None:
    """Truncate ``path`` after its last newline, if a crash left a line unfinished."""
    with path.open("rb+") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return
        file.seek(0)
        file.truncate(file.read().rfind(b"\n") + 1)


def _read_csv(path: Path, dtypes: Mapping[str, str]) -> pd.DataFrame:
    """A store CSV as a typed frame (empty with the right columns when absent), ignoring a partial last line."""
    import pandas as pd

    data = path.read_bytes() if path.exists() else b""
    data = data[: data.rfind(b"\n") + 1]
    if not data:
        return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes.items()})
    numeric = [column for column, dtype in dtypes.items() if dtype != "str"]
    return pd.read_csv(BytesIO(data), dtype=dict(dtypes), keep_default_na=False,
                       na_values={column: ["", "nan", "NaN"] for column in numeric})


class RunBusyError(RuntimeError):
    """Another live process is writing this run directory."""


def _run_id(name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"
    return f"{stamp}-{safe}-{secrets.token_hex(3)}"


class RunStore:
    """Reads and writes one run directory (format in the module docstring). Also a context manager (closes the
    files and releases the lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id = path.name
        self._metrics = _Appender(path / METRICS, list(METRIC_DTYPES))
        self._layers = _Appender(path / LAYERS, list(LAYER_DTYPES))
        self._lock: IO[str] | None = None

    @classmethod
    def create(cls, runs_root: str | Path, name: str, *, run_id: str | None = None) -> RunStore:
        """A new run directory ``runs_root/run_id`` with a ``running`` summary; FileExistsError if it exists."""
        run_id = run_id if run_id is not None else _run_id(name)
        if not run_id or Path(run_id).name != run_id or run_id in (".", ".."):
            raise ValueError(f"run id must be one path component, got {run_id!r}")
        path = Path(runs_root) / run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir()
        store = cls(path)
        atomic_write_text(path / SUMMARY, _json_text(default_summary()))
        return store

    @classmethod
    def open(cls, path: str | Path) -> RunStore:
        """The existing run at ``path``; FileNotFoundError if it is not a run directory (has no config.yaml)."""
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise FileNotFoundError(f"{path} is not a run directory (no {CONFIG})")
        return cls(path)

    def lock(self) -> None:
        """Make this process the run's only writer until :meth:`unlock`: an exclusive, non-blocking ``flock`` on
        ``.lock``, which then holds this process's pid. The OS drops the lock when the process ends, even when it
        is killed, so a lock never goes stale. RunBusyError (naming the owner's pid) when another process holds
        it."""
        import fcntl

        if self._lock is not None:
            return
        file = (self.path / LOCK).open("a+", encoding="utf-8")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            owner = file.read().strip() or "unknown"
            file.close()
            raise RunBusyError(f"{self.path} is being written by process {owner} (another train or --resume of this "
                               f"run); wait for it to end, or stop it, then try again") from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._lock = file

    def unlock(self) -> None:
        """Release :meth:`lock` (closing the file releases the ``flock``); the file stays, for the next writer."""
        if self._lock is not None:
            file, self._lock = self._lock, None
            file.close()

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write ``config.yaml``; FileExistsError if the run already has one (a run's config never changes)."""
        target = self.path / CONFIG
        if target.exists():
            raise FileExistsError(f"{target} already exists")
        atomic_write_text(target, yaml.safe_dump(plain_data(config), sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        return yaml.safe_load((self.path / CONFIG).read_text(encoding="utf-8")) or {}

    def write_provenance(self, *, seed: int | None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Collect provenance (``collect_provenance``) plus ``extra`` keys, write ``provenance.json``, return it."""
        provenance = plain_data({**collect_provenance(seed), **(extra or {})}, finite=True)
        atomic_write_text(self.path / PROVENANCE, _json_text(provenance))
        return provenance

    def read_provenance(self) -> dict[str, Any]:
        """The run's provenance, ``{}`` if it was never written."""
        target = self.path / PROVENANCE
        return json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}

    def log_metrics(self, step: int, metrics: Mapping[str, float | None], epoch: int | None = None) -> None:
        """Append one ``metrics.csv`` row per metric at ``step`` (and ``epoch``, if given; None values are NaN)."""
        self.log_metric_block([step], list(metrics), [math.nan if v is None else v for v in metrics.values()], epoch)

    def log_metric_block(
        self, steps: Sequence[int], names: Sequence[str], values: Sequence[float], epoch: int | None = None,
        digits: int | None = None,
    ) -> None:
        """Append the metrics ``names`` of several ``steps`` in one write: ``values[i * len(names) + j]`` is
        ``names[j]`` at ``steps[i]`` (a block of telemetry; the same rows as one :meth:`log_metrics` per step).

        Values are written exactly (``repr``) unless ``digits`` asks for that many significant digits: 9 give
        back every float32 exactly, for values measured in float32 (a third of the cost of ``repr``).
        """
        names = tuple(names)
        reserved = [name for name in names if name in RESERVED_NAMES]
        if reserved:
            raise ValueError(f"{reserved} are columns of metrics.csv, not metric names (pass epoch=...)")
        if len(values) != len(steps) * len(names):
            raise ValueError(f"need {len(steps)} x {len(names)} values (steps x names), got {len(values)}")
        epoch_cell = "" if epoch is None else str(int(epoch))
        time_cell = repr(round(time.time(), 3))
        step_cells = chain.from_iterable(repeat(int(step), len(names)) for step in steps)
        cells = zip(step_cells, repeat(epoch_cell), map(float, values), repeat(time_cell))
        self._metrics.write_text((_metric_rows(names, digits) * len(steps)) % tuple(chain.from_iterable(cells)))

    def log_layers(self, step: int, table: Mapping[str, Sequence[Any]]) -> None:
        """Append a columnar per-layer table at ``step``: ``layer`` plus any of ``LAYER_STATS`` (a missing column or
        a None value is NaN).

        The statistics are float32 measurements: they are written with 9 significant digits, which give back
        every float32 value exactly.
        """
        if "layer" not in table or set(table) - {"layer", *LAYER_STATS}:
            raise ValueError(f"a layer table needs 'layer' and only {list(LAYER_STATS)}; got {sorted(table)}")
        columns = {key: [math.nan if v is None else v for v in values] for key, values in table.items()}
        self.log_layer_block([step], columns.pop("layer"), columns)

    def log_layer_block(
        self, steps: Sequence[int], layers: Sequence[str], table: Mapping[str, Sequence[float]]
    ) -> None:
        """Append the per-layer tables of several ``steps``, all of the same ``layers``, in one write: each column of
        ``table`` (any of ``LAYER_STATS``; a missing one is NaN) holds ``len(steps) * len(layers)`` numbers, step
        after step, written as in :meth:`log_layers`."""
        unknown = set(table) - set(LAYER_STATS)
        if unknown:
            raise ValueError(f"a layer table has the columns {list(LAYER_STATS)}; got {sorted(table)}")
        layers = tuple(layers)
        columns = [table[stat] for stat in LAYER_STATS if stat in table]
        if any(len(column) != len(steps) * len(layers) for column in columns):
            raise ValueError(f"every column of a layer table needs {len(layers)} values (one per layer) per step")
        template = _layer_rows(layers, tuple(stat in table for stat in LAYER_STATS))
        step_cells = chain.from_iterable(repeat(int(step), len(layers)) for step in steps)
        self._layers.write_text((template * len(steps)) % tuple(chain.from_iterable(zip(step_cells, *columns))))

    def write_summary(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into ``summary.json`` (atomically) and return the new summary.

        When ``status`` becomes terminal, ``final``, ``best`` and ``best_step`` are computed from metrics.csv
        first (``fields`` may still override them). Unknown statuses are a ValueError.
        """
        status = fields.get("status")
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        summary = self.read_summary()
        if status in TERMINAL:
            summary.update(summarize_metrics(self.read_metrics()))
        summary.update(fields)
        text = _json_text(summary)
        try:
            atomic_write_text(self.path / SUMMARY, text)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            _overwrite_text(self.path / SUMMARY, text)  # a full disk has no room for the temp copy
        return json.loads(text)

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` over ``default_summary()`` (so every standard key is present)."""
        target = self.path / SUMMARY
        stored = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
        return {**default_summary(), **stored}

    def read_metrics(self) -> pd.DataFrame:
        """Every row of metrics.csv in file order: step (int64), epoch (Int64), name (str), value, time (float64)."""
        return _read_csv(self.path / METRICS, METRIC_DTYPES)

    def read_layers(self) -> pd.DataFrame:
        """Every row of layers.csv in file order: step (int64), layer (str), the ``LAYER_STATS`` (float64)."""
        return _read_csv(self.path / LAYERS, LAYER_DTYPES)

    def close(self) -> None:
        """Close the CSV files (a later log call reopens them for appending); the lock stays held."""
        self._metrics.close()
        self._layers.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
        self.unlock()
