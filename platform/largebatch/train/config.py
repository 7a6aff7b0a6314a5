"""Experiment files: a typed schema, YAML loading with ``--set`` overrides, and errors that name file and key.

An experiment is one YAML file (see ``experiments/``). Every key is validated on load; an unknown key, a
wrong type or a value out of range raises :class:`ConfigError` naming the file, the dotted key and the
allowed values. ``resolved()`` is what a run saves next to its results.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """A configuration problem, already phrased for the user (file, key, allowed values)."""


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


OptimizerName = Literal["sgd", "adamw", "adam", "adagrad", "lars", "lamb"]


class OptimizerConfig(Section):
    """``lr`` is the base rate at ``lr_scaling.reference_batch_size``; ``options`` go to the constructor."""

    name: OptimizerName = "lamb"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    options: dict[str, Any] = Field(default_factory=dict)
    exclude_from_weight_decay: ExcludeConfig = ExcludeConfig()
    exclude_from_adaptation: ExcludeConfig = ExcludeConfig()


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


class TrackingConfig(Section):
    runs_root: str = "runs"
    wandb: WandbConfig = WandbConfig()


BATCH_SCHEDULE_KEYS: dict[str, tuple[str, ...]] = {
    "fixed": ("kind",),
    "steps": ("kind", "factor", "epochs", "steps", "samples", "lr", "max_batch"),
    "adaptive": ("kind", "every_n_steps", "scale", "min_batch", "max_batch", "shrink", "lr"),
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
      arXiv:1812.06162); it never shrinks unless ``shrink``.

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
    optimizer: OptimizerConfig = OptimizerConfig()
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




def _allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Field names of the section at ``loc`` (for 'unknown key' messages)."""
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


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "function-after") or "(top level)"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` → (["a", "b", "c"], YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. optimizer.name=lamb")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
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


def validate(data: Mapping[str, Any], source: str = "<config>") -> ExperimentConfig:
    """Validate plain data; ConfigError names ``source`` and every offending key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(format_errors(err, source, key=_dotted,
                                        allowed_keys=lambda loc: _allowed_keys(ExperimentConfig, loc))) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file, with clear errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read, override and validate an experiment file."""
    source = str(path) + (f" (with --set {' '.join(overrides)})" if overrides else "")
    return validate(apply_overrides(read_yaml(path), overrides), source)
