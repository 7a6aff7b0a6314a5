"""Training data for a run with a batch-size schedule: one item per optimizer step, of that step's size.

Each item is the per-rank batch of one optimizer step, ``accumulate(n) × micro_batch`` rows (the module splits it
into micro-batches and accumulates their gradients), so Lightning's step counters advance once per optimizer step
and every step sees exactly ``batch(n)`` samples over all ranks. An epoch is one pass over the epoch's shuffled
order (the same order as :class:`~largebatch.data.TensorBatches`, reshuffled from ``seed + epoch``); it ends when
the rest of the order cannot fill the next step (dropped, like ``drop_last``) or the sample budget is spent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import count

from largebatch.data import TensorBatches
from largebatch.train.batch_schedule import BatchSchedule
from largebatch.train.datamodule import Batch, TensorDataModule


class ScheduledBatches:
    """The steps of one epoch (chosen by ``epoch_of()``) with batches assigned by ``schedule`` as they are made.

    No ``__len__``: the number of steps in an epoch is known only as they are assigned (Lightning then validates
    at the epoch's last batch)."""

    def __init__(self, batches: TensorBatches, schedule: BatchSchedule, epoch_of: Callable[[], int],
                 steps_done: Callable[[], int]) -> None:
        self.batches, self.schedule, self.epoch_of, self.steps_done = batches, schedule, epoch_of, steps_done

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch_of()
        self.schedule.truncate(self.steps_done())  # steps an abandoned loader prepared never ran
        order, micro, tensors = self.batches.order(epoch), self.batches.batch_size, self.batches.tensors
        start = 0
        for index in count():
            accumulate = self.schedule.propose(epoch)
            end = start + accumulate * micro
            if accumulate == 0 or end > len(order):
                return
            self.schedule.record(accumulate)
            rows = order[start:end]
            batch = tuple(t.index_select(0, rows) for t in tensors)
            if self.batches.transform is not None:
                batch = self.batches.transform(batch, self.batches.batch_generator(epoch, index))
            start = end
            yield batch


class ScheduledDataModule(TensorDataModule):
    """:class:`TensorDataModule` whose training batches follow a :class:`BatchSchedule`."""

    def __init__(self, *args: object, schedule: BatchSchedule, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.schedule = schedule

    def _step_in_progress(self) -> int:
        return self._steps_done() + 1

    @property
    def effective_batch_size(self) -> int:
        return self.schedule.batch_of(self._step_in_progress())

    @property
    def accumulate(self) -> int:
        return self.schedule.accumulate_of(self._step_in_progress())

    def samples_through(self, step: int) -> int:
        return self.schedule.samples_through(step)

    def train_dataloader(self) -> ScheduledBatches:  # type: ignore[override]
        rank, world = self._rank()
        batches = TensorBatches(self.splits.train, self.plan.micro_batch, shuffle=True, seed=self.seed,
                                drop_last=True, rank=rank, world_size=world, transform=self.transform)
        return ScheduledBatches(batches, self.schedule, self._current_epoch, self._steps_done)

    def _steps_done(self) -> int:
        return self.trainer.global_step if self.trainer is not None else 0
