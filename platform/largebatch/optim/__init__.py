"""Layer-wise adaptive optimizers (LARS, LAMB) around one shared trust-ratio piece, the optimizer registry and
factory, plus lr schedules.

Names are imported on first access (PEP 562), so ``largebatch.optim.registry`` can be read without torch.
``param_groups`` and ``trust_ratio`` are both a submodule and a function in it; the package attribute is the
function (as with eager imports), however the submodule was first imported.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are, for type checkers; at run time they are imported on first access
    from largebatch.optim.factory import create_optimizer
    from largebatch.optim.lamb import LAMB
    from largebatch.optim.lars import LARS
    from largebatch.optim.param_groups import NOTHING, Exclude, param_groups
    from largebatch.optim.schedules import Schedule, build_scheduler, scaled_lr, warmup_steps_from_epochs
    from largebatch.optim.trust_ratio import LayerStats, trust_ratio

_HOMES = {
    "LAMB": "lamb", "LARS": "lars", "Exclude": "param_groups", "NOTHING": "param_groups",
    "param_groups": "param_groups", "LayerStats": "trust_ratio", "trust_ratio": "trust_ratio",
    "Schedule": "schedules", "build_scheduler": "schedules", "scaled_lr": "schedules",
    "warmup_steps_from_epochs": "schedules", "create_optimizer": "factory",
}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'largebatch.optim' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"largebatch.optim.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(ModuleType):
    """This package's module type: binding a submodule that shares its name with a function in it (what the import
    system does after importing it) binds the function instead."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and value.__name__ == f"{__name__}.{name}" and _HOMES.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
