"""The trials of a sweep as a table, from its results folder alone (no Ray import): ``largebatch sweep status``.

Rows come from the trial index (state, failures, the settings each trial was given) joined with the trials' run
directories (status, steps, final and best metrics; :func:`largebatch.records.runs.runs_table`), so trials that
never wrote a run still appear, and runs written without an index entry too. A run that finished (completed or
diverged) shows its own status even where the index still says ``running`` (a sweep killed before recording it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from largebatch.records.reader import Damage
from largebatch.records.runs import RunsRead, flatten, format_runs_table, read_runs
from largebatch.sweep.folder import FINISHED, SweepFolder
from largebatch.sweep.space import Sweep, extremes

if TYPE_CHECKING:
    import pandas as pd


def setting_keys(sweep: Sweep) -> list[str]:
    """The experiment keys a sweep varies, as ``runs_table`` columns (mappings flattened): grid keys (every
    bundle's keys), then sampled keys."""
    settings = [axis.settings(chosen) for axis in sweep.axes for chosen in axis.values.labels]
    settings += [{key: value} for key, dist in sweep.config.sample.items() for value in extremes(dist)]
    return list(dict.fromkeys(key for setting in settings for key in flatten(setting)))


def sweep_table(folder: SweepFolder) -> pd.DataFrame:
    """One row per trial: ``run_id`` (the trial id), ``state``, ``failures``, settings, then the run's columns
    (none for a trial whose run directory is damaged: :func:`read_sweep_table` says what is wrong)."""
    return read_sweep_table(folder).table


def read_sweep_table(folder: SweepFolder) -> RunsRead:
    """:func:`sweep_table` and the damaged files of the sweep's runs."""
    import pandas as pd

    sweep = folder.read_sweep()
    index = pd.DataFrame([
        {"run_id": trial_id, "state": entry["state"], "failures": entry.get("failures", 0),
         **flatten(sweep.settings(entry["params"]))}
        for trial_id, entry in folder.read_trials().items()
    ])
    runs, damage = read_runs(folder.runs_dir) if folder.runs_dir.is_dir() else (
        pd.DataFrame(columns=["run_id", "status"]), [])
    if index.empty:
        table = runs.assign(state=runs["status"])
    else:
        table = index.set_index("run_id").combine_first(runs.set_index("run_id")).reset_index()
        table["state"] = table["state"].fillna(table["status"])
        finished = table["status"].isin(FINISHED)  # a run's own outcome wins over an index a kill left behind
        table.loc[finished, "state"] = table.loc[finished, "status"]
    order = [c for c in ("started", "run_id") if c in table.columns]
    return RunsRead(table.sort_values(order, na_position="last", kind="stable").reset_index(drop=True), damage)


def format_sweep_status(folder: SweepFolder) -> tuple[str, list[Damage]]:
    """``largebatch sweep status``: a line of counts by state, then the trials table; and the damaged files."""
    sweep = folder.read_sweep()
    table, damage = read_sweep_table(folder)
    if table.empty:
        return f"sweep {sweep.name}: no trials yet ({folder.root})", damage
    metric = sweep.config.metric
    wanted = ["run_id", "state", *setting_keys(sweep), "steps", f"final.{metric}", f"best.{metric}", "wall_time_s"]
    counts = table["state"].value_counts()
    line = f"sweep {sweep.name}: {len(table)} trials (" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")"
    return line + "\n" + format_runs_table(table, [c for c in wanted if c in table.columns]), damage
