"""Finding and reading runs (the format is in ``largebatch.records.store``) as pandas, and ``largebatch runs``.

``runs_table`` is the entry point for sweeps and analysis: one row per run with its status, its config
flattened to dotted columns (``optimizer.name``, ``batch_size``) and its summary flattened the same way
(``final.val/acc``, ``best.train/loss``, ``eval.val_acc``, ...). ``history`` and ``layers`` give one run's
current (not superseded) rows. pandas is imported inside functions so that the CLI starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from largebatch.records.reader import Damage, RunFiles, read_metrics, read_run, report_damage
from largebatch.records.store import CONFIG, TERMINAL, RunStore, current_rows, default_summary, summarize_metrics

if TYPE_CHECKING:
    import pandas as pd

LEADING = ("run_id", "path", "status", "name", "started", "wall_time_s", "steps")
DEFAULT_COLUMNS = ("run_id", "name", "status", "optimizer.name", "batch_size", "steps", "wall_time_s",
                   "final.val/loss", "best.val/acc", "eval.val_acc")


def find_runs(root: str | Path) -> list[Path]:
    """Run directories (those holding config.yaml) at or below ``root``, sorted; runs are not searched inside."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs root {root} does not exist")
    found = []
    for folder, subfolders, files in os.walk(root):
        if CONFIG in files:
            found.append(Path(folder))
            subfolders.clear()
    return sorted(found)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys; lists become tuples (hashable cells); empty mappings vanish."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def _run_row(run: RunFiles) -> dict[str, Any]:
    summary, config = run.summary or {}, run.config or {}
    row = {"run_id": run.run_id, "path": str(run.path), "status": summary["status"],
           "name": summary.get("name", config.get("name")), "started": run.provenance.get("started"),
           "wall_time_s": summary["wall_time_s"], "steps": summary["steps"]}
    for key, value in [*flatten(config).items(), *flatten(summary).items()]:
        row.setdefault(key, value)
    return row


class RunsRead(NamedTuple):
    """The runs table of the readable runs, and what is wrong with the damaged ones (see :mod:`largebatch.records.reader`)."""

    table: pd.DataFrame
    damage: list[Damage]


def read_runs(roots: Iterable[str | Path] | str | Path) -> RunsRead:
    """One row per readable run below ``roots``: ``LEADING`` columns, then config and summary columns; oldest
    first. Runs whose config or summary is damaged are left out; every damaged file is in ``damage``.

    Where the config and the summary share a dotted key (e.g. ``plan.*``), the config's value is shown.
    """
    import pandas as pd

    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    runs = [read_run(path) for root in roots for path in find_runs(root)]
    damage = [record for run in runs for record in run.damage]
    rows = [_run_row(run) for run in runs if run.readable]
    if not rows:
        return RunsRead(pd.DataFrame(columns=list(LEADING)), damage)
    table = pd.DataFrame(rows)
    table["started"] = pd.to_datetime(table["started"], utc=True, errors="coerce")
    return RunsRead(table.sort_values(["started", "run_id"], na_position="last", kind="stable").reset_index(drop=True),
                    damage)


def runs_table(roots: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """The table of :func:`read_runs` (damaged runs left out; ``read_runs`` also says what is wrong with them)."""
    return read_runs(roots).table


def resolve_run(ref: str, root: str | Path) -> Path:
    """The run ``ref`` names: a run directory's path, a run id, or a unique run id prefix below ``root``.

    FileNotFoundError when nothing matches, LookupError (listing the candidates) when a prefix is ambiguous.
    """
    for candidate in (Path(ref), Path(root) / ref):
        if (candidate / CONFIG).is_file():
            return candidate
    runs = find_runs(root)
    exact = [path for path in runs if path.name == ref]
    matches = exact or [path for path in runs if path.name.startswith(ref)]
    if not matches:
        raise FileNotFoundError(f"no run {ref!r} under {root} (give a path, a run id or a unique id prefix)")
    if len(matches) > 1:
        listed = "\n  ".join(str(path) for path in matches)
        raise LookupError(f"{ref!r} matches {len(matches)} runs under {root}:\n  {listed}")
    return matches[0]


def history(path: str | Path) -> pd.DataFrame:
    """One run's metrics wide: a row per step (``step``, ``epoch``, then a column per metric, NaN where unlogged).

    Built from the current rows; ``epoch`` is the last epoch recorded at that step (NA if none was).
    """
    metrics = current_rows(RunStore.open(path).read_metrics(), "name")
    wide = metrics.pivot(index="step", columns="name", values="value")
    epochs = metrics.dropna(subset=["epoch"]).groupby("step")["epoch"].last()
    wide.insert(0, "epoch", epochs.reindex(wide.index))
    wide.columns.name = None
    return wide.reset_index()


def layers(path: str | Path) -> pd.DataFrame:
    """One run's per-layer telemetry (long: a row per step and layer), current rows only, sorted by step."""
    rows = current_rows(RunStore.open(path).read_layers(), "layer")
    return rows.sort_values("step", kind="stable").reset_index(drop=True)


def _select(columns: Sequence[str], patterns: Sequence[str], strict: bool) -> list[str]:
    """The ``columns`` named by ``patterns`` (names or globs) in pattern order; ValueError for an unmatched one
    when ``strict``."""
    chosen: list[str] = []
    for pattern in patterns:
        hits = [column for column in columns if fnmatchcase(column, pattern)]
        if strict and not hits:
            raise ValueError(f"no column matches {pattern!r}; columns: {', '.join(columns)}")
        chosen += [column for column in hits if column not in chosen]
    return chosen


def _number(value: float) -> str:
    return f"{value:.6g}"


def format_runs_table(table: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """``table`` (from ``runs_table``) as console text: ``columns`` (names or glob patterns such as ``best.*``;
    ValueError if one matches nothing) or, by default, those of ``DEFAULT_COLUMNS`` that exist."""
    chosen = _select(list(table.columns), columns or DEFAULT_COLUMNS, strict=columns is not None)
    return table[chosen].convert_dtypes().to_string(index=False, float_format=_number, na_rep="-")


def _size(path: Path) -> str:
    """A file's size (``3.2 kB``) or a folder's file count (``3 files``)."""
    if path.is_dir():
        count = sum(len(files) for _, _, files in os.walk(path))
        return f"{count} file{'s' if count != 1 else ''}"
    size, power = path.stat().st_size, 0
    while power < 3 and size >= 1000 ** (power + 1):
        power += 1
    return f"{size} B" if power == 0 else f"{size / 1000 ** power:.1f} {('kB', 'MB', 'GB')[power - 1]}"


def _section(title: str, items: Mapping[str, Any]) -> list[str]:
    if not items:
        return []
    width = max(len(key) for key in items)
    return [title, *(f"  {key:<{width}}  {_number(value) if isinstance(value, float) else value}"
                     for key, value in items.items())]


def format_run(run: RunFiles) -> tuple[str, list[Damage]]:
    """``largebatch runs show``: status, provenance, config, final/best metrics, other results, files; and the
    run's damaged files (whatever is intact is still shown)."""
    import pandas as pd

    damage = list(run.damage)
    summary, provenance = run.summary or {**default_summary(), "status": "unknown"}, run.provenance
    done = summary
    if summary["status"] not in TERMINAL:
        metrics = read_metrics(run.path)
        done = summarize_metrics(metrics) if not isinstance(metrics, Damage) else {"final": {}}
        damage += [metrics] if isinstance(metrics, Damage) else []
    commit = provenance.get("git_commit")
    overview = {
        "status": summary["status"], "steps": summary["steps"], "epochs": summary["epochs"],
        "wall time": None if summary["wall_time_s"] is None else f"{summary['wall_time_s']:.1f} s",
        "error": summary["error"], "diverged at": summary["diverged_at"], "started": provenance.get("started"),
        "git": commit and commit[:12] + (" (dirty)" if provenance.get("git_dirty") else ""),
        "seed": provenance.get("seed"), "host": provenance.get("hostname"),
    }
    lines = [f"run {run.run_id}", f"  path  {run.path}"]
    lines += _section("overview", {k: v for k, v in overview.items() if v is not None})
    config = flatten(run.config or {})
    lines += _section("config", config)
    if done["final"]:
        table = pd.DataFrame({"final": done["final"], "best": done["best"], "best step": done["best_step"]})
        table = table.to_string(float_format=_number, na_rep="-")
        lines += ["metrics", *(f"  {line}" for line in table.splitlines())]
    standard = {*default_summary(), "run_id", "name"}
    results = flatten({k: v for k, v in summary.items() if k not in standard})
    lines += _section("results", {k: v for k, v in results.items() if k not in config})  # plan.* etc.: in config
    lines += _section("files", {entry.name + ("/" if entry.is_dir() else ""): _size(entry)
                                for entry in sorted(run.path.iterdir()) if not entry.name.startswith(".")})
    return "\n".join(lines), damage


def _reported(command: Callable[[argparse.Namespace], str]) -> Callable[[argparse.Namespace], int]:
    """A subcommand printing ``command(args)``: exit code 0, or its error on stderr and 2 (no traceback)."""

    def run(args: argparse.Namespace) -> int:
        try:
            print(command(args))
        except (OSError, ValueError, LookupError) as err:
            print(f"largebatch runs {args.runs_command}: {err}", file=sys.stderr)
            return 2
        return 0

    return run


def _list(args: argparse.Namespace) -> str:
    roots = args.root or ["runs"]
    table, damage = read_runs(roots)
    report_damage(damage)
    if table.empty:
        return f"no {'readable ' if damage else ''}runs under {', '.join(roots)}"
    return format_runs_table(table, [c.strip() for c in args.columns.split(",")] if args.columns else None)


def _show(args: argparse.Namespace) -> str:
    text, damage = format_run(read_run(resolve_run(args.run_ref, args.root)))
    report_damage(damage)
    return text


def add_runs_command(subparsers: Any) -> None:
    """Register ``runs list [--root DIR ...] [--columns a,b]`` and ``runs show ID [--root DIR]``."""
    parser = subparsers.add_parser("runs", help="list and inspect runs",
                                   description="List the runs under a runs root, or show one run.")
    actions = parser.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="one line per run (runs in sub-folders, e.g. sweeps, included)")
    listing.add_argument("--root", action="append", metavar="DIR", help="runs root; repeatable (default ./runs)")
    listing.add_argument("--columns", metavar="A,B", help="columns or glob patterns, e.g. run_id,optimizer.name,best.*")
    listing.set_defaults(run=_reported(_list))
    show = actions.add_parser("show", help="one run: status, provenance, config, metrics, files")
    show.add_argument("run_ref", metavar="ID", help="run id, unique run id prefix, or path")
    show.add_argument("--root", default="runs", metavar="DIR", help="runs root to search (default ./runs)")
    show.set_defaults(run=_reported(_show))
