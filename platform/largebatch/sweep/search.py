"""The searcher that hands out a sweep's trials, the Optuna study behind it, and the scheduler, for Ray Tune.

Grid × sampled keys, exhaustively, with either algorithm. :class:`PlannedSearch` hands out the trials of a
:class:`largebatch.sweep.plan.Plan` in slot order (cells interleaved, so every cell is covered once before any
is repeated) and nothing else, so Tune runs exactly the trials the plan lists:

- ``optuna``: one study covers the sweep. Its define-by-run space declares every grid axis as a categorical
  parameter and every sampled key with its distribution; each trial is enqueued just before it is asked for,
  fixing its grid cell (and, for a trial started before, its sampled values too), so the sampler (TPE,
  conditioned on every finished trial, or QMC) draws only the sampled keys of new trials. Because grid axes are
  real study parameters, the stored study supports importance analysis over batch size, optimizer and the
  sampled keys together. Each study trial carries user attributes ``run_id`` and ``run_dir`` (its run directory),
  so optuna-dashboard users find the run behind a point. Its value is the trial's last reported objective.
- ``random``: each slot's sampled values are drawn from a generator seeded with (``search.seed``, slot), so a
  random sweep is the same whatever the order its trials ran in, interrupted or not.

The study is derived data: at every start it is rebuilt from the plan (finished trials added with
``create_trial``, in the sweep's ``storage`` or a JournalStorage file in the sweep folder, written to a new file
and swapped in), so it can never disagree with the run directories. Tune's own searcher checkpoint is not used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ray.tune.search import Searcher

from largebatch.sweep.config import Choice, IntRange, LogUniform
from largebatch.sweep.folder import SweepFolder
from largebatch.sweep.plan import RUN_ID, Finished, Todo, new_run_id
from largebatch.sweep.space import Sweep, Values

if TYPE_CHECKING:
    import optuna
    from ray.tune.schedulers import TrialScheduler


class OptunaSpace:
    """The sweep's define-by-run space for Optuna: grid axes as categoricals, then the sampled keys."""

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep

    def __call__(self, trial: optuna.Trial | optuna.trial.FixedTrial) -> None:
        for axis in self.sweep.axes:
            trial.suggest_categorical(axis.key, axis.values.labels)
        for key, dist in self.sweep.config.sample.items():
            if isinstance(dist, Choice):
                trial.suggest_categorical(key, Values(tuple(dist.values)).labels)
            elif isinstance(dist, IntRange):
                trial.suggest_int(key, dist.low, dist.high, log=dist.log)
            else:
                trial.suggest_float(key, dist.low, dist.high, log=isinstance(dist, LogUniform))


def random_params(sweep: Sweep, todo: Todo) -> dict[str, Any]:
    """A random-search trial's parameters: its cell and its slot's seeded draw of every sampled key."""
    import numpy as np

    rng = np.random.default_rng([sweep.config.search.seed, todo.slot])
    params: dict[str, Any] = dict(todo.cell)
    for key, dist in sweep.config.sample.items():
        if isinstance(dist, Choice):
            labels = Values(tuple(dist.values)).labels
            params[key] = labels[int(rng.integers(len(labels)))]
        elif isinstance(dist, IntRange):
            if dist.log:
                drawn = math.floor(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high + 1))))
                params[key] = min(drawn, dist.high)
            else:
                params[key] = int(rng.integers(dist.low, dist.high + 1))
        elif isinstance(dist, LogUniform):
            params[key] = float(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high))))
        else:
            params[key] = float(rng.uniform(dist.low, dist.high))
    return params


def run_attrs(folder: SweepFolder, run_id: str) -> dict[str, str]:
    """The user attributes linking a study trial to its run: run id and run directory."""
    return {"run_id": run_id, "run_dir": str(folder.runs_dir / run_id)}


def _sampler(sweep: Sweep) -> optuna.samplers.BaseSampler:
    import optuna

    seed = sweep.config.search.seed
    if sweep.config.search.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _journal(path: os.PathLike[str] | str) -> optuna.storages.BaseStorage:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _fill(sweep: Sweep, folder: SweepFolder, storage: optuna.storages.BaseStorage,
          finished: Sequence[Finished]) -> None:
    """Create the sweep's study in ``storage`` holding ``finished`` (completed, diverged and stopped trials
    complete with their objective, failed ones failed)."""
    import optuna
    from optuna.trial import FixedTrial, TrialState, create_trial

    study = optuna.create_study(storage=storage, study_name=sweep.name,
                                direction="maximize" if sweep.config.mode == "max" else "minimize")
    for trial in finished:
        fixed = FixedTrial(trial.params)
        OptunaSpace(sweep)(fixed)
        failed = trial.value is None
        study.add_trial(create_trial(
            params=fixed.params, distributions=fixed.distributions, user_attrs=run_attrs(folder, trial.run_id),
            state=TrialState.FAIL if failed else TrialState.COMPLETE, value=None if failed else trial.value,
        ))


def rebuild_study(sweep: Sweep, folder: SweepFolder, finished: Sequence[Finished], resume: bool) -> optuna.Study:
    """The sweep's study, rebuilt to hold exactly ``finished`` (see the module docstring).

    In a shared ``storage``, a study of the sweep's name is replaced on ``resume`` and refused otherwise (it would
    be another sweep's).
    """
    import optuna

    if sweep.config.storage is not None:
        storage = optuna.storages.get_storage(sweep.config.storage)
        if sweep.name in optuna.get_all_study_names(storage):
            if not resume:
                raise FileExistsError(f"an Optuna study named {sweep.name!r} already exists in "
                                      f"{sweep.config.storage}; choose another sweep name (--name)")
            optuna.delete_study(study_name=sweep.name, storage=storage)
        _fill(sweep, folder, storage, finished)
    else:
        fresh = folder.journal.with_name(folder.journal.name + ".new")
        fresh.unlink(missing_ok=True)
        _fill(sweep, folder, _journal(fresh), finished)
        os.replace(fresh, folder.journal)
        storage = _journal(folder.journal)
    return optuna.load_study(study_name=sweep.name, storage=storage, sampler=_sampler(sweep))


class PlannedSearch(Searcher):
    """Hands out the plan's trials in order (see the module docstring), then reports that it is finished.

    Each suggestion is the trial's parameters plus its run id (:data:`largebatch.sweep.plan.RUN_ID`). With a
    ``study`` the trial is enqueued with its known parameters and asked for, and told its objective when it
    ends: complete with the last reported value, failed when it raised on every attempt, pruned when it ended
    without a value.
    """

    def __init__(self, sweep: Sweep, folder: SweepFolder, todo: Sequence[Todo], study: optuna.Study | None) -> None:
        super().__init__(metric=sweep.config.metric, mode=sweep.config.mode)
        self.sweep, self.folder, self.study = sweep, folder, study
        self.todo = list(todo)
        self.asked: dict[str, optuna.Trial] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if not self.todo:
            return Searcher.FINISHED
        todo = self.todo.pop(0)
        run_id = todo.run_id or new_run_id(self.sweep, todo.slot)
        if self.study is None:
            params = todo.params or random_params(self.sweep, todo)
        else:
            self.study.enqueue_trial(todo.params or todo.cell, user_attrs=run_attrs(self.folder, run_id))
            trial = self.study.ask()
            OptunaSpace(self.sweep)(trial)
            self.asked[trial_id] = trial
            params = dict(trial.params)
        return {**params, RUN_ID: run_id}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        import optuna

        trial = self.asked.pop(trial_id, None)
        if trial is None or self.study is None:
            return
        value = (result or {}).get(self.metric)
        if value is None:
            state = optuna.trial.TrialState.FAIL if error else optuna.trial.TrialState.PRUNED
            self.study.tell(trial, state=state)
        else:
            self.study.tell(trial, value)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Nothing to save: a sweep resumes from its folder (:mod:`largebatch.sweep.plan`), not from Tune's state."""


def build_search(sweep: Sweep, folder: SweepFolder, todo: Sequence[Todo], finished: Sequence[Finished],
                 resume: bool) -> Searcher:
    """The searcher for ``todo`` (with the study rebuilt from ``finished`` under optuna), limited to
    ``max_concurrent`` trials at once when that is set."""
    from ray.tune.search import ConcurrencyLimiter

    study = rebuild_study(sweep, folder, finished, resume) if sweep.config.search.algorithm == "optuna" else None
    searcher: Searcher = PlannedSearch(sweep, folder, todo, study)
    if sweep.config.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=sweep.config.max_concurrent)
    return searcher


def build_scheduler(sweep: Sweep) -> TrialScheduler | None:
    """ASHA on the sweep's time axis (``max_t`` from the budget when not given), or None (run every trial)."""
    from ray.tune.schedulers import ASHAScheduler

    scheduler = sweep.config.scheduler
    if scheduler.name == "none":
        return None
    return ASHAScheduler(
        time_attr=scheduler.time_attr, metric=sweep.config.metric, mode=sweep.config.mode,
        max_t=sweep.asha_max_t(), grace_period=scheduler.grace_period, reduction_factor=scheduler.reduction_factor,
        stop_last_trials=False,  # a trial reaching max_t ends by itself, with its final result
    )
