"""Build dashboards: load the results once, then each dashboard file's views into pages, then the site."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from largebatch.analysis import load_results, with_series
from largebatch.analysis.tables import filter_runs, require
from largebatch.core.errors import ConfigError
from largebatch.dashboard.config import dashboard_name, load_dashboard
from largebatch.dashboard.kinds import build_page
from largebatch.dashboard.pages import Context
from largebatch.dashboard.site import BuiltPage, write_site
from largebatch.dashboard.style import palette
from largebatch.records.reader import Damage
from largebatch.shipped import shipped_locations

DEFAULT_DASHBOARDS = ("sensitivity.yaml", "scaling.yaml")  # the first view of the first is the index's headline
SERIES = ("series",)  # views group by the dashboard-wide label, so colours and labels agree on every page


def default_configs() -> list[Path]:
    """``sensitivity.yaml`` and ``scaling.yaml`` from ``./dashboards``, else from the source checkout's
    ``dashboards/``, else from the installed package's copy; ConfigError when none has them."""
    folders = shipped_locations("dashboards")
    for folder in folders:
        found = [folder / name for name in DEFAULT_DASHBOARDS if (folder / name).is_file()]
        if found:
            return found
    raise ConfigError(f"no {DEFAULT_DASHBOARDS[0]} in {', '.join(map(str, folders))}; give --config FILE")


@dataclass(frozen=True)
class Built:
    """What ``build`` wrote: the pages, the output folder, the PNG export note and the damaged runs left out."""

    pages: list[BuiltPage]
    out: Path
    image_note: str
    damage: tuple[Damage, ...] = ()

    @property
    def index(self) -> Path:
        return self.out / "index.html"


def build(paths: Sequence[str | Path], configs: Sequence[str | Path], out: str | Path, *, images: bool = True) -> Built:
    """Build every dashboard in ``configs`` over the runs at or below ``paths`` into ``out``.

    A view that cannot be computed from these runs (e.g. a metric column they lack) is a ConfigError naming the
    dashboard file and the view.
    """
    results = load_results(paths)
    pages: list[BuiltPage] = []
    descriptions: dict[str, str] = {}
    for path in configs:
        config, name = load_dashboard(path), dashboard_name(path)
        descriptions[name] = config.description
        try:
            require(results.runs, config.series_by)
            runs = with_series(filter_runs(results.finished(), config.filters), config.series_by)
        except ValueError as err:
            raise ConfigError(f"{path}: {err}") from None
        context = Context(results, runs, SERIES, palette(runs["series"]))
        for i, view in enumerate(config.views):
            try:
                page = build_page(view, context)
            except (ValueError, KeyError) as err:
                raise ConfigError(f"{path}: views[{i}] ({view.kind}): {err}") from None
            pages.append(BuiltPage(name, config.title, view.heading, f"{name}-{view.page}", page))
    out = Path(out)
    note = write_site(pages, descriptions, results.runs, [str(p) for p in paths], out, images=images)
    return Built(pages, out, note, results.damage)
