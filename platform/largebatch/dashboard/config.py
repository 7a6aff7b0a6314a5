"""Dashboard files (``dashboards/*.yaml``): which views, on which metrics, over which runs; validated on load.

A dashboard is a title, optional ``filters`` (runs-table column → allowed values, applied to every view),
``series_by`` (the columns whose values make one line/colour per series: by default the sweep and the
optimizer, so sweeps compared side by side stay apart; labels show only the columns that vary) and a list of
``views``. Each view names its kind in ``view`` and takes that kind's keys; ``name`` (default: the kind) names its
page, ``title`` overrides the page title, ``filters`` narrow its runs further. Adding a view is a YAML edit.
Unknown views or keys raise :class:`~largebatch.train.config.ConfigError` naming the file, the key and what is
allowed. The view kinds and their keys are those registered in :mod:`largebatch.dashboard.kinds` (a new kind:
its own module plus one line there). Metric and column names are runs-table columns (``eval.val_acc``,
``final.val/acc``, ``lr``, ...) or, for ``steps_to_target``, ``scaling_regimes`` and ``curves``, logged metric
names (``val/acc``); they are checked against the data when the dashboard is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, ValidationError, model_validator

from largebatch.analysis.cells import DEFAULT_BY
from largebatch.core.errors import ConfigError, format_errors, tag_error, tagged_list_key
from largebatch.core.yaml_io import read_yaml
from largebatch.dashboard.kinds import KINDS
from largebatch.dashboard.views import BaseView, Filters, Section

VIEWS: dict[str, type[BaseView]] = {name: kind.schema for name, kind in KINDS.items()}
HEADINGS = {name: kind.heading for name, kind in KINDS.items()}  # default page headings
View = Annotated[Union[tuple(VIEWS.values())], Field(discriminator="view")]  # type: ignore[valid-type]  # noqa: UP007


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
