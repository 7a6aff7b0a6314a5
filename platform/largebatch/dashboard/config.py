"""Dashboard files (``dashboards/*.yaml``): which views, on which metrics, over which runs; validated on load.

A dashboard is a title, optional ``filters`` (runs-table column → allowed values, applied to every view),
``series_by`` (the columns whose values make one line/colour per series: by default the sweep and the
optimizer, so sweeps compared side by side stay apart; labels show only the columns that vary) and a list of
``views``. Each view names its kind in ``view`` and takes that kind's keys; ``name`` (default: the kind) names its
page, ``title`` overrides the page title, ``filters`` narrow its runs further. Adding a view is a YAML edit.
Unknown views or keys raise :class:`~largebatch.train.config.ConfigError` naming the file, the key and what is
allowed. Metric and column names are runs-table columns (``eval.val_acc``, ``final.val/acc``, ``lr``, ...) or, for
``steps_to_target``, ``scaling_regimes`` and ``curves``, logged metric names (``val/acc``); they are checked
against the data when the dashboard is built.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from largebatch.analysis.cells import DEFAULT_BY
from largebatch.analysis.curves import AXES
from largebatch.analysis.importance import DEFAULT_PARAMS, EVALUATORS
from largebatch.analysis.regimes import B_SIMPLE
from largebatch.analysis.sharpness import LAMBDA_MAX
from largebatch.train.config import ConfigError, format_errors, read_yaml, tag_error, tagged_list_key

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
        return self.title or HEADINGS[self.kind]


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


class SurvivalView(BaseView):
    """Does each series' good-lr band survive to larger batches, and where does it stop? One bar for every cell:
    ``metric`` within ``tolerance`` (absolute) of the best run of the view (:mod:`largebatch.analysis.survival`)."""

    view: Literal["band_survival"]
    metric: str = "eval.val_acc"
    mode: Mode = None
    lr: Literal["lr", "optimizer.lr"] = "lr"
    tolerance: float = Field(0.05, ge=0)


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


VIEW_TYPES: tuple[type[BaseView], ...] = (
    GapView,
    HeatmapView,
    BandView,
    SurvivalView,
    ImportanceView,
    StepsView,
    TrustView,
    LrScalingView,
    CurvesView,
    RegimesView,
    SharpnessView,
)
VIEWS: dict[str, type[BaseView]] = {typing.get_args(v.model_fields["view"].annotation)[0]: v for v in VIEW_TYPES}
HEADINGS = {  # default page headings
    "generalization_gap": "Generalization gap vs batch size",
    "lr_heatmap": "Learning rate × batch size",
    "good_lr_band": "Good learning-rate band",
    "band_survival": "Does the good learning-rate band survive larger batches?",
    "importance": "Hyperparameter importance",
    "steps_to_target": "Steps to target vs batch size",
    "trust_ratio": "Per-layer trust ratios",
    "lr_scaling": "Learning-rate scaling rule check",
    "curves": "Training curves",
    "scaling_regimes": "Scaling regimes and the critical batch size",
    "sharpness": "Sharpness and generalization gap vs batch size",
}
View = Annotated[
    GapView
    | HeatmapView
    | BandView
    | SurvivalView
    | ImportanceView
    | StepsView
    | TrustView
    | LrScalingView
    | CurvesView
    | RegimesView
    | SharpnessView,
    Field(discriminator="view"),
]


class DashboardConfig(Section):
    """One dashboard: a title, the runs it covers (``filters``), how runs form series, and its views."""

    title: str
    description: str = ""
    series_by: list[str] = Field(default_factory=lambda: list(DEFAULT_BY), min_length=1)
    filters: Filters = Field(default_factory=dict)
    views: list[View] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_pages(self) -> DashboardConfig:
        pages = [v.page for v in self.views]
        repeated = sorted({p for p in pages if pages.count(p) > 1})
        if repeated:
            raise ValueError(f"two views share the page name {', '.join(repeated)}; give each a distinct 'name'")
        return self


def _allowed(loc: tuple[str | int, ...], data: Any) -> list[str]:
    """The keys allowed at ``loc`` (a view's keys depend on its kind)."""
    if loc[:1] == ("views",) and len(loc) >= 2:
        views = data.get("views") if isinstance(data, Mapping) else None
        entry = views[loc[1]] if isinstance(views, list) and isinstance(loc[1], int) else None
        model = VIEWS.get(entry.get("view")) if isinstance(entry, Mapping) else None
        return sorted(model.model_fields) if model is not None else []
    return sorted(DashboardConfig.model_fields) if not loc else []


def validate_dashboard(data: Mapping[str, Any], source: str) -> DashboardConfig:
    """Validate plain dashboard data; ConfigError names ``source`` and every offending key."""
    try:
        return DashboardConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(format_errors(
            err, source, key=tagged_list_key(VIEWS), special=tag_error("view", VIEWS),
            allowed_keys=lambda loc: _allowed(tuple(p for p in loc if p not in VIEWS), data))) from None


def load_dashboard(path: str | Path) -> DashboardConfig:
    """Read and validate a dashboard file."""
    return validate_dashboard(read_yaml(path), str(path))


def dashboard_name(path: str | Path) -> str:
    """A dashboard's name: its file's stem, made safe for file names (``scaling``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(path).stem).strip("-") or "dashboard"
