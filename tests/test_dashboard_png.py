"""PNG export starts kaleido's Chromium with its network off: a stand-in browser records its command line."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import pytest

from largebatch.dashboard.pages import Page
from largebatch.dashboard.png import OFFLINE_FLAGS
from largebatch.dashboard.site import BuiltPage, write_images


@pytest.fixture
def recording_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 'browser' that writes its arguments to argv.txt and exits (so the export fails right after)."""
    browser = tmp_path / "chromium"
    browser.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path / 'argv.txt'}\nexit 3\n")
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER_PATH", str(browser))
    return tmp_path / "argv.txt"


def test_png_export_starts_the_browser_with_background_networking_off(recording_browser: Path,
                                                                      tmp_path: Path) -> None:
    page = Page(title="t", tables={}, figures=[go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))])
    built = BuiltPage(dashboard="d", dashboard_title="D", heading="h", stem="d-h", page=page)
    written, note = write_images([built], tmp_path)
    assert not written and note.startswith("PNG export skipped: kaleido failed")  # the stand-in renders nothing
    argv = recording_browser.read_text().splitlines()
    assert set(OFFLINE_FLAGS) <= set(argv)
    assert {"--disable-background-networking", "--dns-prefetch-disable", "--no-pings"} <= set(argv)
    assert any(a.startswith("--host-resolver-rules=MAP * ~NOTFOUND") for a in argv)
