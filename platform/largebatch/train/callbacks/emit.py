"""Emitting telemetry to a trainer's loggers, and the block-logging contract loggers may offer
(:class:`MetricBlockLogger`, :class:`LayerBlockLogger`, :class:`LayerTableLogger`): a logger that has them takes
whole blocks of steps in one call, any other Lightning logger gets one ``log_metrics`` per step (and no per-layer
tables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import lightning.pytorch as pl


@runtime_checkable
class MetricBlockLogger(Protocol):
    """A logger that takes scalars of several steps in one call (:class:`~largebatch.train.logger.RunStoreLogger`)."""

    def log_metric_block(
        self, steps: Sequence[int], names: Sequence[str], values: Sequence[float], digits: int | None = None
    ) -> None:
        """``values[i * len(names) + j]`` is metric ``names[j]`` at ``steps[i]``; NaN where a metric has no value;
        written with ``digits`` significant digits where given."""


@runtime_checkable
class LayerBlockLogger(Protocol):
    """A logger that takes per-layer tables of several steps in one call."""

    def log_layer_block(self, steps: Sequence[int], layers: Sequence[str], table: Mapping[str, Sequence[Any]]) -> None:
        """Each column of ``table`` holds ``len(steps) * len(layers)`` values, the layers of ``steps[0]`` first."""


@runtime_checkable
class LayerTableLogger(Protocol):
    """A logger that takes one step's per-layer table (the fallback for loggers without ``log_layer_block``)."""

    def log_layers(self, step: int, table: Mapping[str, Sequence[Any]]) -> None:
        """``table`` is columnar: ``layer`` (the names) and one column per statistic, one value per layer."""

def emit(trainer: pl.Trainer, metrics: Mapping[str, float], step: int) -> None:
    """Scalars to every logger of ``trainer`` (one call per logger, not ``LightningModule.log``)."""
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=step)


def emit_block(
    trainer: pl.Trainer, steps: list[int], names: list[str], values: list[float], digits: int | None = None
) -> None:
    """Scalars of several steps to every logger: ``values[i * len(names) + j]`` is ``names[j]`` at ``steps[i]``.
    Loggers with ``log_metric_block`` take the block in one call (written with ``digits`` significant digits where
    given, e.g. 9 for float32 measurements), others one ``log_metrics`` per step."""
    width = len(names)
    for logger in trainer.loggers:
        if isinstance(logger, MetricBlockLogger):
            logger.log_metric_block(steps, names, values, digits=digits)
            continue
        for i, step in enumerate(steps):
            logger.log_metrics(dict(zip(names, values[i * width:(i + 1) * width])), step=step)


def emit_layer_block(trainer: pl.Trainer, steps: list[int], layers: list[str], table: dict[str, list[float]]) -> None:
    """Per-layer tables of several steps (each column ``len(steps) * len(layers)`` values, step after step) to the
    loggers that take them: in one call where the logger has ``log_layer_block``, else one ``log_layers`` per step."""
    n = len(layers)
    for logger in trainer.loggers:
        if isinstance(logger, LayerBlockLogger):
            logger.log_layer_block(steps, layers, table)
        elif isinstance(logger, LayerTableLogger):
            for i, step in enumerate(steps):
                columns = {key: column[i * n:(i + 1) * n] for key, column in table.items()}
                logger.log_layers(step, {"layer": layers, **columns})

