"""The trials of a sweep: grid cells × sampled values → one validated ``ExperimentConfig`` per trial.

A trial's *parameters* (what Ray Tune and Optuna see) are one *label* per grid axis and one value per sampled
key. A label is the value itself when it is a scalar, else its YAML flow text (searchers and Optuna's
categorical distributions take scalars only), so bundle axes read ``{optimizer.name: lars, lr_scaling.rule:
linear}``. Every setting reaches the experiment as a ``KEY=VALUE`` override (the ``--set`` syntax), applied in
this order: the sweep's ``overrides``, its ``budget``, the grid cell, the sampled values, then the trial's
tracking keys (runs root, W&B group).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from largebatch.core.errors import ConfigError
from largebatch.core.yaml_io import apply_overrides
from largebatch.sweep.config import Choice, IntRange, SweepConfig, load_sweep_file
from largebatch.train.config import ExperimentConfig, validate

Label = None | bool | int | float | str
SCALARS = (type(None), bool, int, float, str)


def yaml_text(value: Any) -> str:
    """``value`` as one line of YAML flow text (exact round trip through ``yaml.safe_load``)."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=math.inf).removesuffix("...\n").strip()


def label(value: Any) -> Label:
    """The searcher-facing form of a value: scalars as they are, anything else as YAML flow text."""
    return value if isinstance(value, SCALARS) else yaml_text(value)


@dataclass(frozen=True)
class Values:
    """Values offered to a searcher by label (see :func:`label`)."""

    items: tuple[Any, ...]

    @property
    def labels(self) -> list[Label]:
        return [label(v) for v in self.items]

    def value(self, chosen: Label) -> Any:
        return self.items[self.labels.index(chosen)]


@dataclass(frozen=True)
class Axis:
    """A grid axis: an experiment key and its values, or a labelled bundle of keys set together."""

    key: str
    values: Values
    bundle: bool

    def settings(self, chosen: Label) -> dict[str, Any]:
        """Experiment key → value for the value labelled ``chosen``."""
        value = self.values.value(chosen)
        return dict(value) if self.bundle else {self.key: value}


def _axis(key: str, values: Sequence[Any], source: str) -> Axis:
    mappings = [isinstance(v, Mapping) for v in values]
    if any(mappings) and not all(mappings):
        raise ConfigError(f"{source}: key 'grid[{key}]': either every value is a mapping of experiment keys "
                          "(a bundle axis) or none is")
    axis = Axis(key, Values(tuple(values)), all(mappings))
    labels = axis.values.labels
    if len(set(map(repr, labels))) != len(labels):
        raise ConfigError(f"{source}: key 'grid[{key}]': values repeat ({', '.join(map(repr, labels))})")
    return axis


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its config, its base experiment (plain data) and the file it came from."""

    config: SweepConfig
    experiment: dict[str, Any]
    source: str

    @cached_property
    def axes(self) -> tuple[Axis, ...]:
        return tuple(_axis(key, values, self.source) for key, values in self.config.grid.items())

    @property
    def name(self) -> str:
        return self.config.name

    def cells(self) -> list[dict[str, Label]]:
        """Every combination of the grid axes' labels (one empty cell without a grid), in file order."""
        keys = [axis.key for axis in self.axes]
        return [dict(zip(keys, combo)) for combo in itertools.product(*(axis.values.labels for axis in self.axes))]

    def settings(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Experiment key → value for a trial's parameters (grid labels and sampled values)."""
        settings: dict[str, Any] = {}
        for axis in self.axes:
            settings.update(axis.settings(params[axis.key]))
        for key, dist in self.config.sample.items():
            value = params[key]
            if isinstance(dist, Choice):
                settings[key] = Values(tuple(dist.values)).value(value)
            else:
                settings[key] = int(value) if isinstance(dist, IntRange) else float(value)
        return settings

    def overrides(self, settings: Mapping[str, Any]) -> list[str]:
        """The ``KEY=VALUE`` overrides that turn the base experiment into the trial with ``settings``."""
        budget = self.config.budget
        head = [*self.config.overrides,
                *([f"budget={yaml_text(budget.model_dump(exclude_none=True))}"] if budget is not None else [])]
        return head + [f"{key}={yaml_text(value)}" for key, value in settings.items()]

    def experiment_for(self, params: Mapping[str, Any], run_dir: Path | None = None) -> ExperimentConfig:
        """The validated experiment of the trial with ``params``; with ``run_dir``, tracked there (W&B group =
        sweep name) and spread over ``devices_per_trial`` devices."""
        settings = self.settings(params)
        if run_dir is not None:
            settings |= {"tracking.runs_root": str(run_dir.parent), "tracking.wandb.group": self.name}
            if self.config.devices_per_trial > 1:
                settings["trainer.devices"] = self.config.devices_per_trial
        return self._validate(settings, f"{self.source} (trial {yaml_text(dict(params))})")

    def base(self) -> ExperimentConfig:
        """The experiment with the sweep's overrides and budget only (no grid or sampled values)."""
        return self._validate({}, f"{self.source} (overrides and budget)")

    def asha_max_t(self) -> float:
        """ASHA's ``max_t``: ``scheduler.max_t``, else the trial budget when it is in the scheduler's unit."""
        scheduler = self.config.scheduler
        if scheduler.max_t is not None:
            return scheduler.max_t
        budget = self.base().budget
        value = budget.epochs if scheduler.time_attr == "epochs" else budget.samples
        if value is None:
            raise ConfigError(f"{self.source}: key 'scheduler.max_t' is needed: the budget is not given in "
                              f"{scheduler.time_attr} (the scheduler's time_attr)")
        return float(value)

    def _validate(self, settings: Mapping[str, Any], source: str) -> ExperimentConfig:
        return validate(apply_overrides(self.experiment, self.overrides(settings)), source)

    def check(self) -> None:
        """Validate every trial this sweep can produce; ConfigError names the sweep file and the setting.

        Each grid value and each sampled extreme (low, high, every choice) is checked alone, so an error names
        its key; then every grid cell with the sampled lows, for combinations that are invalid together.
        """
        bundled = {key for axis in self.axes if axis.bundle for value in axis.values.items for key in value}
        for key in self.config.sample:
            if key in bundled or key in self.config.grid:
                raise ConfigError(f"{self.source}: key 'sample[{key}]' is also set by the grid")
        if self.config.storage is not None and self.config.search.algorithm != "optuna":
            raise ConfigError(f"{self.source}: key 'storage' applies to search.algorithm optuna only")
        self.base()
        if self.config.scheduler.name == "asha":
            self.asha_max_t()
        for axis in self.axes:
            for chosen in axis.values.labels:
                self._validate(axis.settings(chosen), f"{self.source}: grid[{axis.key}] = {chosen}")
        bounds = {key: extremes(dist) for key, dist in self.config.sample.items()}
        for key, values in bounds.items():
            for value in values:
                self._validate({key: value}, f"{self.source}: sample[{key}] = {value}")
        lows = {key: values[0] for key, values in bounds.items()}
        for cell in self.cells():
            self.experiment_for({**cell, **{k: label(v) for k, v in lows.items()}})

    def resolved(self) -> dict[str, Any]:
        """What ``sweep.yaml`` in the results folder holds (a sweep file in its own right)."""
        return self.config.resolved(self.experiment)


def extremes(dist: Any) -> list[Any]:
    """The values that bound a sampled key: low and high, or every choice."""
    return list(dist.values) if isinstance(dist, Choice) else [dist.low, dist.high]


def load_sweep(path: str | Path, name: str | None = None) -> Sweep:
    """Read, validate and check a sweep file (every trial's experiment included); ``name`` replaces its name."""
    config, experiment = load_sweep_file(path, name)
    sweep = Sweep(config, experiment, str(path))
    sweep.check()
    return sweep

