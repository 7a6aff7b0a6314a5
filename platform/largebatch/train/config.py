"""Experiment files: a typed schema, loaded with ``--set`` overrides, and errors that name file and key.

An experiment is one YAML file (see ``experiments/``). Every key is validated on load; an unknown key, a
wrong type or a value out of range raises :class:`ConfigError` naming the file, the dotted key and the
allowed values. ``resolved()`` is what a run saves next to its results. The YAML reading and error phrasing
every schema shares are in :mod:`largebatch.core`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from largebatch.core.errors import ConfigError, dotted_key, format_errors, model_allowed_keys
from largebatch.core.yaml_io import apply_overrides, read_yaml
from largebatch.optim import registry as optimizer_registry


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Component(Section):
    """A registered component by name with its keyword options (checked against the registry on build)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ExcludeConfig(Section):
    biases: bool = True
    norm_layers: bool = True
    one_dimensional: bool = True
    patterns: tuple[str, ...] = ()


class OptimizerConfig(Section):
    """``name`` is a registered optimizer (:mod:`largebatch.optim.registry`); ``lr`` is the base rate at
    ``lr_scaling.reference_batch_size``; ``options`` go to the constructor (checked against it on build)."""

    name: str = "lamb"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    options: dict[str, Any] = Field(default_factory=dict)
    exclude_from_weight_decay: ExcludeConfig = ExcludeConfig()
    exclude_from_adaptation: ExcludeConfig = ExcludeConfig()

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        """A registered optimizer whose entry holds together (checked against its class on first use, so an
        incomplete registration fails here, loudly). ``options`` are checked against the constructor when the
        optimizer is built: in a sweep, ``optimizer.name`` may be sampled after the options were validated."""
        if name not in optimizer_registry.names():
            *others, last = (repr(n) for n in optimizer_registry.names())
            raise PydanticCustomError("literal_error", "Input should be {expected}",  # pydantic's enum wording
                                      {"expected": f"{', '.join(others)} or {last}"})
        optimizer_registry.entry(name).cls  # noqa: B018 - the entry's check runs on first access
        return name


class ScalingConfig(Section):
    rule: Literal["none", "linear", "sqrt"] = "none"
    reference_batch_size: int = Field(256, gt=0)


class ScheduleConfig(Section):
    """Warmup in steps or epochs (not both), then decay; see :mod:`largebatch.optim.schedules`."""

    warmup_steps: int | None = Field(None, ge=0)
    warmup_epochs: float | None = Field(None, ge=0)
    warmup_start_factor: float = Field(0.0, ge=0, le=1)
    decay: Literal["constant", "polynomial", "cosine"] = "constant"
    power: float = Field(2.0, gt=0)
    final_factor: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _one_warmup(self) -> ScheduleConfig:
        if self.warmup_steps is not None and self.warmup_epochs is not None:
            raise ValueError("give warmup_steps or warmup_epochs, not both")
        return self


class BudgetConfig(Section):
    """Training length: exactly one of epochs, optimizer steps, or training samples seen."""

    epochs: float | None = Field(None, gt=0)
    steps: int | None = Field(None, gt=0)
    samples: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> BudgetConfig:
        given = [k for k in ("epochs", "steps", "samples") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of epochs, steps, samples (got {', '.join(given) or 'none'})")
        return self


class LoggingConfig(Section):
    every_n_steps: int = Field(10, gt=0)
    telemetry_every_n_steps: int = Field(10, gt=0)
    per_layer_to_loggers: bool = False
    progress_bar: Literal["auto", "on", "off"] = "auto"
    progress_every_s: float = Field(30.0, ge=0, description="progress line period when stdout is no terminal; 0: off")


class NoiseScaleConfig(Section):
    """``NoiseScaleMonitor`` settings (:mod:`largebatch.train.callbacks.noise_scale`); off unless ``enabled``."""

    enabled: bool = False
    every_n_steps: int = Field(10, gt=0)
    probe_every_n_steps: int = Field(10, gt=0)
    ema: float = Field(0.95, ge=0, lt=1)
    per_layer: bool = False


class SharpnessConfig(Section):
    """``SharpnessProbe`` settings (:mod:`largebatch.train.callbacks.sharpness`); off unless ``enabled``."""

    enabled: bool = False
    every_n_epochs: int | None = Field(None, gt=0)
    batch_size: int = Field(512, gt=0)
    tol: float = Field(1e-3, gt=0)
    max_iterations: int = Field(100, gt=0)


class ProbesConfig(Section):
    """Optional measurements a run can add: the gradient noise scale and the top Hessian eigenvalue."""

    noise_scale: NoiseScaleConfig = NoiseScaleConfig()
    sharpness: SharpnessConfig = SharpnessConfig()


class GuardConfig(Section):
    divergence_factor: float = Field(10.0, gt=1)


class TrainerConfig(Section):
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | Literal["auto"] = 1
    strategy: str = "auto"
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "bf16-true", "64-true"] = "32-true"
    gradient_clip_val: float | None = Field(None, gt=0)
    deterministic: bool = False


class WandbConfig(Section):
    """W&B mirror. ``offline`` (default) writes under the run directory and never touches the network."""

    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "largebatch"
    entity: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()

    @field_validator("mode", mode="before")
    @classmethod
    def _off_means_disabled(cls, value: Any) -> Any:
        """``mode: off`` is what a user writes for no W&B at all."""
        return "disabled" if value == "off" else value


class TrackingConfig(Section):
    runs_root: str = "runs"
    wandb: WandbConfig = WandbConfig()


BATCH_SCHEDULE_KEYS: dict[str, tuple[str, ...]] = {
    "fixed": ("kind",),
    "steps": ("kind", "factor", "epochs", "steps", "samples", "lr", "max_batch"),
    "adaptive": ("kind", "every_n_steps", "scale", "min_batch", "max_batch", "shrink", "min_estimates", "max_growth",
                 "lr"),
}


class BatchScheduleConfig(Section):
    """How the effective batch changes during training (:mod:`largebatch.train.batch_schedule`); a bare kind
    (``batch_schedule: fixed``) is accepted too.

    * ``fixed`` (default): ``batch_size`` throughout.
    * ``steps``: the batch is multiplied by ``factor`` once each milestone is passed: after the given ``epochs``,
      optimizer ``steps`` or training ``samples`` (exactly one list; Smith et al. 2017, arXiv:1711.00489), capped
      at ``max_batch``.
    * ``adaptive``: every ``every_n_steps`` steps the batch becomes clip(``scale`` · B̂, ``min_batch`` (default
      ``batch_size``), ``max_batch``) with B̂ the smoothed noise scale B_simple (McCandlish et al. 2018,
      arXiv:1812.06162); it never shrinks unless ``shrink``. The first decision waits until B̂ rests on
      ``min_estimates`` noise measurements, and one decision grows the batch at most ``max_growth``-fold (early
      estimates are noisy, and a batch that never shrinks would keep an overshoot for the rest of the run).

    ``lr``: ``scale`` follows ``lr_scaling`` at each step's batch, ``hold`` keeps the lr of ``batch_size``, ``adascale``
    multiplies it by AdaScale's gain ratio (Johnson et al. 2020, arXiv:2007.05105).
    """

    kind: Literal["fixed", "steps", "adaptive"] = "fixed"
    lr: Literal["scale", "hold", "adascale"] = "scale"
    factor: float = Field(2.0, gt=1)
    epochs: tuple[float, ...] | None = None
    steps: tuple[int, ...] | None = None
    samples: tuple[int, ...] | None = None
    every_n_steps: int = Field(50, gt=0)
    scale: float = Field(1.0, gt=0)
    min_batch: int | None = Field(None, gt=0)
    max_batch: int | None = Field(None, gt=0)
    shrink: bool = False
    min_estimates: int = Field(20, gt=0)
    max_growth: float = Field(2.0, gt=1)

    @model_validator(mode="before")
    @classmethod
    def _bare_kind(cls, data: Any) -> Any:
        return {"kind": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _keys_of_kind(self) -> BatchScheduleConfig:
        allowed = BATCH_SCHEDULE_KEYS[self.kind]
        # keys of other kinds, unless at their defaults (as a saved, fully resolved config has them)
        foreign = sorted(k for k in set(self.model_fields_set) - set(allowed)
                         if getattr(self, k) != type(self).model_fields[k].default)
        if foreign:
            raise PydanticCustomError("batch_schedule", "{keys} not a key of kind '{kind}'; its keys: {allowed}",
                                      {"keys": ", ".join(foreign), "kind": self.kind, "allowed": ", ".join(allowed)})
        milestones = [k for k in ("epochs", "steps", "samples") if getattr(self, k) is not None]
        if self.kind == "steps" and len(milestones) != 1:
            raise PydanticCustomError("batch_schedule", "kind 'steps' needs exactly one of epochs, steps, samples "
                                      "(the milestones), got {given}", {"given": ", ".join(milestones) or "none"})
        if self.kind == "adaptive" and self.max_batch is None:
            raise PydanticCustomError("batch_schedule", "kind 'adaptive' needs max_batch (the largest batch allowed)")
        if self.min_batch is not None and self.max_batch is not None and self.min_batch > self.max_batch:
            raise PydanticCustomError("batch_schedule", "min_batch {lo} exceeds max_batch {hi}",
                                      {"lo": self.min_batch, "hi": self.max_batch})
        if milestones and min(getattr(self, milestones[0]), default=0) < 0:
            raise PydanticCustomError("batch_schedule", "milestones must not be negative")
        return self


class ExperimentConfig(Section):
    """One experiment: workload, optimizer, effective batch size, lr rule, schedule, budget, seed, logging,
    optional probes."""

    name: str
    seed: int = 0
    data: Component
    model: Component
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    batch_size: int = Field(gt=0, description="effective batch: samples per optimizer step over all devices")
    max_micro_batch: int | None = Field(None, gt=0)
    lr_scaling: ScalingConfig = ScalingConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    budget: BudgetConfig
    batch_schedule: BatchScheduleConfig = BatchScheduleConfig()
    logging: LoggingConfig = LoggingConfig()
    probes: ProbesConfig = ProbesConfig()
    guard: GuardConfig = GuardConfig()
    trainer: TrainerConfig = TrainerConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _schedule_without_clipping(self) -> ExperimentConfig:
        if self.batch_schedule.kind != "fixed" and self.trainer.gradient_clip_val is not None:
            raise ValueError(f"batch_schedule kind '{self.batch_schedule.kind}' accumulates gradients itself and "
                             "does not clip them: remove trainer.gradient_clip_val or use batch_schedule: fixed")
        return self

    def resolved(self) -> dict[str, Any]:
        """Plain-data form with every default filled in (what a run saves as config.yaml)."""
        return self.model_dump(mode="json")


def validate(data: Mapping[str, Any], source: str = "<config>") -> ExperimentConfig:
    """Validate plain data; ConfigError names ``source`` and every offending key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(format_errors(err, source, key=dotted_key,
                                        allowed_keys=lambda loc: model_allowed_keys(ExperimentConfig, loc))) from None


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read, override and validate an experiment file."""
    source = str(path) + (f" (with --set {' '.join(overrides)})" if overrides else "")
    return validate(apply_overrides(read_yaml(path), overrides), source)
