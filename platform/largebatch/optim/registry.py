"""The optimizer registry: one entry per optimizer, the single source every layer reads.

An entry names the optimizer, where its class lives (imported on first use, so this module imports no torch:
the dashboard and config validation read names and layer-wise flags without it), whether it is layer-wise
(it honours the parameter groups' ``adapt`` flag, see :func:`largebatch.optim.param_groups`) and the option
defaults this project applies (e.g. momentum 0.9 for SGD). The option schema is the class's constructor: its
keyword parameters other than ``params``, ``lr`` and ``weight_decay``.

Config validation (``optimizer.name`` and ``optimizer.options`` in an experiment file), parameter groups and
the sweep space (every trial's experiment is validated) derive from these entries, and so does
:func:`largebatch.optim.create_optimizer`. Adding an optimizer = its own file plus one :func:`register` line
at the end of this module. An entry that does not hold together (the class cannot be imported or is no
optimizer, a default is no option of the class, a layer-wise class registered as not layer-wise or the other
way round) raises :class:`RegistryError` the first time it is used; :func:`check_all` checks every entry.

One option name has one meaning across optimizers. An option renamed for that reason stays readable from older
experiment files: the entry's ``renamed`` maps the old name to the new one, and :meth:`OptimizerEntry.checked_options`
reads it as the new one with a ``FutureWarning`` saying so (LAMB's ``trust_clip`` is now ``lambc``, because LARS's
``trust_clip`` is LARC, a different rule: see :mod:`largebatch.optim.trust_ratio`).
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

RESERVED = ("params", "lr", "weight_decay")  # set by the caller (optimizer.lr, optimizer.weight_decay), not options


class RegistryError(RuntimeError):
    """A registered optimizer entry that is incomplete or contradicts its class (a programming error)."""


class UnknownOptionError(ValueError):
    """Options the optimizer's constructor does not take; the message lists the allowed ones."""


@dataclass(frozen=True, eq=False)
class OptimizerEntry:
    """One registered optimizer: ``name``, ``target`` (``"module:Class"``), ``layerwise``, ``defaults`` and
    ``renamed`` (old option name → its current name)."""

    name: str
    target: str
    layerwise: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)

    @cached_property
    def cls(self) -> type:
        """The optimizer class, imported and checked against this entry on first use."""
        module, _, attribute = self.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as err:
            raise RegistryError(f"optimizer '{self.name}': cannot import {self.target} ({err})") from None
        import torch

        if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
            raise RegistryError(f"optimizer '{self.name}': {self.target} is not a torch.optim.Optimizer class")
        allowed = _keywords(cls)
        missing = sorted(set(self.defaults) - set(allowed))
        if missing:
            raise RegistryError(f"optimizer '{self.name}': defaults {', '.join(missing)} are not options of "
                                f"{self.target}; allowed: {', '.join(allowed)}")
        broken = sorted(old for old, new in self.renamed.items() if old in allowed or new not in allowed)
        if broken:
            raise RegistryError(f"optimizer '{self.name}': renamed options {', '.join(broken)} must map a name the "
                                f"constructor no longer takes to one it takes; allowed: {', '.join(allowed)}")
        honours_adapt = "adapt" in cls([torch.zeros(1, requires_grad=True)], **self.defaults).defaults
        if honours_adapt != self.layerwise:
            raise RegistryError(
                f"optimizer '{self.name}': {self.target} " + (
                    "reads the groups' 'adapt' flag but is registered with layerwise=False (its groups would lose "
                    "the adaptation exclusions)" if honours_adapt else
                    "is registered with layerwise=True but its groups carry no 'adapt' flag"))
        return cls

    @property
    def options(self) -> list[str]:
        """The option schema: the constructor's keyword parameters other than params, lr and weight_decay."""
        return _keywords(self.cls)

    def checked_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` over this entry's defaults, lists as tuples (YAML has no tuples: ``betas: [0.9, 0.999]``);
        a renamed option under its current name (with a ``FutureWarning``); :class:`UnknownOptionError` for a key
        the constructor does not take."""
        options = self._current_names(options)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise UnknownOptionError(
                f"unknown option(s) {', '.join(unknown)} for '{self.name}'; allowed: {', '.join(self.options)}"
                + ("; lr and weight_decay are set at optimizer.lr / optimizer.weight_decay"
                   if set(RESERVED) & set(options) else ""))
        return {**self.defaults, **{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}}

    def _current_names(self, options: dict[str, Any]) -> dict[str, Any]:
        old = [name for name in options if name in self.renamed]
        for name in old:
            new = self.renamed[name]
            if new in options:
                raise UnknownOptionError(f"options {name} and {new} of '{self.name}' are one option (renamed to "
                                         f"{new}); give only {new}")
            warnings.warn(f"optimizer.options.{name} of '{self.name}' is now called {new} (read as "
                          f"{new}={options[name]!r}); rename it in the experiment file: {name} means another rule "
                          "elsewhere", FutureWarning, stacklevel=3)
        return {self.renamed.get(name, name): value for name, value in options.items()}


def _keywords(cls: type) -> list[str]:
    return [p for p in inspect.signature(cls).parameters if p not in RESERVED]


OPTIMIZERS: dict[str, OptimizerEntry] = {}


def register(name: str, target: str, *, layerwise: bool = False, defaults: dict[str, Any] | None = None,
             renamed: dict[str, str] | None = None) -> None:
    """Add optimizer ``name`` whose class is ``target`` (``"package.module:Class"``); see the module docstring."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise RegistryError(f"optimizer name {name!r}: use lower-case letters, digits and '_'")
    if name in OPTIMIZERS:
        raise RegistryError(f"optimizer '{name}' is registered twice")
    if not re.fullmatch(r"[\w.]+:\w+", target):
        raise RegistryError(f"optimizer '{name}': target {target!r} is not 'package.module:Class'")
    OPTIMIZERS[name] = OptimizerEntry(name, target, layerwise, dict(defaults or {}), dict(renamed or {}))


def entry(name: str) -> OptimizerEntry:
    """The entry of ``name``; ``ValueError`` naming the registered ones for another name."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def names() -> tuple[str, ...]:
    """Every registered optimizer name, in registration order."""
    return tuple(OPTIMIZERS)


def layerwise_names() -> tuple[str, ...]:
    """The names of the layer-wise optimizers (those applying a per-layer trust ratio)."""
    return tuple(name for name, spec in OPTIMIZERS.items() if spec.layerwise)


def check_all() -> None:
    """Import and check every entry (:class:`RegistryError` on the first that does not hold together)."""
    for spec in OPTIMIZERS.values():
        spec.cls  # noqa: B018 - the check runs on first access


# SGD is the momentum baseline of every paper here (Goyal et al., LARS, LAMB): momentum 0.9 unless given.
register("sgd", "torch.optim:SGD", defaults={"momentum": 0.9})
register("adamw", "torch.optim:AdamW")
register("adam", "torch.optim:Adam")
register("adagrad", "torch.optim:Adagrad")
register("lars", "largebatch.optim.lars:LARS", layerwise=True)
register("lamb", "largebatch.optim.lamb:LAMB", layerwise=True, renamed={"trust_clip": "lambc"})  # LARC is LARS's
