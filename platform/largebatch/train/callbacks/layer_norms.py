"""Per-layer gradient norms and layer names shared by the telemetry callbacks, cached per optimizer and step.

The trust-ratio and gradient-norm monitors ask for the same norms in ``on_before_optimizer_step``: :func:`grad_norms`
measures them once per step (one multi-tensor :func:`norms` call) and :func:`named_layers` builds the name table once
per optimizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from largebatch.optim import LayerStats

HALF = (torch.float16, torch.bfloat16)
Layers = list[tuple[str, Tensor, dict[str, Any]]]


def norms(tensors: Sequence[Tensor], norm_type: float = 2.0) -> Tensor:
    """The ``norm_type``-norm of each tensor, in order, as one float32 vector on the first tensor's device.

    One multi-tensor ``torch._foreach_norm`` call (two where half- and full-precision tensors mix: the
    half-precision ones are reduced in float32, the others in their own dtype).
    """
    if not tensors:
        return torch.empty(0)
    device, dtype = tensors[0].device, tensors[0].dtype
    if dtype == torch.float32 and all(t.dtype == dtype and t.device == device for t in tensors):  # the usual case
        return torch.stack(torch._foreach_norm(list(tensors), norm_type))
    out: list[Tensor] = [torch.empty(0)] * len(tensors)
    for half in (True, False):
        index = [i for i, t in enumerate(tensors) if (t.dtype in HALF) == half]
        if index:
            results = torch._foreach_norm([tensors[i] for i in index], norm_type, dtype=torch.float32 if half else None)
            for i, n in zip(index, results):
                out[i] = n.to(device, torch.float32)
    return torch.stack(out)


_ALL_LAYERS: WeakKeyDictionary[torch.optim.Optimizer, tuple[int, Layers]] = WeakKeyDictionary()
_GRAD_NORMS: WeakKeyDictionary[torch.optim.Optimizer, tuple[int, float, list[str], Tensor]] = WeakKeyDictionary()


def named_layers(optimizer: torch.optim.Optimizer, model: nn.Module) -> Layers:
    """(name, parameter, group) for every parameter of ``optimizer`` that has a gradient.

    Names are the group's ``param_names`` (what LARS/LAMB statistics use, and what
    :func:`largebatch.optim.param_groups` sets), else ``model``'s parameter names (the monitors pass the
    LightningModule: e.g. ``net.0.weight``), else ``group{i}.param{j}``. The name table is built once per optimizer (and again if its groups grow).
    """
    size = sum(len(group["params"]) for group in optimizer.param_groups)
    cached = _ALL_LAYERS.get(optimizer)
    if cached is None or cached[0] != size:
        model_names = {id(p): n for n, p in model.named_parameters()}
        layers = []
        for i, group in enumerate(optimizer.param_groups):
            names = group.get("param_names") or [
                model_names.get(id(p), f"group{i}.param{j}") for j, p in enumerate(group["params"])
            ]
            layers.extend(zip(names, group["params"], [group] * len(names)))
        cached = _ALL_LAYERS[optimizer] = (size, layers)
    return [layer for layer in cached[1] if layer[1].grad is not None]


def unnamed_to_module_names(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, str]:
    """``model``'s names of the parameters in ``optimizer``'s groups without ``param_names``, keyed by the
    ``group{i}.param{j}`` names that LARS/LAMB statistics give them (e.g. after ``LAMB(model.parameters())``)."""
    model_names = {id(p): n for n, p in model.named_parameters()}
    return {f"group{i}.param{j}": model_names[id(p)] for i, group in enumerate(optimizer.param_groups)
            if not group.get("param_names") for j, p in enumerate(group["params"]) if id(p) in model_names}


def step_stats(optimizer: torch.optim.Optimizer) -> list[LayerStats]:
    """``optimizer``'s statistics of its last step (it has ``layer_stats()``), one part per parameter bucket where
    it offers them so (``bucket_stats()``, nothing joined), else one part."""
    by_bucket = getattr(optimizer, "bucket_stats", None)
    return by_bucket() if callable(by_bucket) else [optimizer.layer_stats()]


def step_sees_final_gradients(trainer: pl.Trainer, optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer``'s own per-step statistics (``layer_stats()``, e.g. LARS's and fused LAMB's ‖g‖) are of
    the gradients as ``on_before_optimizer_step`` sees them: nothing clips them in between and no fp16 GradScaler
    can skip the step (which would leave the previous step's statistics in place)."""
    return hasattr(optimizer, "layer_stats") and not trainer.gradient_clip_val and trainer.precision != "16-mixed"


def grad_norms(
    optimizer: torch.optim.Optimizer, model: nn.Module, step: int, norm_type: float = 2.0
) -> tuple[list[str], Tensor]:
    """Layer names and ``norm_type``-norms of the gradients ``optimizer`` is about to apply at ``step``.

    Measured once per step and norm type, whichever monitor asks first (trust ratio and gradient-norm
    monitors share it); call it from ``on_before_optimizer_step``, when the gradients are final.
    """
    cached = _GRAD_NORMS.get(optimizer)
    if cached is not None and cached[:2] == (step, norm_type):
        return cached[2], cached[3]
    layers = named_layers(optimizer, model)
    names, values = [name for name, _, _ in layers], norms([p.grad for _, p, _ in layers], norm_type)
    _GRAD_NORMS[optimizer] = (step, norm_type, names, values)
    return names, values
