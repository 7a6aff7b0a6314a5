"""Telemetry callbacks on a real (tiny) Lightning Trainer: values against hand computations, cadence, stopping."""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from largebatch.optim import LAMB, LARS, param_groups
from largebatch.train.callbacks import (
    CallbackGroup, DivergenceGuard, GeneralizationGap, GradNormMonitor, Throughput, TrustRatioMonitor, find,
)
from largebatch.train.callbacks.step_callback import StepCallback
from largebatch.train.callbacks.trust_ratio import min_median_max

Batch = tuple[Tensor, Tensor]
NAN, INF = float("nan"), float("inf")
COLUMNS = ("weight_norm", "grad_norm", "update_norm", "trust_ratio", "lr")


class Recorder(Logger):
    """Keeps every ``log_metrics`` and ``log_layers`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int | None, dict[str, float]]] = []
        self.layers: list[tuple[int, dict[str, list[Any]]]] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.rows.append((step, dict(metrics)))

    def log_layers(self, step: int, table: dict[str, list[Any]]) -> None:
        self.layers.append((step, table))

    def series(self, key: str) -> dict[int | None, float]:
        return {step: metrics[key] for step, metrics in self.rows if key in metrics}


def make_batches(n: int, size: int = 8) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        x = torch.randn(size, 4, generator=g)
        out.append((x, (x[:, 0] + x[:, 1] > 0).long()))
    return out


class Data(pl.LightningDataModule):
    """Fixed training batches; fixed gap-train and validation sets with known label means."""

    def __init__(self, n_batches: int = 10, accumulate: int = 1, size: int = 8) -> None:
        super().__init__()
        self.batches = make_batches(n_batches, size)
        self.effective_batch_size = size * accumulate

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.batches, batch_size=None)  # the batches as they are

    def gap_train_batches(self) -> list[Batch]:
        return [(torch.full((4, 4), 0.25), torch.tensor([1, 1, 1, 0]))]

    def val_batches(self) -> list[Batch]:
        return [(torch.full((4, 4), 1.5), torch.tensor([1, 0, 0, 0]))]


OPTIMIZERS: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
    "lars": lambda m: LARS(param_groups(m, weight_decay=1e-4), lr=0.5, momentum=0.9, weight_decay=1e-4),
    "lamb": lambda m: LAMB(param_groups(m, weight_decay=0.01), lr=1e-2),
    "sgd": lambda m: torch.optim.SGD(
        [{"params": m[0].parameters(), "lr": 0.1}, {"params": m[2].parameters(), "lr": 0.05}], lr=0.1
    ),
}


class Net(pl.LightningModule):
    """``model`` + ``evaluate`` as the training layer's modules have them; ``scale`` multiplies chosen losses."""

    def __init__(self, optimizer: str = "sgd", scale: dict[int, float] | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        self.optimizer_name = optimizer
        self.scale = scale or {}  # batch_idx -> loss factor (inject NaN, inf, spikes)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        x, y = batch
        return F.cross_entropy(self.model(x), y) * self.scale.get(batch_idx, 1.0)

    def evaluate(self, batches: Iterable[Batch]) -> dict[str, float]:
        """Known numbers: loss = mean input, accuracy = mean label."""
        xs, ys = zip(*batches)
        return {"loss": torch.cat(xs).mean().item(), "accuracy": torch.cat(ys).float().mean().item()}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return OPTIMIZERS[self.optimizer_name](self.model)


def fit(
    module: Net, callbacks: list[pl.Callback], data: Data | None = None, **kwargs: Any
) -> tuple[pl.Trainer, Recorder]:
    recorder = Recorder()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=recorder, callbacks=callbacks, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1,
        **kwargs,
    )
    trainer.fit(module, datamodule=data or Data())
    return trainer, recorder


class Probe(pl.Callback):
    """Hand-computed norms before each step and the optimizer's own statistics after it, by step (1-based)."""

    def __init__(self) -> None:
        self.before: dict[int, dict[str, tuple[float, float, float]]] = {}
        self.after: dict[int, dict[str, tuple[float, ...]]] = {}

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: Net, optimizer: Any) -> None:
        lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
        self.before[trainer.global_step + 1] = {
            name: (p.detach().norm().item(), p.grad.norm().item(), lrs[id(p)])
            for name, p in pl_module.model.named_parameters()
        }

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        optimizer = trainer.optimizers[0]
        if hasattr(optimizer, "layer_stats"):
            s = optimizer.layer_stats()
            grad = s.grad_norm.tolist() if s.grad_norm is not None else [math.nan] * len(s.names)
            rows = zip(s.weight_norm.tolist(), grad, s.update_norm.tolist(), s.trust_ratio.tolist(), s.lr.tolist())
            self.after[trainer.global_step] = dict(zip(s.names, rows))


def rows_of(table: dict[str, list[Any]]) -> dict[str, dict[str, float]]:
    return {name: {c: table[c][i] for c in COLUMNS} for i, name in enumerate(table["layer"])}


@pytest.mark.parametrize("optimizer", ["lars", "lamb"])
def test_trust_ratio_logs_the_optimizers_own_statistics(optimizer: str) -> None:
    probe = Probe()
    _, rec = fit(Net(optimizer), [TrustRatioMonitor(every_n_steps=3), probe], max_steps=7)

    assert [step for step, _ in rec.layers] == [1, 3, 6]
    for step, table in rec.layers:
        rows = rows_of(table)
        assert set(rows) == {"0.weight", "0.bias", "2.weight", "2.bias"}
        for name, row in rows.items():
            own = dict(zip(COLUMNS, probe.after[step][name]))
            if optimizer == "lamb":  # LAMB reports no ‖g‖: the monitor measures it (checked on the next line)
                own["grad_norm"] = row["grad_norm"]
            assert row == own
            assert row["grad_norm"] == pytest.approx(probe.before[step][name][1], rel=1e-5)
        assert rows["0.bias"]["trust_ratio"] == rows["2.bias"]["trust_ratio"] == 1.0  # excluded from adaptation
        # aggregates over the adapted layers only (the weights): min, mean of the two, max
        ratios = sorted(rows[n]["trust_ratio"] for n in ("0.weight", "2.weight"))
        lrs = sorted(rows[n]["lr"] for n in ("0.weight", "2.weight"))
        metrics = next(m for s, m in rec.rows if s == step and "trust_ratio/min" in m)
        assert [metrics[f"trust_ratio/{a}"] for a in ("min", "median", "max")] == pytest.approx(
            [ratios[0], sum(ratios) / 2, ratios[1]], rel=1e-12)
        assert [metrics[f"lr_layer/{a}"] for a in ("min", "median", "max")] == pytest.approx(
            [lrs[0], sum(lrs) / 2, lrs[1]], rel=1e-12)
        assert "trust_ratio/0.weight" not in metrics
    if optimizer == "lars":
        assert all(m["trust_ratio/max"] < 1.0 for _, m in rec.rows if "trust_ratio/max" in m)


def test_min_median_max_per_step_with_nan_last() -> None:
    values = torch.tensor([[3.0, 1.0, 2.0, 4.0], [NAN, 1.0, 2.0, 0.5]], dtype=torch.float64)
    got = min_median_max(values)
    assert got[0].tolist() == [1.0, 2.5, 4.0]  # even count: the mean of the middle two
    assert got[1, :2].tolist() == [0.5, 1.5] and math.isnan(got[1, 2])  # a NaN ratio shows as the max
    assert min_median_max(values[:, :3])[0].tolist() == [1.0, 2.0, 3.0]


def test_trust_ratio_for_other_optimizers_is_weight_over_grad_norm() -> None:
    net = Net("sgd")
    nn.init.zeros_(net.model[2].bias)  # ‖w‖ = 0 on the first step: ratio 1
    probe = Probe()
    _, rec = fit(net, [TrustRatioMonitor(every_n_steps=3, per_layer_to_loggers=True), probe], max_steps=7)

    assert [step for step, _ in rec.layers] == [1, 3, 6]
    for step, table in rec.layers:  # no param_names in SGD's groups: the LightningModule's names ("model.0.weight")
        rows = {name.removeprefix("model."): row for name, row in rows_of(table).items()}
        metrics = {k.replace("/model.", "/"): v for k, v in next(m for s, m in rec.rows
                                                                 if s == step and "trust_ratio/min" in m).items()}
        for name, (w, g, lr) in probe.before[step].items():
            expected = w / g if w > 0 and g > 0 else 1.0
            assert rows[name]["weight_norm"] == pytest.approx(w, rel=1e-6)
            assert rows[name]["grad_norm"] == rows[name]["update_norm"] == pytest.approx(g, rel=1e-6)
            assert rows[name]["trust_ratio"] == pytest.approx(expected, rel=1e-6)
            assert rows[name]["lr"] == lr == (0.1 if name.startswith("0.") else 0.05)
            assert metrics[f"trust_ratio/{name}"] == rows[name]["trust_ratio"]
        ratios = [r["trust_ratio"] for r in rows.values()]
        assert metrics["trust_ratio/median"] == pytest.approx(statistics.median(ratios), rel=1e-12)
        assert (metrics["lr_layer/min"], metrics["lr_layer/max"]) == (0.05, 0.1)
    assert rows_of(rec.layers[0][1])["model.2.bias"]["trust_ratio"] == 1.0


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_grad_norm_is_the_norm_of_the_accumulated_gradient(norm_type: float) -> None:
    data = Data(n_batches=10, accumulate=2)
    net = Net("sgd")
    initial = copy.deepcopy(net.model)
    _, rec = fit(net, [GradNormMonitor(every_n_steps=2, norm_type=norm_type)], data, max_steps=5,
                 accumulate_grad_batches=2)

    assert sorted(rec.series("grad_norm/global")) == [1, 2, 4]
    # by hand: Lightning divides each micro-batch loss by 2, so the step sees the mean of the two gradients
    (x0, y0), (x1, y1) = data.batches[:2]
    loss = (F.cross_entropy(initial(x0), y0) + F.cross_entropy(initial(x1), y1)) / 2
    loss.backward()
    grads = dict((name, p.grad) for name, p in initial.named_parameters())
    total = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads.values()]), norm_type).item()
    assert rec.series("grad_norm/global")[1] == pytest.approx(total, rel=1e-5)
    for name, g in grads.items():
        expected = torch.linalg.vector_norm(g, norm_type).item()
        assert rec.series(f"grad_norm/model.{name}")[1] == pytest.approx(expected, rel=1e-5)  # LightningModule names
    initial.zero_grad()
    F.cross_entropy(initial(x1), y1).backward()  # the last micro-batch alone is not what was measured
    last_only = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in initial.parameters()]), norm_type)
    assert rec.series("grad_norm/global")[1] != pytest.approx(last_only.item(), rel=1e-3)


def test_grad_norm_without_per_layer_logs_only_the_global_norm() -> None:
    _, rec = fit(Net("sgd"), [GradNormMonitor(every_n_steps=1, per_layer=False)], max_steps=2)
    keys = {k for _, m in rec.rows for k in m if k.startswith("grad_norm/")}
    assert keys == {"grad_norm/global"}
    assert sorted(rec.series("grad_norm/global")) == [1, 2]


def test_generalization_gap_formula_and_state() -> None:
    gap = GeneralizationGap()
    trainer, rec = fit(Net("sgd"), [gap], Data(n_batches=3), max_epochs=2)

    assert sorted(rec.series("gen_gap")) == [3, 6]  # at trainer.global_step after each epoch
    assert rec.series("epoch") == {3: 0.0, 6: 1.0}
    for step in (3, 6):
        m = next(m for s, m in rec.rows if s == step and "gen_gap" in m)
        assert [m[f"gap/{k}"] for k in ("train_acc", "val_acc", "train_loss", "val_loss")] == [0.75, 0.25, 0.25, 1.5]
        assert m["gen_gap"] == m["gap/train_acc"] - m["gap/val_acc"] == 0.5
        assert m["loss_gap"] == m["gap/val_loss"] - m["gap/train_loss"] == 1.25
    assert gap.last == m
    restored = GeneralizationGap()
    restored.load_state_dict(gap.state_dict())
    assert restored.last == gap.last


class Validated(Net):
    """Its validation loop logs val/loss = 2.0 and val/acc = 0.125 (``evaluate`` gives 1.5 and 0.25)."""

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.log("val/loss", 2.0)
        self.log("val/acc", 0.125)


class ValData(Data):
    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_batches() * 2, batch_size=None)


@pytest.mark.parametrize(("trainer_kwargs", "val_loss"), [
    ({}, {3: 2.0, 6: 2.0}),  # validated at every epoch end: taken from the validation loop
    ({"check_val_every_n_epoch": 2}, {3: 1.5, 6: 2.0}),  # not validated after epoch 0: evaluated
    ({"limit_val_batches": 0.5}, {3: 1.5, 6: 1.5}),  # validated on part of the set only: evaluated
])
def test_generalization_gap_takes_the_validation_loops_values_when_it_ran_at_the_step(
    trainer_kwargs: dict[str, Any], val_loss: dict[int, float]
) -> None:
    _, rec = fit(Validated("sgd"), [GeneralizationGap()], ValData(n_batches=3), max_epochs=2, **trainer_kwargs)
    assert rec.series("gap/val_loss") == val_loss
    assert rec.series("gap/val_acc") == {step: 0.125 if loss == 2.0 else 0.25 for step, loss in val_loss.items()}
    assert rec.series("gap/train_acc") == {3: 0.75, 6: 0.75}


class Counting(pl.Callback):
    """Counts the hooks Lightning (or a group) calls on it; overrides two of them."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_train_batch_end(self, *args: Any) -> None:
        self.calls.append("on_train_batch_end")

    def on_train_end(self, *args: Any) -> None:
        self.calls.append("on_train_end")

    def state_dict(self) -> dict[str, Any]:
        return {"calls": len(self.calls)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.calls = ["restored"] * state_dict["calls"]


def test_a_callback_group_forwards_only_the_hooks_members_implement() -> None:
    counting, guard = Counting(), DivergenceGuard()
    group = CallbackGroup([counting, guard])
    assert "on_before_zero_grad" not in vars(group)  # nobody implements it: Lightning's no-op
    assert group.on_fit_start == guard.on_fit_start  # one member implements it: its own method, no forwarding
    assert [m.__self__ for m in group.on_train_batch_end.methods] == [counting, guard]
    trainer, _ = fit(Net("sgd", scale={2: NAN}), [group], max_steps=6)
    assert counting.calls == ["on_train_batch_end"] * 3 + ["on_train_end"]  # the guard stopped the run at step 3
    assert guard.diverged is not None and guard.diverged["step"] == 3
    assert find(trainer, DivergenceGuard) == [guard] and find(trainer, Counting) == [counting]

    restored = CallbackGroup([Counting(), DivergenceGuard()])
    restored.load_state_dict(group.state_dict())
    assert restored.members[0].calls == ["restored"] * 4
    assert restored.members[1].diverged == guard.diverged
    with pytest.raises(ValueError, match="distinct state keys"):
        CallbackGroup([Counting(), Counting()])


def test_grouped_monitors_log_what_separate_ones_do() -> None:
    def monitors() -> list[pl.Callback]:
        return [TrustRatioMonitor(every_n_steps=2), GradNormMonitor(every_n_steps=2), Throughput(every_n_steps=2)]

    _, separate = fit(Net("lamb"), monitors(), max_steps=7)
    _, grouped = fit(Net("lamb"), [CallbackGroup(monitors())], max_steps=7)
    strip = [(step, {k: v for k, v in m.items() if not k.startswith("throughput/")}) for step, m in separate.rows]
    assert strip == [(step, {k: v for k, v in m.items() if not k.startswith("throughput/")})
                     for step, m in grouped.rows]
    assert separate.layers == grouped.layers
    assert sorted(grouped.series("throughput/step_ms")) == [1, 2, 4, 6]



@pytest.mark.parametrize(
    ("scale", "guard", "trainer_kwargs", "step", "reason"),
    [
        ({2: NAN}, {}, {}, 3, "nan"),
        ({1: INF}, {}, {}, 2, "inf"),
        ({3: -INF}, {}, {}, 4, "inf"),  # −inf counts as inf, also once the initial loss sets a limit
        ({3: 100.0}, {"factor": 10.0}, {}, 4, "exceeded 10×initial"),
        ({2: NAN}, {"check_every_n_steps": 2}, {}, 4, "nan"),  # not checked at step 3, still caught at 4
        ({2: NAN}, {}, {"accumulate_grad_batches": 2}, 2, "nan"),  # first micro-batch of step 2
    ],
    ids=["nan", "inf", "minus-inf", "spike", "between-checks", "accumulated"],
)
def test_divergence_guard_stops_at_the_step(
    scale: dict[int, float], guard: dict[str, Any], trainer_kwargs: dict[str, Any], step: int, reason: str
) -> None:
    callback = DivergenceGuard(**guard)
    trainer, rec = fit(Net("sgd", scale), [callback], Data(n_batches=20), max_steps=10, **trainer_kwargs)

    assert trainer.global_step == step
    record = callback.diverged
    assert record is not None
    assert (record["status"], record["step"], record["reason"]) == ("diverged", step, reason)
    assert rec.series("diverged") == {step: 1.0}
    if reason == "nan":
        assert math.isnan(record["loss"])
    elif reason == "inf":
        assert record["loss"] == INF
    else:
        assert record["loss"] > 10 * callback.initial_loss
        restored = DivergenceGuard()
        restored.load_state_dict(callback.state_dict())
        assert (restored.initial_loss, restored.diverged) == (callback.initial_loss, callback.diverged)


@pytest.mark.parametrize("scale", [{}, {1: 100.0}], ids=["normal", "spike-before-min-steps"])
def test_divergence_guard_lets_healthy_runs_finish(scale: dict[int, float]) -> None:
    callback = DivergenceGuard(factor=10.0, min_steps=3)
    trainer, rec = fit(Net("sgd", scale), [callback], max_steps=10)
    assert trainer.global_step == 10
    assert callback.diverged is None
    assert callback.initial_loss is not None and math.isfinite(callback.initial_loss)
    assert rec.series("diverged") == {}


class Sleep(pl.Callback):
    """Every micro-batch takes at least ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_start(self, *args: Any) -> None:
        time.sleep(self.seconds)


def test_throughput_cadence_and_summary() -> None:
    throughput = Throughput(every_n_steps=2)
    _, rec = fit(Net("sgd"), [Sleep(0.01), throughput], Data(n_batches=10, accumulate=2), max_steps=5,
                 accumulate_grad_batches=2)

    samples, ms = rec.series("throughput/samples_per_s"), rec.series("throughput/step_ms")
    assert sorted(samples) == sorted(ms) == [1, 2, 4]
    for step in samples:
        assert 20.0 <= ms[step] < 5000.0  # an optimizer step is two micro-batches of >= 10 ms
        assert samples[step] * ms[step] / 1000.0 == pytest.approx(16)  # effective batch: 2 x 8 samples
    assert throughput.summary() == {
        "samples_per_s": statistics.median(samples.values()), "step_ms": statistics.median(ms.values()),
    }


@pytest.mark.parametrize("make", [
    lambda: TrustRatioMonitor(every_n_steps=0), lambda: GradNormMonitor(every_n_steps=0),
    lambda: Throughput(every_n_steps=0), lambda: DivergenceGuard(factor=1.0), lambda: GradNormMonitor(norm_type=0),
])
def test_invalid_settings_are_rejected(make: Callable[[], pl.Callback]) -> None:
    with pytest.raises(ValueError):
        make()


class RowsSeen(pl.Callback):
    """How many ``grad_norm/global`` rows the recorder had received when each batch ended."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.seen: list[int] = []

    def on_train_batch_end(self, *args: Any) -> None:
        self.seen.append(len(self.recorder.series("grad_norm/global")))


def test_held_values_are_flushed_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    from largebatch.train.callbacks import step_callback

    monkeypatch.setattr(step_callback, "FLUSH_EVERY_N_STEPS", 3)
    recorder = Recorder()
    seen = RowsSeen(recorder)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=recorder, max_steps=7, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[GradNormMonitor(every_n_steps=1), seen])
    trainer.fit(Net("sgd"), datamodule=Data(n_batches=10))
    assert seen.seen == [0, 0, 3, 3, 3, 6, 6]  # blocks of 3 steps; the 7th arrives when training ends
    assert sorted(recorder.series("grad_norm/global")) == [1, 2, 3, 4, 5, 6, 7]


class StepCheck(StepCallback):
    """Its own step and the trainer's, before and after every optimizer step."""

    def __init__(self) -> None:
        super().__init__()
        self.before: list[tuple[int, int]] = []
        self.after: list[tuple[int, int]] = []

    def before_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        self.before.append((step, trainer.global_step + 1))

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        self.after.append((step, trainer.global_step))


def test_step_callbacks_count_the_trainers_steps_across_epochs_accumulation_and_resume(tmp_path: Path) -> None:
    def run(check: StepCheck, **kwargs: Any) -> pl.Trainer:
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, logger=False, max_steps=12, accumulate_grad_batches=2,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            callbacks=[check, ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_top_k=-1)])
        trainer.fit(Net("sgd"), datamodule=Data(n_batches=9), **kwargs)  # 4.5 steps an epoch
        return trainer

    first, resumed = StepCheck(), StepCheck()
    run(first)
    run(resumed, ckpt_path=str(next(tmp_path.glob("*step=6.ckpt"))))
    for check, steps in ((first, range(1, 13)), (resumed, range(7, 13))):
        assert [own for own, _ in check.after] == [own for own, _ in check.before] == list(steps)
        assert all(own == trainers for own, trainers in check.before + check.after)


class Crash(pl.Callback):
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == 4:
            raise RuntimeError("injected failure")


def test_held_values_are_flushed_when_training_fails() -> None:
    recorder = Recorder()
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=recorder, max_steps=8, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[TrustRatioMonitor(every_n_steps=1), GradNormMonitor(every_n_steps=1), Crash()])
    with pytest.raises(RuntimeError, match="injected failure"):
        trainer.fit(Net("lamb"), datamodule=Data(n_batches=10))
    assert sorted(recorder.series("grad_norm/global")) == [1, 2, 3, 4]
    assert [step for step, _ in recorder.layers] == [1, 2, 3, 4]


@pytest.mark.parametrize("optimizer, expected", [
    ("sgd", [4, 4, 4]),  # no statistics of its own: one measurement per step for both monitors
    ("lamb", [4]),  # fused LAMB reports ‖g‖: measured only on the first step, before the monitor knows that
])
def test_trust_ratio_and_grad_norm_share_one_gradient_measurement(
    optimizer: str, expected: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from largebatch.train.callbacks import layer_norms

    calls = []
    original = layer_norms.norms
    monkeypatch.setattr(layer_norms, "norms", lambda tensors, *a: calls.append(len(tensors)) or original(tensors, *a))
    _, recorder = fit(Net(optimizer), [TrustRatioMonitor(every_n_steps=1), GradNormMonitor(every_n_steps=1)],
                      max_steps=3)
    assert calls == expected
    for step, table in recorder.layers:
        for name, value in zip(table["layer"], table["grad_norm"]):
            assert recorder.series(f"grad_norm/{name}")[step] == pytest.approx(value, rel=1e-6)


def test_grad_norm_is_measured_before_clipping_even_when_the_optimizer_reports_one() -> None:
    trainer, recorder = fit(Net("lars"), [GradNormMonitor(every_n_steps=1)], max_steps=2, gradient_clip_val=1e-3)
    clipped = trainer.optimizers[0].layer_stats().grad_norm  # what LARS saw: the clipped gradients
    assert torch.linalg.vector_norm(clipped).item() == pytest.approx(1e-3, rel=1e-3)
    assert min(recorder.series("grad_norm/global").values()) > 1e-2  # the monitor's: before clipping
