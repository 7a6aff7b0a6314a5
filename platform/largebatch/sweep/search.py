"""Search algorithm, search space and scheduler for Ray Tune, from a sweep.

Grid × sampled keys, exhaustively, with either algorithm:

- ``random``: the grid is Tune's ``grid_search`` and sampled keys are Tune domains; Tune's
  BasicVariantGenerator crosses them natively, ``num_samples`` times per cell.
- ``optuna``: Ray's OptunaSearch rejects ``grid_search``, and Optuna's GridSampler cannot be combined with TPE
  or QMC. Instead one study covers the sweep: its define-by-run space declares every grid axis as a categorical
  parameter and every sampled key with its distribution, and every (cell, repeat) is enqueued up front as a
  partial trial (``points_to_evaluate`` → ``study.enqueue_trial``) fixing only the grid parameters. Optuna
  hands the enqueued trials out in order, samples the remaining parameters with the chosen sampler (TPE
  conditioned on all finished trials, or QMC), and Tune runs exactly cells × ``num_samples`` trials — each cell
  ``num_samples`` times, cells interleaved so every cell is covered once before any is repeated. Because grid
  axes are real study parameters, the stored study supports importance analysis over batch size, optimizer
  and the sampled keys together. The study lives in ``storage`` (default: JournalStorage in the sweep folder)
  under the sweep's name, and its objective is each trial's last reported metric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from largebatch.sweep.config import Choice, IntRange, LogUniform, Uniform
from largebatch.sweep.folder import SweepFolder
from largebatch.sweep.space import Sweep, Values

if TYPE_CHECKING:
    import optuna
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import SearchAlgorithm, Searcher


class OptunaSpace:
    """The sweep's define-by-run space for Optuna: grid axes as categoricals, then the sampled keys."""

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep

    def __call__(self, trial: optuna.Trial) -> None:
        for axis in self.sweep.axes:
            trial.suggest_categorical(axis.key, axis.values.labels)
        for key, dist in self.sweep.config.sample.items():
            if isinstance(dist, Choice):
                trial.suggest_categorical(key, Values(tuple(dist.values)).labels)
            elif isinstance(dist, IntRange):
                trial.suggest_int(key, dist.low, dist.high, log=dist.log)
            else:
                trial.suggest_float(key, dist.low, dist.high, log=isinstance(dist, LogUniform))


def tune_domain(dist: LogUniform | Uniform | IntRange | Choice) -> Any:
    """A sampled key as a Tune domain (integers: both bounds included)."""
    from ray import tune

    if isinstance(dist, Choice):
        return tune.choice(Values(tuple(dist.values)).labels)
    if isinstance(dist, IntRange):
        return (tune.lograndint if dist.log else tune.randint)(dist.low, dist.high + 1)
    return (tune.loguniform if isinstance(dist, LogUniform) else tune.uniform)(dist.low, dist.high)


def optuna_storage(sweep: Sweep, folder: SweepFolder) -> optuna.storages.BaseStorage:
    """The sweep's ``storage`` URL, or a JournalStorage file in its results folder."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if sweep.config.storage is not None:
        return optuna.storages.get_storage(sweep.config.storage)
    return optuna.storages.JournalStorage(JournalFileBackend(str(folder.journal)))


def _sampler(sweep: Sweep) -> optuna.samplers.BaseSampler:
    import optuna

    seed = sweep.config.search.seed
    if sweep.config.search.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def build_search(sweep: Sweep, folder: SweepFolder) -> tuple[dict[str, Any], SearchAlgorithm | Searcher, int]:
    """(Tune ``param_space``, search algorithm, Tune ``num_samples``) for the sweep (see the module docstring),
    the algorithm limited to ``max_concurrent`` trials at once when that is set."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    config = sweep.config
    if config.search.algorithm == "random":
        space = {axis.key: tune.grid_search(axis.values.labels) for axis in sweep.axes}
        space |= {key: tune_domain(dist) for key, dist in config.sample.items()}
        generator = BasicVariantGenerator(random_state=config.search.seed, max_concurrent=config.max_concurrent or 0)
        return space, generator, config.num_samples
    points = [cell for _ in range(config.num_samples) for cell in sweep.cells()]
    searcher = OptunaSearch(
        OptunaSpace(sweep), metric=config.metric, mode=config.mode, points_to_evaluate=points,
        sampler=_sampler(sweep), study_name=sweep.name, storage=optuna_storage(sweep, folder),
    )
    if config.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=config.max_concurrent)
    return {}, searcher, len(points)


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

