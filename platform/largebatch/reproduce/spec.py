"""Table specs (``sweeps/reproduce/<table>/table.yaml``): which sweep runs per profile, how our numbers are
computed from its results, which published values to show, and the claims with their verdict rules.

A spec is declarative and validated on load like every other YAML file here: a mistake is one line naming the
file, the key and the allowed values. Paths in a spec (the profiles' sweep files, the dashboard) are relative to
the spec file. Claims name a ``rule`` and that rule's parameters; the rules (schema, test, wording) come from the
one registry, :mod:`largebatch.reproduce.claims`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from largebatch.core.errors import ConfigError, format_errors, tag_error, tagged_list_key
from largebatch.core.yaml_io import read_yaml
from largebatch.reproduce.claims import RULES, Claim
from largebatch.reproduce.claims.base import NumbersKind
from largebatch.reproduce.published import load_published
from largebatch.shipped import shipped_locations

PROFILES = ("smoke", "cpu", "gpu", "online")
NOT_EVIDENCE = ("smoke",)  # profiles that check the code runs; their verdicts are never evidence
SPEC_FILE = "table.yaml"
SPEC_DIR = Path("sweeps") / "reproduce"
ID = r"^[a-z0-9][a-z0-9-]*$"
Filters = dict[str, Annotated[list[Any], Field(min_length=1)]]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Profile(Section):
    """One way to run the table: its sweep file and how long it is expected to take on ``machine``."""

    sweep: str
    minutes: float = Field(gt=0)
    machine: str


class Profiles(Section):
    """``smoke`` (the code runs; never evidence), ``cpu`` and ``gpu`` (offline: generated or shipped data) and,
    where a table has one, ``online`` (downloads its dataset, e.g. CIFAR-10)."""

    smoke: Profile
    cpu: Profile
    gpu: Profile
    online: Profile | None = None


class Series(Section):
    """A line of the table: the runs whose runs-table columns take the listed values (as dashboard filters)."""

    id: str = Field(pattern=ID)
    label: str
    where: Filters = Field(min_length=1)


class Numbers(Section):
    """How our numbers come from the results.

    ``batch_cells``: per series × batch size × seed the trial best by ``select`` (the learning rate the sweep
    tuned), its ``metric``; then mean and standard deviation over seeds. ``layer_ratios``: ‖w‖/‖∇w‖ per layer from
    the layers table, at the first recorded step (init) and after each of ``epochs``.
    """

    kind: NumbersKind
    select: str = "eval.val_acc"
    metric: str = "eval.test_acc"
    display: Literal["percent", "error_percent", "raw"] = "percent"
    epochs: list[float] = Field(default_factory=lambda: [1.0])
    chance: float | None = Field(None, ge=0, lt=1, description="the metric's chance level (1/classes); a reference "
                                 "must be above it to count as having learned")


class TableSpec(Section):
    """One reproduced table (see the module docstring)."""

    table: str = Field(pattern=ID)
    title: str
    reproduces: str
    profiles: Profiles
    dashboard: str
    numbers: Numbers
    series: list[Series] = Field(default_factory=list)
    confidence: float = Field(0.95, gt=0.5, lt=1, description="confidence level of every claim's test")
    claims: list[Claim] = Field(min_length=1)


def _allowed(loc: tuple[Any, ...], data: Any) -> list[str]:
    """The keys allowed at ``loc`` (a claim's keys depend on its rule)."""
    if loc[:1] == ("claims",) and len(loc) >= 2:
        claims = data.get("claims") if isinstance(data, Mapping) else None
        entry = claims[loc[1]] if isinstance(claims, list) and isinstance(loc[1], int) else None
        model = RULES.get(entry.get("rule")) if isinstance(entry, Mapping) else None
        return sorted(model.model_fields) if model is not None else []
    section: Any = TableSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = section.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        args = getattr(annotation, "__args__", ())
        section = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if section is None:
            return []
    return sorted(section.model_fields)


def _check_references(spec: TableSpec, source: str) -> None:
    """Series ids, published ids and rule kinds that the schema alone cannot check."""
    series = [s.id for s in spec.series]
    published = [v.id for v in load_published().values(spec.table)]
    for i, claim in enumerate(spec.claims):
        for sid in claim.series_ids():
            if sid not in series:
                raise ConfigError(f"{source}: key 'claims[{i}]': unknown series {sid!r}; allowed: {', '.join(series)}")
        for pid in claim.published:
            if pid not in published:
                raise ConfigError(f"{source}: key 'claims[{i}].published': unknown value {pid!r}; allowed (from the "
                                  f"published data of {spec.table}): {', '.join(published) or 'none'}")
        rule: str = claim.rule
        if claim.numbers_kind != spec.numbers.kind:
            allowed = [name for name, model in RULES.items() if model.numbers_kind == spec.numbers.kind]
            raise ConfigError(f"{source}: key 'claims[{i}].rule': {rule!r} does not apply to numbers.kind "
                              f"{spec.numbers.kind}; allowed: {', '.join(allowed)}")


def validate_spec(data: Mapping[str, Any], source: str) -> TableSpec:
    """Validate plain spec data; ConfigError names ``source``, the key and the allowed values."""
    try:
        spec = TableSpec.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(format_errors(err, source, key=tagged_list_key(RULES), special=tag_error("rule", RULES),
                                        allowed_keys=lambda loc: _allowed(tuple(loc), data))) from None
    _check_references(spec, source)
    return spec


@dataclass(frozen=True)
class Table:
    """A validated spec and the file it came from (paths in it are relative to that file)."""

    spec: TableSpec
    path: Path

    def profile(self, name: str) -> Profile:
        if name not in PROFILES:
            raise ConfigError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}")
        profile: Profile | None = getattr(self.spec.profiles, name)
        if profile is None:
            raise ConfigError(f"{self.path}: table {self.spec.table!r} has no {name!r} profile; it has: "
                              f"{', '.join(self.profile_names())}")
        return profile

    def profile_names(self) -> list[str]:
        """The profiles this table has, in ``PROFILES`` order."""
        return [p for p in PROFILES if getattr(self.spec.profiles, p) is not None]

    def sweep_path(self, profile: str) -> Path:
        return self._relative(self.profile(profile).sweep, f"profiles.{profile}.sweep")

    def dashboard_path(self) -> Path:
        return self._relative(self.spec.dashboard, "dashboard")

    def _relative(self, name: str, key: str) -> Path:
        path = (self.path.parent / name).resolve()
        if not path.is_file():
            raise ConfigError(f"{self.path}: key '{key}': no such file {path}")
        return path


def load_table(path: str | Path) -> Table:
    """Read and validate one table spec."""
    path = Path(path)
    spec = validate_spec(read_yaml(path), str(path))
    if path.name == SPEC_FILE and spec.table != path.parent.name:
        raise ConfigError(f"{path}: key 'table': {spec.table!r} must be the folder's name, {path.parent.name!r}")
    return Table(spec, path)


def spec_dir(given: str | Path | None = None) -> Path:
    """Where table specs live: ``given``, else ``./sweeps/reproduce``, else the source checkout's, else the
    installed package's copy; ConfigError when none exists."""
    candidates = [Path(given)] if given is not None else shipped_locations(SPEC_DIR)
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise ConfigError(f"no table specs: none of {', '.join(map(str, candidates))} is a folder; give --specs DIR")


def find_tables(folder: Path) -> dict[str, Path]:
    """Table name → spec file, for every ``<folder>/<table>/table.yaml`` (sorted by name)."""
    return {path.parent.name: path for path in sorted(folder.glob(f"*/{SPEC_FILE}"))}


def table_path(folder: Path, name: str) -> Path:
    """The spec file of table ``name``; ConfigError listing the tables there otherwise."""
    tables = find_tables(folder)
    if name not in tables:
        raise ConfigError(f"unknown table {name!r}; tables in {folder}: {', '.join(tables) or 'none'}")
    return tables[name]
