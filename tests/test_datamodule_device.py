"""The training data lives on the training device: copied there once, batches gathered there (no per-step copy)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from largebatch.data import Splits
from largebatch.train.datamodule import TensorDataModule
from largebatch.train.plan import BatchPlan


def datamodule_on(device: str) -> TensorDataModule:
    g = torch.Generator().manual_seed(0)
    splits = Splits(
        train=(torch.randn(64, 3, generator=g), torch.randint(0, 2, (64,), generator=g)),
        val=(torch.randn(16, 3, generator=g), torch.randint(0, 2, (16,), generator=g)),
        test=(torch.randn(8, 3, generator=g), torch.randint(0, 2, (8,), generator=g)),
        meta={"task": "classification", "num_classes": 2, "input_shape": (3,)},
    )
    plan = BatchPlan(batch_size=16, micro_batch=8, accumulate=2, devices=1, steps_per_epoch=4, total_steps=8,
                     warmup_steps=0, lr=0.1, train_samples=64)
    data = TensorDataModule(splits, plan, seed=0, eval_batch_size=8)
    data.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)), global_rank=0,
                                   world_size=1, current_epoch=0)
    return data


def test_every_split_is_placed_on_the_device_once() -> None:
    data = datamodule_on("meta")
    first, second = data.train_dataloader(), data.train_dataloader()
    assert first.batches.tensors[0].device.type == "meta"
    assert first.batches.tensors[0] is second.batches.tensors[0]  # copied once, not per epoch or per loader
    batches = [data.val_batches(), data.test_batches(), data.gap_train_batches()]
    assert data.val_batches().batches.tensors[0] is batches[0].batches.tensors[0]
    for loader in (first, *batches):
        for batch in loader:
            assert all(t.device.type == "meta" for t in batch)


def test_on_the_cpu_the_splits_are_used_as_they_are() -> None:
    data = datamodule_on("cpu")
    assert data.train_dataloader().batches.tensors[0] is data.splits.train[0]
    assert data.val_batches().batches.tensors[1] is data.splits.val[1]

