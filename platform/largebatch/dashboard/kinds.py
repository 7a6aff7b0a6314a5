"""The registry of dashboard view kinds: one line per kind, naming its schema, default heading, page and W&B panels.

A view kind is everything one ``view:`` entry of a dashboard file needs:

- ``schema``: its keys (a :class:`~largebatch.dashboard.views.BaseView` subclass whose ``view`` literal is the
  kind's name; dashboard files are validated against the registered schemas),
- ``heading``: the default page heading,
- ``page``: ``page(view, context) -> Page``, the HTML page (tables, figures, a title stating the result),
- ``panels``: ``panels(view) -> list``, the W&B workspace panels showing the same data.

Adding a kind means writing those in its own module (as :mod:`largebatch.dashboard.survival` does) and adding
one ``ViewKind(...)`` line to :data:`KINDS`. :func:`register` refuses, at import, a kind that lacks a part or
reuses a name, so an incomplete kind fails loudly instead of at the first dashboard that uses it. The kinds
written before this registry keep their parts in the shared modules (``views``, ``pages``, ``figures``,
``workspace``).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from largebatch.analysis.tables import filter_runs
from largebatch.dashboard import pages, race, survival, views, workspace
from largebatch.dashboard.pages import Context, Page


@dataclass(frozen=True)
class ViewKind:
    """One view kind's parts (see the module docstring)."""

    schema: type[views.BaseView]
    heading: str
    page: Callable[[Any, Context], Page]
    panels: Callable[[Any], list[Any]]

    @property
    def name(self) -> str:
        """The ``view:`` value that selects this kind: the schema's ``view`` literal."""
        field = self.schema.model_fields.get("view") if isinstance(self.schema, type) else None
        names = typing.get_args(field.annotation) if field is not None else ()
        if len(names) != 1 or not isinstance(names[0], str):
            raise TypeError(f"view kind schema {self.schema!r} needs a field `view: Literal['<name>']`")
        return names[0]


def register(*kinds: ViewKind) -> dict[str, ViewKind]:
    """``kinds`` by name, in order; TypeError naming the kind and the part when one is missing or wrong."""
    found: dict[str, ViewKind] = {}
    for kind in kinds:
        if not (isinstance(kind.schema, type) and issubclass(kind.schema, views.BaseView)):
            raise TypeError(f"view kind schema {kind.schema!r} is not a BaseView subclass")
        name = kind.name
        missing = [part for part, ok in (
            ("heading", isinstance(kind.heading, str) and kind.heading.strip()),
            ("page", callable(kind.page)),
            ("panels", callable(kind.panels)),
        ) if not ok]
        if missing:
            raise TypeError(f"view kind '{name}' is incomplete: no {', '.join(missing)}")
        if name in found:
            raise TypeError(f"view kind '{name}' is registered twice")
        found[name] = kind
    return found


KINDS: dict[str, ViewKind] = register(
    ViewKind(views.GapView, "Generalization gap vs batch size", pages.gap_page, workspace.gap_panels),
    ViewKind(views.HeatmapView, "Learning rate × batch size", pages.heatmap_page, workspace.heatmap_panels),
    ViewKind(views.BandView, "Good learning-rate band", pages.band_page, workspace.band_panels),
    ViewKind(survival.SurvivalView, survival.HEADING, survival.survival_page, survival.survival_panels),
    ViewKind(views.ImportanceView, "Hyperparameter importance", pages.importance_page, workspace.importance_panels),
    ViewKind(views.StepsView, "Steps to target vs batch size", pages.steps_page, workspace.steps_panels),
    ViewKind(race.RaceView, race.HEADING, race.race_page, race.race_panels),
    ViewKind(views.TrustView, "Per-layer trust ratios", pages.trust_page, workspace.trust_panels),
    ViewKind(views.LrScalingView, "Learning-rate scaling rule check", pages.lr_scaling_page,
             workspace.lr_scaling_panels),
    ViewKind(views.CurvesView, "Training curves", pages.curves_page, workspace.curves_panels),
    ViewKind(views.RegimesView, "Scaling regimes and the critical batch size", pages.regimes_page,
             workspace.regimes_panels),
    ViewKind(views.SharpnessView, "Sharpness and generalization gap vs batch size", pages.sharpness_page,
             workspace.sharpness_panels),
)


def build_page(view: views.BaseView, ctx: Context) -> Page:
    """The page of ``view`` over ``ctx`` (its own ``filters`` applied to the dashboard's runs)."""
    runs = filter_runs(ctx.runs, view.filters) if view.filters else ctx.runs
    return KINDS[view.kind].page(view, Context(ctx.results, runs, ctx.by, ctx.colors))
