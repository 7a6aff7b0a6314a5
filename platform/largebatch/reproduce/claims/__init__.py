"""The one registry of claim rules. Each rule is one module here holding its schema, its test and its wording (a
:class:`~largebatch.reproduce.claims.base.ClaimBase` subclass named by the module's ``RULE``); the table specs,
their validation and the report all read :data:`RULES` and :data:`Claim`.

To add a rule: write ``claims/<rule>.py`` (copy ``degrades.py``) and add its module name to ``RULE_MODULES``. A
rule that is incomplete (no ``RULE``, a ``rule`` literal other than the module's name, no named ``test``, an
unknown ``numbers_kind``, ``statement`` or ``judge`` not written) stops the import with a RuleError naming what is
missing.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterable
from importlib import import_module
from types import ModuleType
from typing import Annotated, Any, Union

from pydantic import Field

from largebatch.reproduce.claims.base import NUMBERS_KINDS, ClaimBase

RULE_MODULES = (
    "degrades",
    "stays_within",
    "smaller_drop",
    "breaks_earlier",
    "break_point",
    "ranking",
    "matches",
    "ratio_spread",
    "weight_bias_gap",
    "ratio_falls",
)


class RuleError(TypeError):
    """A registered claim rule is incomplete."""


def rule_name(model: type[ClaimBase]) -> str | None:
    """The single value of the model's ``rule`` literal, else None."""
    field = model.model_fields.get("rule")
    values = typing.get_args(field.annotation) if field is not None else ()
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def check_rule(module: ModuleType) -> type[ClaimBase]:
    """The module's rule class, or RuleError listing everything it lacks."""
    where = module.__name__.rsplit(".", 1)[-1]
    model = getattr(module, "RULE", None)
    if not (inspect.isclass(model) and issubclass(model, ClaimBase)):
        raise RuleError(f"claim rule module {where!r}: RULE must name its ClaimBase subclass")
    missing = []
    if rule_name(model) != where:
        missing.append(f"a 'rule' field typed Literal[{where!r}]")
    if not model.test:
        missing.append("'test': the statistical test it runs, as printed")
    if model.numbers_kind not in NUMBERS_KINDS:
        missing.append(f"'numbers_kind': one of {', '.join(NUMBERS_KINDS)}")
    missing += [f"method {m!r}" for m in sorted(getattr(model, "__abstractmethods__", ()))]
    if missing:
        raise RuleError(f"claim rule {model.__name__} ({where!r}) is incomplete; it needs " + "; ".join(missing))
    return model


def build_registry(modules: Iterable[ModuleType]) -> dict[str, type[ClaimBase]]:
    """Rule name → rule class, every rule checked; RuleError on an incomplete or repeated rule."""
    registry: dict[str, type[ClaimBase]] = {}
    for module in modules:
        model = check_rule(module)
        name = rule_name(model)
        assert name is not None  # checked above
        if name in registry:
            raise RuleError(f"claim rule {name!r} is registered twice")
        registry[name] = model
    return registry


RULES = build_registry(import_module(f"{__name__}.{m}") for m in RULE_MODULES)
Claim: Any = Annotated[Union[tuple(RULES.values())], Field(discriminator="rule")]  # noqa: UP007 (built from RULES)

__all__ = ["RULES", "Claim", "ClaimBase", "RuleError", "build_registry", "check_rule"]
