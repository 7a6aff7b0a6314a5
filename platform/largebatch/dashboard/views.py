"""The keys of each dashboard view kind (pydantic schemas), shared by the view kinds defined in this package.

Each schema names its kind in a ``view`` literal; :mod:`largebatch.dashboard.kinds` registers every kind (schema,
heading, page, W&B panels) and :mod:`largebatch.dashboard.config` validates dashboard files against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from largebatch.analysis.curves import AXES
from largebatch.analysis.evaluators import DEFAULT_PARAMS, EVALUATORS
from largebatch.analysis.regimes import B_SIMPLE
from largebatch.analysis.sharpness import LAMBDA_MAX

Mode = Literal["max", "min"] | None
Filters = dict[str, list[Any]]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseView(Section):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$", description="page name (default: the view kind)")
    title: str | None = None
    description: str | None = None
    filters: Filters = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.view  # type: ignore[attr-defined,no-any-return]

    @property
    def page(self) -> str:
        return self.name or self.kind

    @property
    def heading(self) -> str:
        from largebatch.dashboard.kinds import KINDS  # the registry imports the schemas

        return self.title or KINDS[self.kind].heading


class GapView(BaseView):
    """Generalization gap vs batch size: best trial per cell by ``select``, spread over learning rates."""

    view: Literal["generalization_gap"]
    gap: str = "eval.gen_gap"
    select: str = "eval.val_acc"
    mode: Mode = None


class HeatmapView(BaseView):
    """Final ``metric`` over lr × batch size, diverged cells marked. ``lr``: the peak rate (``lr``) or the base
    rate (``optimizer.lr``, at ``lr_scaling.reference_batch_size``; a rectangular grid for sweeps over it)."""

    view: Literal["lr_heatmap"]
    metric: str = "eval.val_acc"
    mode: Mode = None
    lr: Literal["lr", "optimizer.lr"] = "lr"
    bins_per_decade: int = Field(4, ge=1, le=20)


class BandView(BaseView):
    """Width of the good-lr band per batch size; ``tolerance`` is absolute, in the metric's units."""

    view: Literal["good_lr_band"]
    metric: str = "eval.val_acc"
    mode: Mode = None
    lr: Literal["lr", "optimizer.lr"] = "lr"
    tolerance: float = Field(0.02, ge=0)


class ImportanceView(BaseView):
    """Parameter importance from the sweep's stored Optuna study or a study built from the runs table."""

    view: Literal["importance"]
    target: str = "final.val/acc"
    mode: Mode = None
    params: list[str] = Field(default_factory=lambda: list(DEFAULT_PARAMS), min_length=1)
    evaluators: list[Literal[tuple(EVALUATORS)]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(EVALUATORS), min_length=1
    )
    source: Literal["auto", "journal", "runs"] = "auto"


class StepsView(BaseView):
    """Steps and examples to reach ``target`` of a logged ``metric`` vs batch size, with perfect scaling."""

    view: Literal["steps_to_target"]
    metric: str = "val/acc"
    target: float
    mode: Mode = None


class TrustView(BaseView):
    """Per-layer trust ratio (layer × step heat map) of the best run per cell or series, and at initialisation."""

    view: Literal["trust_ratio"]
    select: str = "eval.val_acc"
    mode: Mode = None
    per: Literal["cell", "series"] = "cell"


class LrScalingView(BaseView):
    """Best peak lr per batch size vs the linear and sqrt rules, with the fitted exponent."""

    view: Literal["lr_scaling"]
    select: str = "eval.val_acc"
    mode: Mode = None


class CurvesView(BaseView):
    """Logged ``metrics`` of the best run per cell against ``x``."""

    view: Literal["curves"]
    metrics: list[str] = Field(min_length=1)
    x: Literal[AXES] = "samples"  # type: ignore[valid-type]
    select: str = "eval.val_acc"
    mode: Mode = None
    log_x: bool = True


class RegimesView(StepsView):
    """S(B) fitted by S_min·(1 + B_crit/B) with the perfect-scaling, diminishing-returns and maximal-parallelism
    regions (``tolerance``: rule in :mod:`largebatch.analysis.regimes`), the trade-off curve, and the B_simple
    prediction of B_crit from the logged ``noise_scale`` metric (null: no overlay)."""

    view: Literal["scaling_regimes"]  # type: ignore[assignment]
    tolerance: float = Field(0.25, gt=0, lt=1)
    noise_scale: str | None = B_SIMPLE


class SharpnessView(BaseView):
    """λ_max at the end of training vs batch size next to the generalization gap, best run per cell."""

    view: Literal["sharpness"]
    sharpness: str = LAMBDA_MAX
    gap: str = "eval.gen_gap"
    loss: str = "eval.train_loss"
    select: str = "eval.val_acc"
    mode: Mode = None
