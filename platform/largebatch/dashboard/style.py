"""Shared look of the dashboard figures: one colour per series on every page, log axes labelled with units."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative

TEMPLATE = "plotly_white"
WIDTH = 1200  # px: the HTML pages are fluid; PNG exports use this width and each figure's height
BATCH_TITLE = "effective batch size B (samples/step)"
LR_TITLES = {"lr": "peak learning rate", "optimizer.lr": "base learning rate (optimizer.lr)"}
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
MIN_LOG_SPAN = 4.0  # narrowest factor a log axis shows (see log_axis)
DODGE_DECADES = 0.015  # horizontal offset between series on log batch axes, so equal values stay visible


def palette(series: Iterable[str]) -> dict[str, str]:
    """A fixed colour per series label (sorted), so a series has one colour across all pages."""
    colors = qualitative.D3
    return {name: colors[i % len(colors)] for i, name in enumerate(sorted(set(series)))}


def number(value: float) -> str:
    """Compact text for a number in titles and labels: integers in full, others to 3 significant digits."""
    return f"{int(value)}" if float(value).is_integer() and abs(value) < 1e7 else f"{value:.3g}"


def log_ticks(values: Sequence[float]) -> dict[str, object]:
    """Axis settings for a log axis whose ticks are exactly ``values`` (e.g. the batch sizes tried)."""
    ticks = sorted(set(values))
    return {"type": "log", "tickvals": ticks, "ticktext": [number(v) for v in ticks]}


def log_axis(values: Iterable[float]) -> dict[str, object]:
    """Settings for a log axis over ``values``: ticks at 1, 2, 5 × 10^k inside their range, or three evenly
    spaced (2 significant digits) when the range is too narrow for two of those. Values spanning less than a
    factor :data:`MIN_LOG_SPAN` (e.g. one value, or a flat line) get an explicit range that wide around their
    geometric centre, so the axis always shows at least two labelled ticks."""
    data = np.asarray([v for v in values if v > 0 and np.isfinite(v)], dtype=float)
    if data.size == 0:
        return {"type": "log"}
    low, high = data.min(), data.max()
    widened = high / low < MIN_LOG_SPAN
    if widened:
        centre, half = math.sqrt(low * high), math.sqrt(MIN_LOG_SPAN)
        low, high = centre / half, centre * half
    decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
    ticks = [m * 10.0**k for k in decades for m in (1, 2, 5) if low / 1.25 <= m * 10.0**k <= high * 1.25]
    if len(ticks) < 2:
        ticks = sorted({float(f"{v:.2g}") for v in np.geomspace(low, high, 3)})
    settings: dict[str, object] = {"type": "log", "tickvals": ticks, "ticktext": [number(t) for t in ticks]}
    if widened:
        settings["range"] = [math.log10(min(low, *ticks) / 1.1), math.log10(max(high, *ticks) * 1.1)]
    return settings


def dodge(values: Sequence[float], index: int, count: int) -> np.ndarray:
    """``values`` shifted by a small fraction of a decade, series ``index`` of ``count`` (for a log x axis)."""
    return np.asarray(values, dtype=float) * 10 ** (DODGE_DECADES * (index - (count - 1) / 2))


def finish(figure: go.Figure, title: str, *, height: int = 520) -> go.Figure:
    """Apply the common layout: template, the title (the page's result, wrapped), legend, size."""
    lines = textwrap.wrap(title, width=120)
    figure.update_layout(
        template=pio.templates[TEMPLATE],
        height=height + 22 * (len(lines) - 1),
        title={"text": "<br>".join(lines), "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        margin={"t": 70 + 22 * len(lines), "l": 80, "r": 40},
        legend={"groupclick": "togglegroup"},  # a click on a series hides all its traces
        font={"size": 13},
    )
    if figure.layout.legend.title.text is None:
        figure.update_layout(legend_title_text="series")
    return figure
