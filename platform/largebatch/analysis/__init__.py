"""Analysis of stored results with pandas: tidy tables, then one function per scaling/sensitivity view.

    from largebatch.analysis import load_results, generalization_gap, steps_to_target

    results = load_results(["runs/quickstart"])           # runs, sweeps or run directories, any mix
    generalization_gap(results.finished())                  # one row per optimizer × batch size
    steps_to_target(results.finished(), results.history, metric="val/acc", target=0.6)

Modules: ``tables`` (loading: runs, history, layers), ``cells`` (series × batch-size cells, best run per cell),
``generalization`` (gap vs batch size), ``sensitivity`` (lr × batch heat map, good-lr band), ``importance``
(Optuna studies and named evaluators), ``steps`` (steps/examples to a target, perfect scaling), ``trust``
(per-layer trust ratios), ``lr_scaling`` (best lr vs the linear and sqrt rules, fitted exponent), ``curves``,
``regimes`` (fitted S(B) = S_min(1 + B_crit/B), scaling regions, B_simple prediction vs the fitted B_crit),
``sharpness`` (λ_max vs batch size next to the generalization gap), ``survival`` (how far each series' good-lr
band survives as the batch grows, and the verdict comparing series).
Every view takes a runs table (and the history or layer table where it needs one) and returns a DataFrame, so
views work on any subset of runs. Nothing here imports Ray, Lightning or torch; the names of ``importance``
(Optuna) are imported on first access (PEP 562), so loading and tabulating results imports no Optuna.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from largebatch.analysis.cells import best_in_cells, with_series
from largebatch.analysis.curves import curves
from largebatch.analysis.generalization import generalization_gap
from largebatch.analysis.lr_scaling import fit_power_law, lr_scaling
from largebatch.analysis.regimes import (
    compare_prediction,
    fit_scaling,
    fitted_curve,
    noise_scale_at_target,
    scaling_regimes,
)
from largebatch.analysis.sensitivity import good_lr_band, lr_batch_grid
from largebatch.analysis.sharpness import rank_correlation, sharpness_vs_batch
from largebatch.analysis.steps import first_reaching, race_to_target, steps_to_target
from largebatch.analysis.survival import band_survival
from largebatch.analysis.tables import Results, direction, load_results
from largebatch.analysis.trust import select_runs, trust_ratio_at_init, trust_ratio_history

if TYPE_CHECKING:  # imported on first access at run time (see __getattr__)
    from largebatch.analysis.importance import EVALUATORS, NamedStudy, param_importance, runs_study, studies

_IMPORTANCE = ("EVALUATORS", "NamedStudy", "param_importance", "runs_study", "studies")

__all__ = [
    "EVALUATORS",
    "NamedStudy",
    "Results",
    "band_survival",
    "best_in_cells",
    "compare_prediction",
    "curves",
    "direction",
    "first_reaching",
    "fit_power_law",
    "fit_scaling",
    "fitted_curve",
    "generalization_gap",
    "good_lr_band",
    "load_results",
    "lr_batch_grid",
    "lr_scaling",
    "noise_scale_at_target",
    "param_importance",
    "rank_correlation",
    "runs_study",
    "scaling_regimes",
    "select_runs",
    "sharpness_vs_batch",
    "race_to_target",
    "steps_to_target",
    "studies",
    "trust_ratio_at_init",
    "trust_ratio_history",
    "with_series",
]


def __getattr__(name: str) -> Any:
    if name not in _IMPORTANCE:
        raise AttributeError(f"module 'largebatch.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module("largebatch.analysis.importance"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
