"""Hyperparameter importance from Optuna studies, with the evaluator always named.

Two evaluators, which can rank parameters differently on the same trials (opposite rankings have been seen on a
40-trial study), so every result carries its evaluator's name:

- ``ped-anova``: PED-ANOVA (Watanabe et al. 2023, IJCAI, arXiv:2304.10255), Optuna's default: how much each
  parameter's distribution in the top ``target_quantile`` of trials differs from its distribution overall.
- ``fanova``: fANOVA (Hutter et al. 2014, ICML): variance decomposition of a random-forest fit of the objective
  (Optuna's implementation, scikit-learn; seeded here so results repeat).

Studies: a sweep folder's stored study (``optuna.journal``, read through ``JournalStorage(JournalFileBackend)``;
its objective is the sweep's metric) or, for runs without one, a study built from the runs table with
``optuna.create_trial``/``add_trial`` (one per sweep label; parameters = the given runs-table columns that vary,
objective = ``target``). Either way the trials are copied into an in-memory study in which only a trial without a
finite objective becomes a FAIL trial, since importance is computed over COMPLETE trials only.

Diverged trials are *included* whenever their objective is finite (an accuracy objective is: a diverged model
scores at chance level, its last logged value), in both kinds of study: divergence is an outcome of the
hyperparameters, and leaving those trials out would hide exactly the learning rates that matter most. A diverged
trial whose objective is NaN or infinite (a loss, or what Ray's reporter stored as ±inf) cannot be scored and is
left out; the lr × batch heat map shows every divergence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import BaseImportanceEvaluator, FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from largebatch.analysis.evaluators import DEFAULT_PARAMS, EVALUATORS
from largebatch.analysis.tables import Results, direction, require

MIN_TRIALS = 2


@dataclass(frozen=True)
class NamedStudy:
    """An in-memory study and where its trials came from (``optuna.journal`` path or ``runs table``)."""

    name: str
    source: str
    target: str
    study: optuna.Study

    @property
    def n_complete(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def evaluator(name: str) -> BaseImportanceEvaluator:
    """The importance evaluator called ``name`` (a key of ``EVALUATORS``)."""
    if name == "ped-anova":
        return PedAnovaImportanceEvaluator()
    if name == "fanova":
        return FanovaImportanceEvaluator(seed=0)
    raise ValueError(f"unknown importance evaluator {name!r}; allowed: {', '.join(EVALUATORS)}")


def _finite_copy(trials: Iterable[FrozenTrial], study_direction: str) -> optuna.Study:
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line per study
    try:
        study = optuna.create_study(direction="maximize" if study_direction == "max" else "minimize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for trial in trials:
        value = trial.value if trial.state == TrialState.COMPLETE else None
        ok = value is not None and math.isfinite(value)
        study.add_trial(
            optuna.create_trial(
                state=TrialState.COMPLETE if ok else TrialState.FAIL,
                value=value if ok else None,
                params=trial.params,
                distributions=trial.distributions,
            )
        )
    return study


def journal_studies(path: str | Path) -> list[NamedStudy]:
    """Every study in the Optuna journal at ``path``, as finite in-memory copies (see the module docstring)."""
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    found = []
    for name in optuna.get_all_study_names(storage):
        stored = optuna.load_study(study_name=name, storage=storage)
        trials = stored.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED))
        mode = "max" if stored.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
        objective = "the sweep's objective (its metric's last reported value)"
        found.append(NamedStudy(name, f"optuna.journal ({path})", objective, _finite_copy(trials, mode)))
    return found


def _distribution(column: pd.Series) -> BaseDistribution:
    """The Optuna distribution spanning a runs-table column: categorical for text and booleans, else int or float
    on a log scale when positive and spanning at least a decade."""
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return CategoricalDistribution(sorted(column.astype(str).unique()))
    low, high = column.min(), column.max()
    log = bool(low > 0 and high / low >= 10)
    if pd.api.types.is_integer_dtype(column):
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _param_value(value: object, distribution: BaseDistribution) -> str | int | float:
    if isinstance(distribution, CategoricalDistribution):
        return str(value)
    return int(value) if isinstance(distribution, IntDistribution) else float(value)  # type: ignore[arg-type]


def runs_study(runs: pd.DataFrame, params: Sequence[str], target: str, mode: str | None = None) -> optuna.Study:
    """A study with one trial per run: ``params`` (columns that vary; others are dropped) and ``target`` as the
    objective (diverged runs included with their value; FAIL where it is missing or not finite)."""
    require(runs, [*params, target])
    varying = [p for p in params if runs[p].nunique(dropna=True) > 1 and runs[p].notna().all()]
    distributions = {p: _distribution(runs[p]) for p in varying}
    trials = []
    for _, run in runs.iterrows():
        value = float(run[target]) if pd.notna(run[target]) and math.isfinite(run[target]) else None
        values = {p: _param_value(run[p], distributions[p]) for p in varying}
        trials.append(
            optuna.create_trial(
                state=TrialState.COMPLETE if value is not None else TrialState.FAIL,
                value=value,
                params=values,
                distributions=distributions,
            )
        )
    return _finite_copy(trials, direction(target, mode))


def studies(
    results: Results,
    *,
    runs: pd.DataFrame | None = None,
    params: Sequence[str] = DEFAULT_PARAMS,
    target: str = "final.val/acc",
    mode: str | None = None,
    source: str = "auto",
) -> list[NamedStudy]:
    """The studies to evaluate: ``source`` ``journal`` (stored studies only), ``runs`` (built from the runs
    table only) or ``auto`` (stored studies, and runs-table studies for runs whose sweep has none). ``runs``
    restricts the runs considered (default: the finished runs)."""
    if source not in ("auto", "journal", "runs"):
        raise ValueError(f"unknown study source {source!r}; allowed: auto, journal, runs")
    runs = results.finished() if runs is None else runs
    found: list[NamedStudy] = []
    covered: set[str] = set()
    if source != "runs":
        for sweep_dir, journal in results.studies.items():
            if sweep_dir in set(runs["sweep_dir"]):
                found += journal_studies(journal)
                covered.add(sweep_dir)
    if source != "journal":
        chosen = [p for p in params if p in runs.columns]
        for sweep, group in runs[~runs["sweep_dir"].isin(covered)].groupby("sweep", sort=True):
            found.append(NamedStudy(sweep or "runs", "runs table", target, runs_study(group, chosen, target, mode)))
    return found


def param_importance(found: Sequence[NamedStudy], evaluators: Sequence[str] = ("ped-anova",)) -> pd.DataFrame:
    """Normalised importances (summing to 1 per study and evaluator): ``study, source, target, evaluator,
    evaluator_name, param, importance, n_trials``, most important first. Studies with fewer than two COMPLETE
    trials or no varying parameter are left out."""
    rows = []
    for named in found:
        complete = named.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < MIN_TRIALS or not any(complete[0].params):
            continue
        for name in evaluators:
            scores = optuna.importance.get_param_importances(named.study, evaluator=evaluator(name))
            rows += [
                {
                    "study": named.name,
                    "source": named.source,
                    "target": named.target,
                    "evaluator": name,
                    "evaluator_name": EVALUATORS[name],
                    "param": param,
                    "importance": float(score),
                    "n_trials": len(complete),
                }
                for param, score in scores.items()
            ]
    columns = ["study", "source", "target", "evaluator", "evaluator_name", "param", "importance", "n_trials"]
    return pd.DataFrame(rows, columns=columns)
