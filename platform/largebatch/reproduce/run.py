"""Run (or resume) a table's sweep, then compute our numbers, judge the claims and build the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from largebatch.analysis import load_results
from largebatch.reproduce.numbers import batch_cells, cells_markdown, layer_ratios, ratios_markdown
from largebatch.reproduce.report import Reproduction, judge
from largebatch.reproduce.spec import Table
from largebatch.sweep import SweepFolder, load_sweep
from largebatch.sweep.space import Sweep


def run_or_resume(sweep: Sweep, folder: SweepFolder, address: str | None, echo: Callable[[str], None]) -> bool:
    """Run ``sweep`` into ``folder``, resume it when it was interrupted, or reuse it when finished; True when it
    is still unfinished afterwards (interrupted again)."""
    import optuna

    from largebatch.sweep.launch import run_sweep, unfinished
    from largebatch.sweep.progress import console_is_live

    if folder.sweep_file.exists() and not unfinished(folder.read_trials(), sweep):
        if folder.read_sweep().resolved() != sweep.resolved():
            echo(f"note: {sweep.source} differs from the finished sweep in {folder.root}; showing the stored results "
                 "(give another --runs-root to run the edited sweep)")
        echo(f"sweep {sweep.name}: finished in {folder.root}; reusing its results")
        return False
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    outcome = run_sweep(sweep, folder, resume=folder.sweep_file.exists(), address=address, live=console_is_live(),
                        echo=echo)
    return outcome.interrupted


def reproduce(table: Table, profile: str, *, runs_root: str | Path | None = None, address: str | None = None,
              images: bool = True, echo: Callable[[str], None] = print) -> tuple[Reproduction, bool]:
    """Run or resume ``table``'s sweep for ``profile``, then judge its claims; returns the reproduction and
    whether the sweep is still unfinished (its numbers then cover the finished trials only)."""
    sweep_file = table.sweep_path(profile)
    dashboard = table.dashboard_path()
    sweep = load_sweep(sweep_file)
    folder = SweepFolder.of(runs_root or sweep.base().tracking.runs_root, sweep.name)
    unfinished = run_or_resume(sweep, folder, address, echo)
    results = load_results(folder.root)
    for damage in results.damage:
        echo(str(damage))
    spec = table.spec
    empty = pd.DataFrame()
    if spec.numbers.kind == "layer_ratios":
        cells, ratios = empty, layer_ratios(results, spec.numbers.epochs)
        ours = ratios_markdown(ratios) if not ratios.empty else empty
    else:
        cells, ratios = batch_cells(results, spec.series, spec.numbers), empty
        ours = cells_markdown(cells, spec.series, spec.numbers.display) if not cells.empty else empty
    verdicts = [(claim, judge(claim, spec, cells, ratios)) for claim in spec.claims]
    from largebatch.dashboard.build import build

    built = build([folder.root], [dashboard], folder.root / "dashboard", images=images)
    states = [t["state"] for t in folder.read_trials().values()]
    counts = {state: states.count(state) for state in sorted(set(states))}
    return Reproduction(table, profile, sweep_file, folder.root, counts, ours, verdicts, built.index), unfinished
