"""What a trial tells Ray Tune: the epoch's metrics and where it stands on the time axes, then its outcome.

Each result (sent by :class:`largebatch.sweep.training.EpochReporter`) carries every metric the run has at the
end of a training epoch (Lightning's callback metrics, after validation, plus the generalization-gap values),
``epochs`` (completed epochs, fractional for a partial last epoch), ``samples`` (training samples seen =
optimizer steps × effective batch size), ``steps`` and ``status`` (``running`` until the trial's last result,
which carries the run's final status). Either time axis compares trials of different batch sizes fairly, which
Tune's default axis (the number of reports) does only when every trial reports per epoch.

The objective is never NaN or infinite toward the searcher: a non-finite value is replaced by the worst
possible one (−inf when maximising, +inf when minimising), so a diverged trial ranks last in Optuna and ASHA.
The run's own files keep the true values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Report = Callable[[dict[str, Any]], None]


def worst(mode: str) -> float:
    """The worst possible objective value for ``mode``."""
    return -math.inf if mode == "max" else math.inf


def with_finite_objective(metrics: Mapping[str, Any], metric: str, mode: str) -> dict[str, Any]:
    """``metrics`` with ``metric`` present and finite-or-worst (see the module docstring)."""
    value = metrics.get(metric)
    finite = isinstance(value, (int, float)) and math.isfinite(value)
    return {**metrics, metric: value if finite else worst(mode)}


def time_axes(steps: int, plan: Mapping[str, Any], samples: int | None = None) -> dict[str, float]:
    """``steps``, ``epochs`` and ``samples`` after ``steps`` optimizer steps of a run with batch ``plan``; a run
    whose batch changes gives the ``samples`` it has seen (epochs then count passes of the plan's epoch)."""
    if samples is None:
        return {"steps": steps, "epochs": steps / plan["steps_per_epoch"], "samples": steps * plan["batch_size"]}
    return {"steps": steps, "epochs": samples / (plan["steps_per_epoch"] * plan["batch_size"]), "samples": samples}


def finished_result(summary: Mapping[str, Any], metric: str, mode: str) -> dict[str, Any]:
    """A trial's last result, from its finished run's ``summary.json``: final metric values, time axes, status
    and final evaluation (``eval/<name>``)."""
    result = {**summary["final"], **time_axes(summary["steps"], summary["plan"], summary.get("samples_seen")),
              **{f"eval/{k}": v for k, v in (summary.get("eval") or {}).items()}, "status": summary["status"]}
    return with_finite_objective(result, metric, mode)
