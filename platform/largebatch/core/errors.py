"""Errors phrased for the user: :class:`ConfigError` and pydantic errors as one line per problem.

Every YAML schema of the project (experiments, sweeps, dashboards, reproductions) and the readers of run
directories report through these, so a bad file always gets one line naming the file, the dotted key and the
allowed values. Imports only pydantic (no torch, Ray or Optuna).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A configuration problem, already phrased for the user (file, key, allowed values)."""


def dotted_key(loc: tuple[Any, ...]) -> str:
    """An error location as a dotted key: ``('optimizer', 'lr')`` → ``optimizer.lr``."""
    return ".".join(str(p) for p in loc if p != "function-after") or "(top level)"


def model_allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Field names of the section of pydantic ``model`` at ``loc`` (for 'unknown key' messages)."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            break
        annotation = field.annotation
        current = annotation if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else None
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))


def format_errors(
    err: ValidationError,
    source: str,
    *,
    key: Callable[[tuple[Any, ...]], str],
    allowed_keys: Callable[[tuple[Any, ...]], Sequence[str]],
    special: Callable[[dict[str, Any], str], str | None] | None = None,
) -> str:
    """One line per pydantic error, naming ``source`` and the dotted key (shared by every YAML schema).

    ``key`` renders an error location, ``allowed_keys`` lists the fields of the section holding an unknown key,
    and ``special`` may phrase an error type of its own (e.g. a tagged union) or return None.
    """
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        name = key(loc)
        message = special(e, name) if special is not None else None
        if message is not None:
            lines.append(f"{source}: {message}")
        elif e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{name}'; allowed keys here: {', '.join(allowed_keys(loc[:-1]))}")
        elif e["type"] == "missing":
            lines.append(f"{source}: missing required key '{name}'")
        elif not loc:
            lines.append(f"{source}: {e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"{source}: key '{name}': {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def tagged_list_key(tags: Collection[str]) -> Callable[[tuple[Any, ...]], str]:
    """An error-location renderer for lists of tagged unions, without the tag pydantic puts in the location:
    ``('views', 2, 'lr_heatmap', 'metric')`` → ``views[2].metric``."""

    def key(loc: tuple[Any, ...]) -> str:
        parts = [p for p in loc if p not in tags]
        return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in parts).replace(".[", "[") or "(top level)"

    return key


def tag_error(field: str, tags: Collection[str]) -> Callable[[dict[str, Any], str], str | None]:
    """A ``special`` phrasing for :func:`format_errors`: a tagged union's missing or unknown ``field``, with the
    allowed ``tags``."""

    def special(e: dict[str, Any], key: str) -> str | None:
        if e["type"] == "union_tag_not_found":
            return f"missing required key '{key}.{field}'; allowed {field}s: {', '.join(tags)}"
        if e["type"] == "union_tag_invalid":
            got = e["input"].get(field) if isinstance(e["input"], Mapping) else e["input"]
            return f"key '{key}.{field}': unknown {field} {got!r}; allowed {field}s: {', '.join(tags)}"
        return None

    return special
