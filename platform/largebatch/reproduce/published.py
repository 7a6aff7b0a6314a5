"""The published numbers of every reproduced table, from the one data file shipped with the package
(``largebatch/reproduce/published.yaml``): each value with its paper (arXiv id), where in the paper, and whether
it was checked against the source (``verified``, which needs the ``quote`` read there) or is UNVERIFIED."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from largebatch.core.errors import ConfigError, format_errors
from largebatch.core.yaml_io import read_yaml

DATA_FILE = "published.yaml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(Section):
    paper: str
    arxiv: str = Field(pattern=r"^\d{4}\.\d{4,5}$")


class Value(Section):
    """One published number (or a short qualitative statement where the paper gives no number)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    quantity: str
    value: float | str
    unit: str = ""
    batch_size: int | None = Field(None, gt=0)
    source: str
    where: str
    verified: bool
    quote: str | None = Field(None, min_length=1, description="the sentence or table cell at `where`, as printed")

    @model_validator(mode="after")
    def _verified_needs_a_quote(self) -> Value:
        if self.verified and self.quote is None:
            raise ValueError("verified: true needs 'quote': the exact sentence or table cell at 'where'")
        return self

    def text(self) -> str:
        """``57.6 %`` / ``diverges``, with ``(UNVERIFIED)`` when the value was not checked against the paper."""
        number = f"{self.value:g}" if isinstance(self.value, float) else self.value
        return f"{number}{' ' + self.unit if self.unit else ''}" + ("" if self.verified else " (UNVERIFIED)")


class Published(Section):
    """The data file: ``sources`` by key, and per table its list of values."""

    sources: dict[str, Source]
    tables: dict[str, list[Value]]

    @model_validator(mode="after")
    def _known_sources(self) -> Published:
        for table, values in self.tables.items():
            ids = [v.id for v in values]
            if len(set(ids)) != len(ids):
                raise ValueError(f"tables.{table}: value ids repeat")
            for value in values:
                if value.source not in self.sources:
                    raise ValueError(f"tables.{table}[{value.id}].source: unknown source {value.source!r}; "
                                     f"allowed: {', '.join(self.sources)}")
        return self

    def cite(self, value: Value) -> str:
        """``LARS … arXiv:1708.03888, Table 1``."""
        return f"arXiv:{self.sources[value.source].arxiv}, {value.where}"

    def values(self, table: str) -> list[Value]:
        return self.tables.get(table, [])


def _allowed(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` (for 'unknown key' messages)."""
    model: type[BaseModel] = Published
    if loc[:1] == ("sources",) and len(loc) >= 2:
        model = Source
    elif loc[:1] == ("tables",) and len(loc) >= 3:
        model = Value
    return sorted(model.model_fields)


def _key(loc: tuple[Any, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") or "(top level)"


def validate_published(data: dict[str, Any], source: str) -> Published:
    """Validate the data file's content; ConfigError names ``source`` and the key."""
    try:
        return Published.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_errors(err, source, key=_key, allowed_keys=_allowed)) from None


def data_file() -> Path:
    """The packaged data file's path."""
    return Path(str(resources.files("largebatch.reproduce").joinpath(DATA_FILE)))


@cache
def load_published() -> Published:
    """The packaged published numbers (read once)."""
    path = data_file()
    return validate_published(read_yaml(path), str(path))
