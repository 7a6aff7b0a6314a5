"""The dashboards as W&B workspaces (``wandb-workspaces``), one per dashboard file, from the same view list; each
kind's panels are registered in :mod:`largebatch.dashboard.kinds`.

W&B computes panels from the runs mirrored to a project (the runs' ``wandb/`` folders, uploaded with
``wandb sync``), so a view becomes the panels that show the same data rather than the same computation:

==================  ====================================================================================
generalization_gap  scatter of the gap vs batch size (log x) and vs peak lr
lr_heatmap          parallel coordinates: optimizer → batch size → peak lr → metric; scatter metric vs lr
good_lr_band        scatter of the metric vs peak lr (log x), runs grouped by the dashboard's series
importance          W&B's parameter importance panel (W&B's own random-forest importance and correlation,
                    not PED-ANOVA/fANOVA: the HTML dashboard names its evaluators)
steps_to_target     line plot of the metric vs optimizer step, grouped by batch size, max over runs
trust_ratio         line plot of the trust-ratio min/median/max across layers vs step (log y)
lr_scaling          scatter of peak lr vs batch size (log-log) and parallel coordinates with the metric
curves              line plots of the metrics vs step, grouped by batch size
scaling_regimes     as steps_to_target, plus the logged noise scale vs step by batch size (no fit in W&B)
sharpness           scatter of λ_max vs batch size (log-log) and of the gap vs batch size
==================  ====================================================================================

Kinds defined in their own module (e.g. ``band_survival`` in :mod:`largebatch.dashboard.survival`) describe their
panels there. Column names map to W&B keys: ``eval.X`` → summary ``eval/X`` (the mirror's final evaluation),
``final.X`` and ``best.X`` → summary ``X`` (W&B keeps the last value), ``lr`` → config ``plan.lr``, other columns →
config keys (``optimizer.name``). Runs-table columns with no W&B counterpart (``sweep``, ``status``, ``diverged``)
cannot filter or group a workspace and are reported. Offline, :func:`workspace_spec` is the JSON that
``Workspace.save()`` would send (``Workspace._to_model()``); publishing needs an API key and the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from largebatch.dashboard import views as cfg

if TYPE_CHECKING:
    from largebatch.dashboard.config import DashboardConfig

STEP = "trainer/global_step"  # Lightning's WandbLogger step metric
UNMAPPED = ("sweep", "sweep_dir", "status", "diverged", "path", "run_id", "series")
Key = wr.Config | wr.SummaryMetric


def wandb_key(column: str) -> Key | None:
    """The W&B config or summary key of a runs-table column (mapping in the module docstring), None if none."""
    if column in UNMAPPED:
        return None
    if column == "lr":
        return wr.Config("plan.lr")
    prefix, _, rest = column.partition(".")
    if prefix == "eval" and rest:
        return wr.SummaryMetric(f"eval/{rest}")
    if prefix in ("final", "best") and rest:
        return wr.SummaryMetric(rest)
    return wr.Config(column)


def wandb_column(column: str) -> Key:
    """:func:`wandb_key`, or ValueError for a column with no W&B counterpart."""
    key = wandb_key(column)
    if key is None:
        raise ValueError(f"column {column!r} has no W&B counterpart")
    return key


def _filter_key(column: str) -> Any:
    key = wandb_column(column)
    return expr.Config(key.name) if isinstance(key, wr.Config) else expr.Summary(key.name)


def _columns(columns: Sequence[tuple[str, bool]]) -> list[wr.ParallelCoordinatesPlotColumn]:
    return [wr.ParallelCoordinatesPlotColumn(metric=wandb_column(c), log=log or None) for c, log in columns]


def gap_panels(view: cfg.GapView) -> list[Any]:
    return [
        wr.ScatterPlot(title=f"{view.gap} vs batch size", x=wr.Config("batch_size"), y=wandb_column(view.gap),
                       log_x=True),
        wr.ScatterPlot(title=f"{view.gap} vs peak lr (spread over lr)", x=wandb_column("lr"),
                       y=wandb_column(view.gap), log_x=True),
    ]


def heatmap_panels(view: cfg.HeatmapView) -> list[Any]:
    columns = _columns([("optimizer.name", False), ("batch_size", True), ("lr", True), (view.metric, False)])
    return [
        wr.ParallelCoordinatesPlot(title=f"{view.metric} over lr × batch size", columns=columns),
        wr.ScatterPlot(title=f"{view.metric} vs peak lr", x=wandb_column("lr"), y=wandb_column(view.metric),
                       log_x=True),
    ]


def band_panels(view: cfg.BandView) -> list[Any]:
    return [
        wr.ScatterPlot(
            title=f"{view.metric} vs peak lr (good band: within {view.tolerance} of the best)",
            x=wandb_column("lr"),
            y=wandb_column(view.metric),
            log_x=True,
        )
    ]


def importance_panels(view: cfg.ImportanceView) -> list[Any]:
    return [wr.ParameterImportancePlot(with_respect_to=wandb_column(view.target).name)]


def steps_panels(view: cfg.StepsView) -> list[Any]:
    return [
        wr.LinePlot(
            title=f"{view.metric} vs step, best run per batch size (target {view.target})",
            x=STEP,
            y=[view.metric],
            log_x=True,
            groupby=wr.Config("batch_size"),
            groupby_aggfunc=view.mode or "max",
            groupby_rangefunc="minmax",
        )
    ]


def trust_panels(view: cfg.TrustView) -> list[Any]:
    metrics = ["trust_ratio/min", "trust_ratio/median", "trust_ratio/max"]
    return [wr.LinePlot(title="trust ratio across layers (min/median/max) vs step", x=STEP, y=metrics, log_y=True)]


def lr_scaling_panels(view: cfg.LrScalingView) -> list[Any]:
    columns = _columns([("batch_size", True), ("lr", True), (view.select, False)])
    return [
        wr.ScatterPlot(title="peak lr vs batch size", x=wr.Config("batch_size"), y=wandb_column("lr"), log_x=True,
                       log_y=True),
        wr.ParallelCoordinatesPlot(title=f"batch size → peak lr → {view.select}", columns=columns),
    ]


def curves_panels(view: cfg.CurvesView) -> list[Any]:
    return [
        wr.LinePlot(
            title=f"{metric} vs step, by batch size",
            x=STEP,
            y=[metric],
            log_x=view.log_x,
            groupby=wr.Config("batch_size"),
        )
        for metric in view.metrics
    ]


def regimes_panels(view: cfg.RegimesView) -> list[Any]:
    panels = steps_panels(view)
    if view.noise_scale:
        panels.append(
            wr.LinePlot(title=f"{view.noise_scale} vs step, by batch size", x=STEP, y=[view.noise_scale], log_y=True,
                        groupby=wr.Config("batch_size"))
        )
    return panels


def sharpness_panels(view: cfg.SharpnessView) -> list[Any]:
    return [
        wr.ScatterPlot(title=f"{view.sharpness} vs batch size", x=wr.Config("batch_size"),
                       y=wandb_column(view.sharpness), log_x=True, log_y=True),
        *gap_panels(cfg.GapView(view="generalization_gap", gap=view.gap, select=view.select, mode=view.mode))[:1],
    ]


def build_workspace(
    config: DashboardConfig, entity: str, project: str, run_ids: Sequence[str] = ()
) -> tuple[ws.Workspace, list[str]]:
    """The W&B workspace of one dashboard (a section per view) and notes on what could not be carried over.

    The runset keeps the runs matching the dashboard's ``filters`` (and only ``run_ids`` when given) and groups
    them by its ``series_by`` columns that W&B knows.
    """
    notes = []
    filters = []
    for column, allowed in config.filters.items():
        if wandb_key(column) is None:
            notes.append(f"filter on {column!r} not carried over (no W&B counterpart)")
        else:
            filters.append(_filter_key(column).isin(list(allowed)))
    if run_ids:
        filters.append(expr.Metric("ID").isin(list(run_ids)))
    groupby = [_filter_key(c) for c in config.series_by if wandb_key(c) is not None]
    notes += [
        f"series column {c!r} not carried over (no W&B counterpart)" for c in config.series_by if wandb_key(c) is None
    ]
    notes += [
        f"view {v.page!r}: its own filters apply to the whole W&B runset only if set at dashboard level"
        for v in config.views
        if v.filters
    ]
    from largebatch.dashboard.kinds import KINDS  # the registry imports this module's panels

    sections = [ws.Section(name=v.heading, panels=KINDS[v.kind].panels(v), is_open=True) for v in config.views]
    workspace = ws.Workspace(
        name=config.title,
        entity=entity,
        project=project,
        sections=sections,
        runset_settings=ws.RunsetSettings(filters=filters, groupby=groupby),
    )
    return workspace, notes


def workspace_spec(workspace: ws.Workspace) -> dict[str, Any]:
    """The workspace as the JSON view spec W&B stores (``Workspace._to_model()``), built offline."""
    return workspace._to_model().model_dump(mode="json", by_alias=True, exclude_none=True)
