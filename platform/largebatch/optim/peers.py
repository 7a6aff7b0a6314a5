"""Peer optimizers for cross-checks and benchmarks: timm's Lamb/Lars and torch-optimizer's Lamb.

timm imports torchvision at package import (and a PyPI torchvision would replace the local torch), so the
setup installs timm with ``--no-deps`` and :func:`timm_optimizer` loads ``timm/optim/<module>.py`` without
running ``timm/__init__.py``. Nothing here is used by training.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path


def timm_optimizer(module: str, cls: str) -> type:
    """``timm.optim.<module>.<cls>`` loaded without importing the rest of timm; ImportError if absent."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("timm is not installed (scripts/setup.sh installs it with the dev extra)")
    root = Path(next(iter(spec.submodule_search_locations)))
    saved = {k: v for k, v in sys.modules.items() if k == "timm" or k.startswith("timm.")}
    try:
        for k in saved:
            del sys.modules[k]
        for package, path in (("timm", root), ("timm.optim", root / "optim")):
            shell = types.ModuleType(package)
            shell.__path__ = [str(path)]
            sys.modules[package] = shell
        return getattr(importlib.import_module(f"timm.optim.{module}"), cls)
    finally:
        for k in [k for k in sys.modules if k == "timm" or k.startswith("timm.")]:
            del sys.modules[k]
        sys.modules.update(saved)
