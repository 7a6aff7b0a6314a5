"""Running a sweep with Ray Tune, and resuming one that was interrupted, however it was.

Every start (first run or ``--resume``) is the same: :func:`largebatch.sweep.plan.plan_trials` reads the sweep
folder (the run directories and ``trials.json``) and lists the finished trials and the trials still to run;
the searcher (:mod:`largebatch.sweep.search`) rebuilds the Optuna study from the finished ones and hands out
the rest; a new ``Tuner`` runs them: a function trainable (:func:`largebatch.sweep.trial.run_trial`) with
per-trial resources from the cluster, the sweep's scheduler, ``FailureConfig(max_failures)`` (a trial that
raises is retried, then recorded ``failed``; a diverged trial is a normal result and never retried), Tune's
logs in ``<sweep folder>/ray``. Nothing depends on Tune's saved experiment state, so a kill at any moment
(SIGKILL of the driver included) leaves a folder that resumes: finished trials are never run again nor
changed, an unfinished trial runs again in its own run directory from its last checkpoint with its own
parameters, and missing trials are added, so the sweep ends with the same trials as an uninterrupted one.
(ASHA's rungs start empty again on resume: it judges the remaining trials among themselves.)

Provenance is collected once, here in the driver (the command, working directory, git commit of the code that
launched the sweep, package versions), and copied into every trial's ``provenance.json``; each trial adds where
and when it ran (``started``, ``hostname``, devices, seed).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from largebatch.sweep.folder import SweepFolder, TrialIndex
from largebatch.sweep.plan import RUN_ID, Plan, plan_trials
from largebatch.sweep.space import Sweep

LAUNCH_PROVENANCE = ("command", "cwd", "git_commit", "git_dirty", "python", "versions")


@dataclass(frozen=True)
class SweepOutcome:
    """Where the sweep's results are, its trial index, and whether it was interrupted before finishing."""

    folder: SweepFolder
    trials: TrialIndex
    interrupted: bool
    stopped_by: int | None = None  # the signal (SIGINT, SIGTERM) that stopped the driver, if one did

    def counts(self) -> dict[str, int]:
        states = [entry["state"] for entry in self.trials.values()]
        return {state: states.count(state) for state in sorted(set(states))}


def trial_dirname(trial: Any) -> str:
    """Tune's per-trial folder name under ``ray/``: the trial's run id (as its run directory)."""
    return str(trial.config[RUN_ID])


def launch_provenance(sweep: Sweep, folder: SweepFolder) -> dict[str, Any]:
    """What every trial of this launch shares: how the driver was started, and the sweep."""
    from largebatch.records.store import collect_provenance

    collected = collect_provenance()
    return {**{key: collected[key] for key in LAUNCH_PROVENANCE}, "sweep": sweep.name, "sweep_dir": str(folder.root)}


def _tuner(sweep: Sweep, folder: SweepFolder, plan: Plan, trainable: Any, live: bool, resume: bool,
           stop: Any) -> Any:
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from largebatch.sweep.progress import TrialLog
    from largebatch.sweep.search import build_scheduler, build_search

    c = sweep.config
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=build_search(sweep, folder, plan.todo, plan.finished, resume),
            scheduler=build_scheduler(sweep), num_samples=len(plan.todo), reuse_actors=c.devices_per_trial == 1,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=folder.ray_dir.name, storage_path=str(folder.root), verbose=0,
            callbacks=[TrialLog(sweep, folder, live, expected=expected_trials(sweep)), stop, CSVLoggerCallback(),
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
    from largebatch.sweep.stopping import stop_request

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
    stop_request(folder).unlink(missing_ok=True)  # left by a driver killed while it stopped its trials
    plan = plan_trials(sweep, folder)
    if not plan.todo:
        echo(f"sweep {sweep.name}: every trial has finished ({folder.root})")
        return _outcome(sweep, folder)
    try:
        stopped_by = _run_on_ray(sweep, folder, plan, address, live, resume, echo)
    finally:
        stop_request(folder).unlink(missing_ok=True)  # the trials that saw it have stopped with the cluster
    plan_trials(sweep, folder)  # trials stopped by Ctrl-C: pending until the sweep resumes
    return _outcome(sweep, folder, stopped_by)


def _run_on_ray(sweep: Sweep, folder: SweepFolder, plan: Plan, address: str | None, live: bool, resume: bool,
                echo: Callable[[str], None]) -> int | None:
    """Run the plan's trials on Ray; returns the signal that stopped the driver, if one did."""
    import ray
    from ray import tune

    from largebatch.sweep.cluster import ray_session
    from largebatch.sweep.packing import probe_trials_per_gpu
    from largebatch.sweep.resources import plan_resources
    from largebatch.sweep.stopping import STOP_SIGNALS, GracefulStop
    from largebatch.sweep.trial import TrialSpec, run_trial

    with ray_session(address) as where:
        cluster = ray.cluster_resources()
        resources = plan_resources(sweep.config.resources, sweep.config.devices_per_trial, cluster, sweep.source,
                                   probe=lambda: probe_trials_per_gpu(sweep, sweep.config.resources.cpu))
        if sweep.config.devices_per_trial > 1:
            sweep = _capped(sweep, resources.fit)
        echo(f"sweep {sweep.name} on {where}; {resources.describe(cluster)}")
        echo(f"results: {folder.root} ({len(plan.finished)} trials finished before, {len(plan.todo)} to run)")
        spec = TrialSpec(sweep, folder, resources, launch_provenance(sweep, folder))
        trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec), resources.tune_request())
        stop = GracefulStop(folder)
        with restored_signal_handlers(STOP_SIGNALS):
            _tuner(sweep, folder, plan, trainable, live, resume, stop).fit()
    return stop.signal


@contextmanager
def restored_signal_handlers(signums: tuple[int, ...]) -> Iterator[None]:
    """Puts back the handlers of ``signums`` that were there on entry (Tune and :class:`GracefulStop` replace
    them during ``fit``)."""
    saved = {signum: signal.getsignal(signum) for signum in signums}
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in saved.items():
                signal.signal(signum, handler)


def _outcome(sweep: Sweep, folder: SweepFolder, stopped_by: int | None = None) -> SweepOutcome:
    trials = folder.read_trials()
    return SweepOutcome(folder, trials, interrupted=unfinished(trials, sweep), stopped_by=stopped_by)


def _capped(sweep: Sweep, fit: int) -> Sweep:
    """Data-parallel trials: at most as many at once as the cluster fits (each trial's workers start together)."""
    limit = min(sweep.config.max_concurrent or fit, fit)
    return Sweep(sweep.config.model_copy(update={"max_concurrent": limit}), sweep.experiment, sweep.source)


def expected_trials(sweep: Sweep) -> int:
    """How many trials the sweep runs: grid cells × ``num_samples``."""
    return len(sweep.cells()) * sweep.config.num_samples


def unfinished(trials: Mapping[str, Mapping[str, Any]], sweep: Sweep) -> bool:
    """Whether the trial index ``trials`` lacks some of ``sweep``'s trials or has one pending or running."""
    return len(trials) < expected_trials(sweep) or any(t["state"] in ("pending", "running") for t in trials.values())
