"""The YAML reader of every user file and ``--set`` value: YAML 1.2 booleans and no duplicate keys.

:func:`read_yaml` reads a file, :func:`apply_overrides` applies ``--set KEY=VALUE`` overrides; both raise
:class:`~largebatch.core.errors.ConfigError` with one line naming the file or override.

PyYAML implements YAML 1.1, where ``on``/``off``/``yes``/``no`` are booleans, so ``logging.progress_bar: on``
or ``tracking.wandb.mode=off`` reached the schema as ``True``/``False`` and were refused. :class:`ConfigLoader`
resolves booleans as the YAML 1.2 core schema does (only ``true``/``false`` in their three spellings); the
other words stay strings, which pydantic still reads as booleans where a field is one. It also refuses a key
given twice in one mapping (YAML says keys are unique; PyYAML silently keeps the last), naming the key and both
lines. Merge keys (``<<: *base``) may still be overridden by the mapping's own keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from largebatch.core.errors import ConfigError

BOOL_TAG = "tag:yaml.org,2002:bool"
MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.2 core schema: https://yaml.org/spec/1.2.2/#1032-tag-resolution
YAML12_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class DuplicateKeyError(ConstructorError):
    """A key given twice in one mapping; the message names the key and both lines (1-based)."""


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 booleans and duplicate keys refused."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                seen = key in first_line
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            if seen:
                raise DuplicateKeyError(None, None, f"duplicate key {key!r} on line {line} (first given on line "
                                        f"{first_line[key]})", key_node.start_mark)
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(BOOL_TAG, YAML12_BOOL, list("tTfF"))


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`ConfigLoader` (raises ``yaml.YAMLError``, incl. :class:`DuplicateKeyError`)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 (a SafeLoader subclass)


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where (PyYAML's own text spreads over several lines)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"{err.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(err).split())


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file (read by :func:`load_yaml`: YAML 1.2 booleans, a
    duplicate key refused), with clear errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = load_yaml(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {err.object[err.start]:#04x} at offset {err.start}); "
                          "expected YAML") from None
    except DuplicateKeyError as err:
        raise ConfigError(f"{path}: {err.problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` → (["a", "b", "c"], YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. optimizer.name=lamb")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except DuplicateKeyError as err:
        raise ConfigError(f"--set {text!r}: {err.problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({err})") from None
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``KEY=VALUE`` set (nested dicts created as needed)."""
    data = yaml.safe_load(yaml.safe_dump(data))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: '{part}' is a value, not a section")
            node = child
        node[path[-1]] = value
    return data
