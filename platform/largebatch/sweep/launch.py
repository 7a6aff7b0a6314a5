"""Running a sweep with Ray Tune, and resuming one that was interrupted.

One ``Tuner`` per sweep: a function trainable (:func:`largebatch.sweep.trial.run_trial`) with per-trial
resources from the cluster, the sweep's search algorithm and scheduler (:mod:`largebatch.sweep.search`),
``FailureConfig(max_failures)`` (a trial that raises is retried, then recorded ``failed``; a diverged trial is
a normal result and never retried), Tune's state in ``<sweep folder>/ray``.

Resume: ``Tuner.restore`` of that state with unfinished and errored trials resumed (errored: those that failed
every attempt, or were killed with the sweep, get another try). Finished trials are not run again; an
unfinished trial starts again in its own run directory, which resumes from its last checkpoint (see
:mod:`largebatch.sweep.trial`), and the search algorithm (with its Optuna study) continues where it was. A
sweep interrupted before Tune saved any state starts afresh, dropping the Optuna study it had begun. The
console table's setting (``live``) is the first run's: a restored Tuner keeps its callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from largebatch.sweep.folder import SweepFolder, TrialIndex
from largebatch.sweep.progress import TrialLog
from largebatch.sweep.resources import plan_resources
from largebatch.sweep.search import build_scheduler, build_search, optuna_storage
from largebatch.sweep.space import Sweep
from largebatch.sweep.trial import TrialSpec, run_trial


@dataclass(frozen=True)
class SweepOutcome:
    """Where the sweep's results are, its trial index, and whether it was interrupted before finishing."""

    folder: SweepFolder
    trials: TrialIndex
    interrupted: bool

    def counts(self) -> dict[str, int]:
        states = [entry["state"] for entry in self.trials.values()]
        return {state: states.count(state) for state in sorted(set(states))}


def trial_dirname(trial: Any) -> str:
    """Tune's per-trial folder name under ``ray/``: the trial id (as the run directory)."""
    return str(trial.trial_id)


def _drop_study(sweep: Sweep, folder: SweepFolder, resume: bool) -> None:
    """Before a fresh Tuner: remove a study left by a run that never saved Tune state (resume), or refuse to
    reuse another sweep's study of the same name in a shared storage."""
    import optuna

    storage = optuna_storage(sweep, folder)
    if sweep.name not in optuna.get_all_study_names(storage):
        return
    if not resume:
        raise FileExistsError(f"an Optuna study named {sweep.name!r} already exists in {sweep.config.storage}; "
                              "choose another sweep name (--name)")
    optuna.delete_study(study_name=sweep.name, storage=storage)


def _new_tuner(sweep: Sweep, folder: SweepFolder, trainable: Any, live: bool, resume: bool) -> Any:
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    if sweep.config.search.algorithm == "optuna":
        _drop_study(sweep, folder, resume)
    space, searcher, num_samples = build_search(sweep, folder)
    c = sweep.config
    return tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=build_scheduler(sweep), num_samples=num_samples,
            reuse_actors=c.devices_per_trial == 1,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=folder.ray_dir.name, storage_path=str(folder.root), verbose=0,
            callbacks=[TrialLog(sweep, folder, live, expected=expected_trials(sweep)), CSVLoggerCallback(),
                       JsonLoggerCallback()],
            failure_config=tune.FailureConfig(max_failures=c.max_failures),
        ),
    )


def run_sweep(sweep: Sweep, folder: SweepFolder, *, resume: bool = False, address: str | None = None,
              live: bool = False, echo: Callable[[str], None] = print) -> SweepOutcome:
    """Run ``sweep`` into ``folder`` (resume it with ``resume``) on a local or existing Ray cluster.

    Without ``resume`` the folder must not hold a sweep yet. With ``resume`` the sweep stored in the folder is
    run, whatever ``sweep`` says now (a difference is echoed).
    """
    import ray
    from ray import tune

    from largebatch.sweep.cluster import ray_session

    if folder.sweep_file.exists() and not resume:
        raise FileExistsError(f"{folder.root} already holds sweep results; pass --resume to finish that sweep, "
                              "or --name to start another")
    if resume and folder.sweep_file.exists():
        stored = folder.read_sweep()
        if stored.resolved() != sweep.resolved():
            echo(f"note: {sweep.source} differs from the sweep stored in {folder.sweep_file}; resuming the stored one")
        sweep = stored
    else:
        folder.write_sweep(sweep)
    with ray_session(address) as where:
        cluster = ray.cluster_resources()
        resources = plan_resources(sweep.config.resources, sweep.config.devices_per_trial, cluster, sweep.source)
        if sweep.config.devices_per_trial > 1:
            sweep = _capped(sweep, resources.fit)
        echo(f"sweep {sweep.name} on {where}; {resources.describe(cluster)}")
        echo(f"results: {folder.root}")
        trainable = tune.with_resources(tune.with_parameters(run_trial, spec=TrialSpec(sweep, folder, resources)),
                                        resources.tune_request())
        if resume and tune.Tuner.can_restore(str(folder.ray_dir)):
            tuner = tune.Tuner.restore(str(folder.ray_dir), trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = _new_tuner(sweep, folder, trainable, live, resume)
        results = tuner.fit()
    trials = folder.read_trials()
    return SweepOutcome(folder, trials, interrupted=unfinished(trials, sweep) or len(results) < expected_trials(sweep))


def _capped(sweep: Sweep, fit: int) -> Sweep:
    """Data-parallel trials: at most as many at once as the cluster fits (each trial's workers start together)."""
    limit = min(sweep.config.max_concurrent or fit, fit)
    return Sweep(sweep.config.model_copy(update={"max_concurrent": limit}), sweep.experiment, sweep.source)


def expected_trials(sweep: Sweep) -> int:
    """How many trials the sweep runs: grid cells × ``num_samples``."""
    return len(sweep.cells()) * sweep.config.num_samples


def unfinished(trials: TrialIndex, sweep: Sweep) -> bool:
    """Whether the trial index ``trials`` lacks some of ``sweep``'s trials or has one pending or running."""
    return len(trials) < expected_trials(sweep) or any(t["state"] in ("pending", "running") for t in trials.values())
