"""A Lightning logger that writes into a ``RunStore`` (metrics.csv, layers.csv); rank zero only.

Besides Lightning's ``log_metrics`` it takes telemetry in blocks of steps (``log_metric_block``, ``log_layer_block``:
one file write per block) and per-layer tables (``log_layers``).
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from largebatch.records.store import RunStore


class RunStoreLogger(Logger):
    """Lightning's metrics into ``store``: one ``metrics.csv`` row per value, per-layer tables into ``layers.csv``.

    The ``epoch`` key Lightning adds to each logged dict becomes the row's epoch column, not a metric row. A
    call without a step reuses the last step logged (0 before any). Hyperparameters are not logged here: the
    runner writes the resolved config as ``config.yaml``. Summaries are the runner's too (``store.write_summary``).
    """

    def __init__(self, store: RunStore) -> None:
        super().__init__()
        self.store = store
        self._last_step = 0

    @property
    def name(self) -> str:
        return "largebatch"

    @property
    def version(self) -> str:
        return self.store.run_id

    @property
    def root_dir(self) -> str:
        return str(self.store.path.parent)

    @property
    def save_dir(self) -> str:
        return str(self.store.path)

    @property
    def log_dir(self) -> str:
        return str(self.store.path)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Nothing: the run's config is ``config.yaml``, written once by the runner."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int | None = None) -> None:
        values = {key: value.item() if isinstance(value, Tensor) else value for key, value in metrics.items()}
        epoch = values.pop("epoch", None)
        if step is not None:
            self._last_step = int(step)
        if values:
            self.store.log_metrics(self._last_step, values, epoch=None if epoch is None else int(epoch))

    @rank_zero_only
    def log_metric_block(
        self, steps: Sequence[int], names: Sequence[str], values: Sequence[float], digits: int | None = None
    ) -> None:
        """Metrics of several steps in one write (see ``RunStore.log_metric_block``)."""
        if steps:
            self._last_step = int(steps[-1])
            self.store.log_metric_block(steps, names, values, digits=digits)

    @rank_zero_only
    def log_layers(self, step: int, table: Mapping[str, Sequence[Any]]) -> None:
        """A columnar per-layer table (see ``RunStore.log_layers``)."""
        self.store.log_layers(step, table)

    @rank_zero_only
    def log_layer_block(self, steps: Sequence[int], layers: Sequence[str], table: Mapping[str, Sequence[Any]]) -> None:
        """The per-layer tables of several steps in one write (see ``RunStore.log_layer_block``)."""
        self.store.log_layer_block(steps, layers, table)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Close the store's files; everything was flushed as it was logged, and a later call reopens them."""
        self.store.close()
