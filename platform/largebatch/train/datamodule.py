"""In-memory data for Lightning: whole-tensor batches, exact effective batches, fixed evaluation subsets."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning.pytorch as pl
import torch
from torch import Tensor

from largebatch.data import MaskedLMTransform, Splits, TensorBatches
from largebatch.train.plan import BatchPlan

Batch = tuple[Tensor, ...]


class EpochBatches:
    """An epoch of ``TensorBatches`` chosen by ``epoch_of()``, cut to ``limit`` batches (a re-iterable)."""

    def __init__(self, batches: TensorBatches, epoch_of: Callable[[], int], limit: int | None = None) -> None:
        self.batches, self.epoch_of, self.limit = batches, epoch_of, limit

    def __len__(self) -> int:
        return len(self.batches) if self.limit is None else min(self.limit, len(self.batches))

    def __iter__(self) -> Iterator[Batch]:
        for index, batch in enumerate(self.batches.batches(self.epoch_of())):
            if index == len(self):
                return
            yield batch


class TensorDataModule(pl.LightningDataModule):
    """Serves a dataset's :class:`~largebatch.data.Splits` by the :class:`BatchPlan`.

    Training: each rank reshuffles every epoch from ``seed + epoch`` (the trainer's epoch, so a resumed run
    continues the same order) and yields ``steps_per_epoch × accumulate`` micro-batches, so every optimizer step
    sees exactly ``batch_size`` samples. Evaluation: the validation set, and a fixed training subset of the same
    size for the generalization gap, in fixed order with fixed MLM masks.
    """

    def __init__(self, splits: Splits, plan: BatchPlan, seed: int, eval_batch_size: int = 1024) -> None:
        super().__init__()
        self.splits, self.plan, self.seed = splits, plan, seed
        self.eval_batch_size = eval_batch_size
        self.transform = MaskedLMTransform.from_meta(splits.meta) if splits.meta.get("task") == "mlm" else None
        self._gap_subset: Batch | None = None

    @property
    def effective_batch_size(self) -> int:
        """Samples of the optimizer step in progress, over all micro-batches and devices."""
        return self.plan.batch_size

    @property
    def accumulate(self) -> int:
        """Micro-batches per device of the optimizer step in progress."""
        return self.plan.accumulate

    def samples_through(self, step: int) -> int:
        """Training samples seen by the end of optimizer step ``step``."""
        return step * self.plan.batch_size

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _eval(self, tensors: Batch, seed_offset: int) -> EpochBatches:
        batches = TensorBatches(tensors, min(self.eval_batch_size, len(tensors[0])), shuffle=False, drop_last=False,
                                seed=self.seed + seed_offset, transform=self.transform)
        return EpochBatches(batches, lambda: 0)

    def train_dataloader(self) -> EpochBatches:
        rank, world = self._rank()
        batches = TensorBatches(self.splits.train, self.plan.micro_batch, shuffle=True, seed=self.seed,
                                drop_last=True, rank=rank, world_size=world, transform=self.transform)
        return EpochBatches(batches, self._current_epoch, self.plan.steps_per_epoch * self.plan.accumulate)

    def val_dataloader(self) -> EpochBatches:
        return self.val_batches()

    def val_batches(self) -> EpochBatches:
        return self._eval(self.splits.val, 1)

    def test_batches(self) -> EpochBatches | None:
        return None if self.splits.test is None else self._eval(self.splits.test, 2)

    def gap_train_batches(self) -> EpochBatches:
        """A fixed, seeded training subset the size of the validation set (gathered once, reused every epoch)."""
        if self._gap_subset is None:
            n_val, n_train = len(self.splits.val[0]), len(self.splits.train[0])
            generator = torch.Generator().manual_seed(self.seed + 3)
            rows = torch.randperm(n_train, generator=generator)[: min(n_val, n_train)]
            self._gap_subset = tuple(t[rows] for t in self.splits.train)
        return self._eval(self._gap_subset, 3)
