"""Sweep files: a typed schema, loading, and errors that name the sweep file, the key and the allowed values.

A sweep file (see ``sweeps/``) names a base experiment (a path relative to the sweep file, or the experiment
inline), ``overrides`` applied to every trial, a ``grid`` crossed exhaustively, ``sample`` distributions drawn
per trial by the search algorithm, and how to run the trials. A grid axis is either an experiment key with its
values (``batch_size: [32, 128]``) or a *bundle* axis: a label whose values are mappings of experiment keys set
together (``optimizer: [{optimizer.name: sgd, lr_scaling.rule: linear}, ...]``).

Loading validates the file's own keys here; :mod:`largebatch.sweep.space` then validates every trial's
experiment, so a misspelt experiment key in ``grid`` or ``sample`` fails at load time too. ``resolved()``
(written as ``sweep.yaml`` next to the results) inlines the experiment, so a sweep directory is self-contained.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from largebatch.core.errors import ConfigError, format_errors
from largebatch.core.yaml_io import read_yaml
from largebatch.train.config import BudgetConfig

# What the sweep's reporter sends to Ray Tune at each epoch end (see largebatch.sweep.reporting).
METRICS = ("val/acc", "val/loss", "gen_gap", "loss_gap", "gap/train_acc", "gap/train_loss", "gap/val_acc",
           "gap/val_loss", "train/acc", "train/loss")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Range(Section):
    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if not self.low < self.high:  # type: ignore[attr-defined]
            raise ValueError("low must be below high")
        return self


class LogUniform(_Range):
    """Floats with a uniform logarithm in [low, high] (learning rates)."""

    distribution: Literal["loguniform"]
    low: float = Field(gt=0)
    high: float = Field(gt=0)


class Uniform(_Range):
    """Floats uniform in [low, high]."""

    distribution: Literal["uniform"]
    low: float
    high: float


class IntRange(_Range):
    """Integers in [low, high], both included; ``log`` for a uniform logarithm."""

    distribution: Literal["int"]
    low: int
    high: int
    log: bool = False


class Choice(Section):
    """One of ``values`` (any YAML values: numbers, strings, lists, mappings)."""

    distribution: Literal["choice"]
    values: list[Any] = Field(min_length=1)


Distribution = Annotated[LogUniform | Uniform | IntRange | Choice, Field(discriminator="distribution")]
DISTRIBUTIONS: dict[str, type[Section]] = {
    "loguniform": LogUniform, "uniform": Uniform, "int": IntRange, "choice": Choice,
}


class SchedulerConfig(Section):
    """Early stopping of trials. ``asha``: Async Successive Halving (Li et al. 2020, arXiv:1810.05934).

    ``time_attr`` is the axis ASHA compares trials on: ``epochs`` (completed epochs, fractional for a partial
    last epoch) or ``samples`` (training samples seen = optimizer steps × effective batch). Both are fair across
    batch sizes, unlike Tune's default of report counts; ``samples`` also holds when budgets are given in
    steps. ``grace_period`` and ``max_t`` are in ``time_attr`` units; ``max_t`` defaults to the trial budget
    when that is given in the same unit.
    """

    name: Literal["none", "asha"] = "none"
    time_attr: Literal["epochs", "samples"] = "epochs"
    grace_period: float = Field(1.0, gt=0)
    reduction_factor: float = Field(3.0, gt=1)
    max_t: float | None = Field(None, gt=0)


class SearchConfig(Section):
    """``optuna``: Ray's OptunaSearch (``sampler`` tpe or qmc) over the sampled keys, grid cells fixed per trial;
    ``random``: Ray's BasicVariantGenerator (grid search × random samples)."""

    algorithm: Literal["optuna", "random"] = "optuna"
    sampler: Literal["tpe", "qmc"] = "tpe"
    seed: int = 0


def _gpu(value: Any) -> Any:
    if value == "auto" or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
        return value
    raise ValueError("must be 'auto' or a number >= 0 (GPUs per trial, fractions allowed)")


def _pack(value: Any) -> Any:
    if isinstance(value, bool) or (isinstance(value, int) and value >= 1):
        return value
    raise ValueError("must be true (trials per GPU measured by a short probe), false, or a whole number >= 1 "
                     "(trials per GPU)")


class ResourcesConfig(Section):
    """Per trial (per worker when ``devices_per_trial`` > 1). ``gpu: auto`` is 1 when the cluster has GPUs,
    else 0, so a CPU-only cluster never waits for a GPU that will not come.

    ``pack`` lets small trials share a GPU (Ray fractional GPUs): a number N gives each trial 1/N of a GPU;
    ``true`` measures the sweep's most memory-hungry trial on a GPU first and packs as many as its memory holds
    (see :mod:`largebatch.sweep.packing`). It replaces ``gpu`` on clusters with GPUs and does nothing without.
    """

    cpu: float = Field(1.0, gt=0)
    gpu: Annotated[float | str, BeforeValidator(_gpu)] = "auto"
    pack: Annotated[bool | int, BeforeValidator(_pack)] = False


class SweepConfig(Section):
    """One sweep: base experiment, grid × sampled keys, trials per cell, objective, scheduler, search, resources."""

    name: str = Field(pattern=NAME_PATTERN)
    experiment: str | dict[str, Any]
    overrides: list[str] = Field(default_factory=list)
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict)
    sample: dict[str, Distribution] = Field(default_factory=dict)
    num_samples: int = Field(1, ge=1)
    budget: BudgetConfig | None = None
    metric: Literal[METRICS] = "val/acc"  # type: ignore[valid-type]
    mode: Literal["min", "max"] = "max"
    scheduler: SchedulerConfig = SchedulerConfig()
    search: SearchConfig = SearchConfig()
    max_concurrent: int | None = Field(None, ge=1)
    resources: ResourcesConfig = ResourcesConfig()
    devices_per_trial: int = Field(1, ge=1)
    max_failures: int = Field(1, ge=0)
    storage: str | None = None

    def resolved(self, experiment: Mapping[str, Any]) -> dict[str, Any]:
        """Plain data with every default filled in and ``experiment`` inlined (what ``sweep.yaml`` holds)."""
        return {**self.model_dump(mode="json"), "experiment": dict(experiment)}


def _section_fields(loc: Sequence[str | int], data: Any) -> list[str]:
    """The keys allowed in the section at ``loc`` (for 'unknown key' messages)."""
    if len(loc) >= 2 and loc[0] == "sample":  # a sampled key: its fields depend on its distribution
        entry = data.get("sample", {}).get(loc[1]) if isinstance(data, Mapping) else None
        model = DISTRIBUTIONS.get(entry.get("distribution")) if isinstance(entry, Mapping) else None
        return sorted(model.model_fields) if model is not None else []
    section: Any = SweepConfig
    for part in loc:
        field = section.model_fields.get(part)
        members = typing.get_args(field.annotation) or (field.annotation,) if field is not None else ()
        section = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), None)
        if section is None:
            return []
    return sorted(section.model_fields)


def _key(loc: Sequence[str | int]) -> str:
    """``('sample', 'optimizer.lr', 'loguniform', 'low')`` → ``sample[optimizer.lr].low``."""
    parts = list(loc)
    if parts[:1] == ["sample"] and len(parts) > 2 and parts[2] in DISTRIBUTIONS:
        del parts[2]
    if parts[:1] in (["sample"], ["grid"]) and len(parts) > 1:
        parts[:2] = [f"{parts[0]}[{parts[1]}]"]
    return ".".join(str(p) for p in parts) or "(top level)"


def _distribution_error(e: dict[str, Any], key: str) -> str | None:
    if e["type"] not in ("union_tag_invalid", "union_tag_not_found"):
        return None
    got = e["input"].get("distribution") if isinstance(e["input"], Mapping) else e["input"]
    return f"key '{key}': 'distribution' must be one of {', '.join(DISTRIBUTIONS)} (got {got!r})"


def validate_sweep(data: Mapping[str, Any], source: str) -> SweepConfig:
    """Validate plain sweep data; ConfigError names ``source`` and every offending key."""
    try:
        return SweepConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(format_errors(err, source, key=_key, allowed_keys=lambda loc: _section_fields(loc, data),
                                        special=_distribution_error)) from None


def load_sweep_file(path: str | Path, name: str | None = None) -> tuple[SweepConfig, dict[str, Any]]:
    """The sweep in ``path`` (``name`` replacing its name) and its base experiment as plain data.

    A relative experiment path is resolved against the sweep file's folder.
    """
    path = Path(path)
    data = read_yaml(path)
    if name is not None:
        data["name"] = name
    sweep = validate_sweep(data, str(path))
    if isinstance(sweep.experiment, str):
        experiment_path = (path.parent / sweep.experiment).resolve()
        if not experiment_path.is_file():
            raise ConfigError(f"{path}: key 'experiment': no such file {experiment_path}")
        return sweep, read_yaml(experiment_path)
    return sweep, dict(sweep.experiment)
