"""TrustRatioMonitor and Throughput in a Lightning project that knows nothing of largebatch: a plain
LightningModule (no ``.model``, no ``evaluate``), a plain DataLoader (no datamodule), Lightning's CSVLogger."""

from __future__ import annotations

import pandas as pd
import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from largebatch.optim import LAMB
from largebatch.train.callbacks import Throughput, TrustRatioMonitor
from largebatch.train.callbacks.throughput import samples_in


class Classifier(pl.LightningModule):
    def __init__(self, optimizer: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(6, 16)
        self.head = nn.Linear(16, 3)
        self.optimizer = optimizer

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.head(torch.relu(self.encoder(x))), y)

    def configure_optimizers(self):
        if self.optimizer == "lamb":
            return LAMB(self.parameters(), lr=1e-2)
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(module: pl.LightningModule, callback: pl.Callback, tmp_path, **trainer: object) -> pd.DataFrame:
    data = DataLoader(TensorDataset(torch.randn(96, 6), torch.randint(0, 3, (96,))), batch_size=12)
    pl.Trainer(accelerator="cpu", max_steps=4, logger=CSVLogger(tmp_path), log_every_n_steps=1,
               callbacks=[callback], enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, **trainer).fit(module, data)
    return pd.read_csv(next(tmp_path.rglob("metrics.csv")))


@pytest.mark.parametrize("optimizer", ["sgd", "lamb"])
def test_trust_ratio_monitor_in_a_plain_project(optimizer: str, tmp_path) -> None:
    metrics = fit(Classifier(optimizer), TrustRatioMonitor(every_n_steps=1, per_layer_to_loggers=True), tmp_path)
    names = {"encoder.weight", "encoder.bias", "head.weight", "head.bias"}  # the LightningModule's own names
    assert {f"trust_ratio/{name}" for name in names} | {"trust_ratio/median", "lr_layer/max"} <= set(metrics)
    ratios = metrics.dropna(subset=["trust_ratio/median"])
    assert sorted(ratios["step"]) == [1, 2, 3, 4]  # step N: after optimizer step N
    assert (ratios["trust_ratio/median"] > 0).all()


@pytest.mark.parametrize(("accumulate", "given"), [(1, None), (2, None), (2, 7)])
def test_throughput_in_a_plain_project(accumulate: int, given: int | None, tmp_path) -> None:
    throughput = Throughput(every_n_steps=1, samples_per_step=given)
    metrics = fit(Classifier("sgd"), throughput, tmp_path, accumulate_grad_batches=accumulate)
    rows = metrics.dropna(subset=["throughput/samples_per_s"])
    assert len(rows) == 4
    samples = given or 12 * accumulate  # counted from the first batch × accumulation × devices
    product = rows["throughput/samples_per_s"] * rows["throughput/step_ms"] / 1000
    assert product.tolist() == pytest.approx([samples] * 4)
    assert throughput.samples_per_step == samples


def test_samples_in_looks_into_batches() -> None:
    x = torch.zeros(5, 3)
    assert samples_in(x) == samples_in((x, x)) == samples_in({"input": x}) == samples_in([[x]]) == 5
    with pytest.raises(ValueError, match="samples_per_step must be >= 1"):
        Throughput(samples_per_step=0)


def test_run_store_logger_satisfies_the_block_logging_protocols(tmp_path) -> None:
    from largebatch.train.callbacks.emit import LayerBlockLogger, LayerTableLogger, MetricBlockLogger
    from largebatch.train.logger import RunStoreLogger

    for protocol in (MetricBlockLogger, LayerBlockLogger, LayerTableLogger):
        assert issubclass(RunStoreLogger, protocol)
        assert not isinstance(CSVLogger(tmp_path), protocol)


def test_a_plain_lightning_logger_gets_one_log_metrics_per_step_and_no_layer_tables(tmp_path) -> None:
    from types import SimpleNamespace

    from largebatch.train.callbacks.emit import emit_block, emit_layer_block

    calls: list[tuple[dict, int]] = []

    class Plain(CSVLogger):
        def log_metrics(self, metrics, step=None):
            calls.append((metrics, step))

    trainer = SimpleNamespace(loggers=[Plain(tmp_path)])
    emit_block(trainer, [1, 2], ["a", "b"], [1.0, 2.0, 3.0, 4.0])
    emit_layer_block(trainer, [1], ["w"], {"lr": [0.1]})
    assert calls == [({"a": 1.0, "b": 2.0}, 1), ({"a": 3.0, "b": 4.0}, 2)]


def test_evaluation_callbacks_name_what_a_plain_project_lacks(tmp_path) -> None:
    from largebatch.train.callbacks import GeneralizationGap

    with pytest.raises(TypeError, match=r"need a datamodule with gap_train_batches\(\) and val_batches\(\)"):
        fit(Classifier("sgd"), GeneralizationGap(), tmp_path, max_epochs=1)
