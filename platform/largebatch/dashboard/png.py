"""PNG export with kaleido's headless Chromium, kept off the network.

Chromium reaches for the network on its own (component updates, variations, DNS prefetch, pings, domain
reliability reports), and kaleido's default page loads MathJax from a CDN. :class:`OfflineChromium` adds the
switches that turn the background traffic off and resolves every host name to "not found"; the page is
built without MathJax (the figures use no LaTeX) and with the plotly.js that plotly ships, so a figure
renders from local files only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import kaleido
from choreographer.browsers.chromium import Chromium
from plotly.graph_objects import Figure

# Chromium switches (https://peter.sh/experiments/chromium-command-line-switches/)
OFFLINE_FLAGS = (
    "--disable-background-networking",  # component/variations/safe-browsing fetches
    "--dns-prefetch-disable",
    "--no-pings",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",  # any lookup that is left fails at once
)


class OfflineChromium(Chromium):
    """choreographer's Chromium with :data:`OFFLINE_FLAGS` on its command line."""

    def get_cli(self) -> Sequence[str]:
        return [*super().get_cli(), *OFFLINE_FLAGS]


def write_pngs(figures: Sequence[Figure], paths: Sequence[Path], *, width: int, heights: Sequence[int | None],
               scale: float) -> None:
    """Write each figure to its path as PNG in one offline browser; raises the first rendering error."""
    specs = [{"fig": figure, "path": path, "opts": {"format": "png", "width": width, "height": height,
                                                   "scale": scale}}
             for figure, path, height in zip(figures, paths, heights, strict=True)]
    kaleido.write_fig_from_object_sync(specs, kopts={"browser_cls": OfflineChromium, "mathjax": False},
                                       cancel_on_error=True)
