"""The YAML reader of every user file and ``--set`` value: YAML 1.2 booleans and no duplicate keys.

PyYAML implements YAML 1.1, where ``on``/``off``/``yes``/``no`` are booleans, so ``logging.progress_bar: on``
or ``tracking.wandb.mode=off`` reached the schema as ``True``/``False`` and were refused. :class:`ConfigLoader`
resolves booleans as the YAML 1.2 core schema does (only ``true``/``false`` in their three spellings); the
other words stay strings, which pydantic still reads as booleans where a field is one. It also refuses a key
given twice in one mapping (YAML says keys are unique; PyYAML silently keeps the last), naming the key and both
lines. Merge keys (``<<: *base``) may still be overridden by the mapping's own keys.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

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
