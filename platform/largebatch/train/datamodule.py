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

    Every split is copied to the training device (the trainer's ``strategy.root_device``) once, on first use, and
    batches are gathered there: no host→device copy per step (on the CPU the tensors are used as they are).
    """

    def __init__(self, splits: Splits, plan: BatchPlan, seed: int, eval_batch_size: int = 1024) -> None:
        super().__init__()
        self.splits, self.plan, self.seed = splits, plan, seed
        self.eval_batch_size = eval_batch_size
        self.transform = MaskedLMTransform.from_meta(splits.meta) if splits.meta.get("task") == "mlm" else None
        self._gap_subset: Batch | None = None
        self._placed: dict[str, Batch] = {}
        self._placed_on: torch.device | None = None

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

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _on_device(self, split: str, tensors: Batch) -> Batch:
        """``tensors`` on the training device: copied on the first call per device and kept for every later one."""
        device = self._device()
        if device != self._placed_on:
            self._placed, self._placed_on, self._gap_subset = {}, device, None
        if split not in self._placed:
            self._placed[split] = tuple(t.to(device) for t in tensors)
        return self._placed[split]

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _eval(self, tensors: Batch, seed_offset: int) -> EpochBatches:
        batches = TensorBatches(tensors, min(self.eval_batch_size, len(tensors[0])), shuffle=False, drop_last=False,
                                seed=self.seed + seed_offset, transform=self.transform)
        return EpochBatches(batches, lambda: 0)

    def train_dataloader(self) -> EpochBatches:
        rank, world = self._rank()
        batches = TensorBatches(self._on_device("train", self.splits.train), self.plan.micro_batch, shuffle=True,
                                seed=self.seed, drop_last=True, rank=rank, world_size=world, transform=self.transform)
        return EpochBatches(batches, self._current_epoch, self.plan.steps_per_epoch * self.plan.accumulate)

    def val_dataloader(self) -> EpochBatches:
        return self.val_batches()

    def val_batches(self) -> EpochBatches:
        return self._eval(self._on_device("val", self.splits.val), 1)

    def test_batches(self) -> EpochBatches | None:
        return None if self.splits.test is None else self._eval(self._on_device("test", self.splits.test), 2)

    def gap_train_batches(self) -> EpochBatches:
        """A fixed, seeded training subset the size of the validation set (gathered once, reused every epoch)."""
        train = self._on_device("train", self.splits.train)
        if self._gap_subset is None:
            n_val, n_train = len(self.splits.val[0]), len(self.splits.train[0])
            generator = torch.Generator().manual_seed(self.seed + 3)
            rows = torch.randperm(n_train, generator=generator)[: min(n_val, n_train)].to(self._placed_on)
            self._gap_subset = tuple(t[rows] for t in train)
        return self._eval(self._gap_subset, 3)
