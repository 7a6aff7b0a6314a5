"""``TensorBatches``: shuffled mini-batches of in-memory tensors, one indexing op per tensor per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

Batch = tuple[Tensor, ...]
Transform = Callable[[Batch, torch.Generator], Batch]


class TensorBatches:
    """Iterate over ``tensors`` (sharing dim 0) in batches of ``batch_size`` rows, gathered as whole-tensor slices.

    Each ``iter()`` is one epoch: with ``shuffle`` the order is ``torch.randperm`` under
    ``torch.Generator().manual_seed(seed + epoch)``, else the natural order. The epoch counter advances on each
    ``iter()``; ``set_epoch`` sets it (the ``DistributedSampler`` convention). With ``world_size > 1`` the epoch's
    order is cut to a multiple of ``world_size`` and rank ``r`` takes ``order[r::world_size]`` before batching,
    so ranks hold disjoint, equal shares and the same number of batches. ``drop_last`` drops a final partial
    batch. ``transform(batch, generator)``, if given, maps every batch with a generator seeded from
    ``(seed, epoch, rank, batch index)`` on the tensors' device (e.g. ``MaskedLMTransform``). Tensors stay on
    their device; for evaluation use ``shuffle=False, drop_last=False``.
    """

    def __init__(
        self,
        tensors: Batch,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        transform: Transform | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("TensorBatches needs at least one tensor")
        size = len(tensors[0])
        if any(len(t) != size for t in tensors):
            raise ValueError(f"tensors must share dim 0; got sizes {[len(t) for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.per_rank = size // world_size
        if drop_last and batch_size > self.per_rank:
            raise ValueError(
                f"batch_size {batch_size} exceeds the {self.per_rank} samples per rank (dataset size {size}, "
                f"world_size {world_size}); with drop_last=True no batch would be yielded"
            )
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.transform = transform
        self.epoch = 0

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        whole, part = divmod(self.per_rank, self.batch_size)
        return whole if self.drop_last or part == 0 else whole + 1

    @property
    def num_samples(self) -> int:
        """Samples this rank yields per epoch."""
        return min(len(self) * self.batch_size, self.per_rank)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` produce epoch ``epoch``'s order."""
        self.epoch = epoch

    def order(self, epoch: int) -> Tensor:
        """This rank's sample indices for ``epoch``, on the tensors' device."""
        size = len(self.tensors[0])
        if self.shuffle:
            order = torch.randperm(size, generator=torch.Generator().manual_seed(self.seed + epoch))
        else:
            order = torch.arange(size)
        return order[: self.per_rank * self.world_size][self.rank :: self.world_size].to(self.tensors[0].device)

    def __iter__(self) -> Iterator[Batch]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return self.batches(epoch)

    def batches(self, epoch: int) -> Iterator[Batch]:
        """Epoch ``epoch``'s batches, without touching the epoch counter."""
        order = self.order(epoch)
        for index in range(len(self)):
            rows = order[index * self.batch_size : (index + 1) * self.batch_size]
            batch = tuple(t.index_select(0, rows) for t in self.tensors)
            if self.transform is not None:
                batch = self.transform(batch, self.batch_generator(epoch, index))
            yield batch

    def batch_generator(self, epoch: int, index: int) -> torch.Generator:
        """A generator on the tensors' device, seeded by hashing ``(seed, epoch, rank, index)``."""
        entropy = np.random.SeedSequence([self.seed, epoch, self.rank, index]).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator(device=self.tensors[0].device).manual_seed(int(entropy))
