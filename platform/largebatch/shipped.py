"""The YAML files the project ships (``experiments/``, ``sweeps/``, ``dashboards/``), in a clone or a wheel.

The canonical, user-editable copies are the repository's top-level folders. A built wheel also carries a copy
of them inside the package, under ``largebatch/shipped_yaml/`` (``setup.py`` puts it there at build time), so the
commands that default to a shipped file (``largebatch dashboard``, ``largebatch reproduce``) work from an
installed wheel outside a clone. Lookups prefer the working directory, then the source checkout, then that
copy.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parents[1]  # the repository root when running from a clone (platform/largebatch/...)
WHEEL_COPY = PACKAGE / "shipped_yaml"


def shipped_locations(relative: str | Path) -> list[Path]:
    """Where the shipped ``relative`` path may be, in order: under the working directory, in the source
    checkout, in the wheel's copy."""
    return [Path(relative), CHECKOUT / relative, WHEEL_COPY / relative]
