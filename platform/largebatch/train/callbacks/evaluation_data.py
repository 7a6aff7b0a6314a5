"""The data contract of the evaluation callbacks (:class:`GeneralizationGap`, :class:`SharpnessProbe`).

Both measure the model on fixed batches: a training subset that is the same at every call, and the validation
set. They get them through one accessor, :func:`evaluation_data`, which checks the trainer's datamodule against
:class:`EvaluationData` (this project's ``TensorDataModule`` satisfies it) and names what is missing otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import lightning.pytorch as pl
from torch import Tensor

Batch = tuple[Tensor, ...]


@runtime_checkable
class EvaluationData(Protocol):
    """A datamodule that offers fixed evaluation batches, each ``(inputs, targets)`` with the batch dimension first."""

    def gap_train_batches(self) -> Iterable[Batch]:
        """The same training subset at every call (GeneralizationGap uses one the size of the validation set)."""

    def val_batches(self) -> Iterable[Batch]:
        """The whole validation set."""


def evaluation_data(trainer: pl.Trainer) -> EvaluationData:
    """``trainer``'s datamodule as :class:`EvaluationData`; a TypeError naming the missing methods otherwise."""
    data = getattr(trainer, "datamodule", None)
    if not isinstance(data, EvaluationData):
        missing = [name for name in ("gap_train_batches", "val_batches") if not callable(getattr(data, name, None))]
        needed = " and ".join(f"{name}()" for name in missing)
        raise TypeError(f"GeneralizationGap and SharpnessProbe need a datamodule with {needed} (see "
                        f"largebatch.train.callbacks.evaluation_data.EvaluationData); got {type(data).__name__}")
    return data
