"""The static dashboard: HTML pages (one per view) and an index, opened from the file system with no network.

Layout of ``out/``::

    index.html                      the headline (first view's result and figure), the dashboards, their pages
                                    (with each page's result) and the runs loaded
    <dashboard>-<view>.html         one page per view
    plotly.min.js                   the Plotly library, written once and shared by every page (never a CDN)
    data/<dashboard>-<view>[-<table>].csv   each view's data
    png/<dashboard>-<view>-<i>.png  each figure as a static image, when a Chrome for kaleido is available

Pages reference only files next to them, so the folder can be zipped, mailed or served by any static server.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import plotly.io as pio
from plotly.offline import get_plotlyjs

from largebatch.dashboard.pages import Page
from largebatch.dashboard.png import write_pngs
from largebatch.dashboard.style import WIDTH

PLOTLY_JS = "plotly.min.js"
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "svg"}}
CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1280px; color: #222; }
nav { font-size: 0.9rem; margin-bottom: 1rem; } nav a { margin-right: 0.8rem; }
.headline { font-size: 1.15rem; font-weight: 600; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } .sub { color: #555; margin-top: 0; }
.notes { color: #333; font-size: 0.92rem; } .files { font-size: 0.9rem; }
table.runs { border-collapse: collapse; font-size: 0.85rem; }
table.runs td, table.runs th { padding: 2px 8px; border-bottom: 1px solid #ddd; }
"""


@dataclass(frozen=True)
class BuiltPage:
    """A written page: its dashboard, view heading, file stem and the page content."""

    dashboard: str
    dashboard_title: str
    heading: str
    stem: str
    page: Page


def _document(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
        f'<script src="{PLOTLY_JS}"></script>\n<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n'
    )


def _nav(pages: Sequence[BuiltPage], dashboard: str) -> str:
    links = [f'<a href="{p.stem}.html">{html.escape(p.heading)}</a>' for p in pages if p.dashboard == dashboard]
    return f'<nav><a href="index.html">index</a> | {" ".join(links)}</nav>'


def csv_files(built: BuiltPage) -> dict[str, str]:
    """Table name → CSV path relative to the output folder."""
    return {name: f"data/{built.stem}{'-' + name if name else ''}.csv" for name in built.page.tables}


def png_files(built: BuiltPage) -> list[str]:
    """One PNG path (relative to the output folder) per figure of the page."""
    return [f"png/{built.stem}-{i}.png" for i in range(1, len(built.page.figures) + 1)]


def _page_html(built: BuiltPage, pages: Sequence[BuiltPage], description: str, images: bool) -> str:
    page = built.page
    divs = [
        pio.to_html(f, include_plotlyjs=False, full_html=False, config=PLOT_CONFIG, div_id=f"{built.stem}-{i}")
        for i, f in enumerate(page.figures, start=1)
    ]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in page.notes)
    files = [f'<a href="{path}">{Path(path).name}</a>' for path in csv_files(built).values()]
    files += [f'<a href="{path}">{Path(path).name}</a>' for path in png_files(built)] if images else []
    body = [
        _nav(pages, built.dashboard),
        f"<h1>{html.escape(built.heading)}</h1>",
        f'<p class="sub">{html.escape(built.dashboard_title)}. {html.escape(description)}</p>',
        *divs,
        f'<ul class="notes">{notes}</ul>',
        f'<p class="files">Data: {" · ".join(files)}</p>',
    ]
    return _document(f"{built.heading} — {built.dashboard_title}", "\n".join(body))


def _headline_html(headline: BuiltPage) -> list[str]:
    """The first view's result sentence and first figure, at the top of the index."""
    page = headline.page
    figure = [
        pio.to_html(page.figures[0], include_plotlyjs=False, full_html=False, config=PLOT_CONFIG, div_id="headline")
    ] if page.figures else []
    link = f'<a href="{headline.stem}.html">{html.escape(headline.heading)}</a>'
    return [f'<p class="headline">{html.escape(page.title)}. ({link})</p>', *figure]


def _index_html(pages: Sequence[BuiltPage], runs: pd.DataFrame, sources: Sequence[str], image_note: str) -> str:
    body = [
        "<h1>largebatch dashboards</h1>",
        f'<p class="sub">Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {len(runs)} runs under '
        f"{html.escape(', '.join(sources))}. {html.escape(image_note)}</p>",
        *(_headline_html(pages[0]) if pages else []),
    ]
    for dashboard in dict.fromkeys(p.dashboard for p in pages):
        own = [p for p in pages if p.dashboard == dashboard]
        items = "".join(
            f'<li><a href="{p.stem}.html">{html.escape(p.heading)}</a>: {html.escape(p.page.title)}</li>' for p in own
        )
        body.append(f"<h2>{html.escape(own[0].dashboard_title)}</h2><ul>{items}</ul>")
    columns = [
        c
        for c in (
            "run_id",
            "sweep",
            "status",
            "optimizer.name",
            "batch_size",
            "lr",
            "steps",
            "eval.val_acc",
            "eval.gen_gap",
        )
        if c in runs.columns
    ]
    table = runs[columns].to_html(index=False, classes="runs", float_format=lambda v: f"{v:.4g}", na_rep="–", border=0)
    body.append(f"<h2>Runs</h2>{table}")
    return _document("largebatch dashboards", "\n".join(body))


def find_chrome() -> str | None:
    """The Chrome/Chromium kaleido would use (``BROWSER_PATH`` or one on PATH), or None."""
    found = os.environ.get("BROWSER_PATH") or next(filter(None, map(shutil.which, CHROME_NAMES)), None)
    return found if found and Path(found).exists() else None


def write_images(pages: Sequence[BuiltPage], out: Path) -> tuple[bool, str]:
    """Write every figure as PNG with kaleido: (written, a one-line note). Never raises for a missing or failing
    browser: PNGs are a convenience."""
    chrome = find_chrome()
    if chrome is None:
        return (
            False,
            "PNG export skipped: no Chrome/Chromium found for kaleido "
            "(install Debian's chromium: scripts/install_browser.sh).",
        )
    figures = [(f, out / path) for p in pages for f, path in zip(p.page.figures, png_files(p), strict=True)]
    (out / "png").mkdir(exist_ok=True)
    os.environ.setdefault("BROWSER_PATH", chrome)
    try:
        write_pngs([f for f, _ in figures], [path for _, path in figures], width=WIDTH,
                   heights=[f.layout.height for f, _ in figures], scale=2)
    except Exception as err:  # kaleido/choreographer raise many kinds; a failed export must not fail the dashboard
        return False, f"PNG export skipped: kaleido failed with {chrome}: {type(err).__name__}: {err}"
    return True, f"{len(figures)} figures exported as PNG (png/)."


def write_site(
    pages: Sequence[BuiltPage],
    descriptions: dict[str, str],
    runs: pd.DataFrame,
    sources: Sequence[str],
    out: Path,
    *,
    images: bool = True,
) -> str:
    """Write the dashboard into ``out`` (layout in the module docstring); returns the PNG export note."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    (out / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")
    for built in pages:
        for name, path in csv_files(built).items():
            built.page.tables[name].to_csv(out / path, index=False)
    wrote_png, note = write_images(pages, out) if images else (False, "PNG export not requested.")
    for built in pages:
        text = _page_html(built, pages, descriptions[built.dashboard], wrote_png)
        (out / f"{built.stem}.html").write_text(text, encoding="utf-8")
    (out / "index.html").write_text(_index_html(pages, runs, sources, note), encoding="utf-8")
    return note
