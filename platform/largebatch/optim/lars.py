"""LARS: Layer-wise Adaptive Rate Scaling (You et al. 2017, arXiv:1708.03888, eq. 6 and Algorithm 1).

For each layer l with weights w, gradient g, weight decay β, trust coefficient η and global rate γ_t:

    λ_l = η·‖w‖ / (‖g‖ + β‖w‖ + eps)            (eq. 6, ``denominator="paper"``: timm, Lightning Bolts)
    λ_l = η·‖w‖ / (‖g + βw‖ + eps)              (``denominator="update"``: optax, TensorFlow)
    λ_l = min(λ_l / γ_t, 1)                     (``trust_clip=True``: LARC, never above the global rate)

(so the step's rate γ_t·λ_l becomes min(η·‖w‖/(…), γ_t): LARC bounds the local *rate* by γ_t, unlike LAMB's
``lambc``, which bounds the *ratio* by 1 whatever the rate; see :mod:`largebatch.optim.trust_ratio`)

then momentum on d = g + βw, with the learning rate in one of two places:

    v ← m·v + (1 − dampening)·γ_t·λ_l·d;  w ← w − v          (``lr_placement="momentum"``: Algorithm 1, optax)
    v ← m·v + (1 − dampening)·λ_l·d;      w ← w − γ_t·v      (``lr_placement="step"``: torch.optim.SGD style)

(the torch style starts its buffer at v = λ_l·d, like ``torch.optim.SGD``). Nesterov replaces the applied v by
``λd + m·v`` (times γ_t where it is outside). The two placements differ only when γ_t changes during training:
inside the buffer, old momentum keeps the rate it was accumulated with. ``p.grad`` is never modified.

On float32 CPU parameters the step runs as two fused passes (:mod:`largebatch.optim._fused_cpu`): pass 1
returns ‖w‖, ‖g‖ (and ‖g + βw‖) per layer, :func:`trust_ratio` turns them into λ_l, pass 2 updates v and w
(7 floats per parameter; momentum SGD's multi-tensor step streams 8). On CUDA the same two passes run as Triton
kernels over the whole bucket (:mod:`largebatch.optim._fused_triton`), with a finishing kernel between them that
computes the norms, λ_l and the per-layer coefficients on the device (``lars_step``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor

from largebatch.optim._lists import ListOps
from largebatch.optim.base import Bucket, LayerwiseOptimizer
from largebatch.optim.trust_ratio import LayerStats, trust_ratio

Denominator = Literal["paper", "update"]
LrPlacement = Literal["momentum", "step"]


class LARS(LayerwiseOptimizer):
    """LARS with momentum; see the module docstring for the equations and the two convention switches.

    Plain ``LARS(model.parameters())`` adapts *every* tensor, biases and normalisation layers included (their
    trust ratio can be huge: 43,433 on a bias-only group in one test), which neither paper does. Use
    ``largebatch.optim.create_optimizer(model, "lars", lr=..., weight_decay=...)``, which puts biases,
    norm-layer and other 1-D parameters in groups with ``adapt=False`` and no weight decay (the plain momentum-SGD step),
    or build the groups with :func:`largebatch.optim.param_groups`.

    Args:
        params: parameters or parameter groups (see :func:`largebatch.optim.param_groups`); a group may set
            ``adapt=False`` (plain momentum SGD, λ = 1) and its own ``weight_decay``, independently.
        lr: γ, the global learning rate. momentum: m. dampening, nesterov: as in ``torch.optim.SGD``.
        weight_decay: β. trust_coefficient: η (0.001 in the paper). eps: added to the denominator.
        trust_clip: LARC (NVIDIA apex's clip mode): λ_l ← min(λ_l/γ, 1), so the local rate γ·λ_l never exceeds γ.
        denominator: ``"paper"`` (‖g‖ + β‖w‖) or ``"update"`` (‖g + βw‖).
        lr_placement: ``"momentum"`` (Algorithm 1) or ``"step"`` (PyTorch SGD).
        foreach: multi-tensor path (default) or one parameter at a time (``False``); same numbers.
        fused: the fused kernels (two passes over the parameters, 7 floats each: C++ for float32 CPU parameters,
            Triton for float32/bf16/fp16 CUDA ones); None (default) uses them when they can be built.
    """

    option_defaults = {
        "adapt": True, "dampening": 0.0, "nesterov": False, "eps": 0.0, "trust_clip": False,
        "denominator": "paper", "lr_placement": "momentum",
    }

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        momentum: float = 0.9,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        trust_coefficient: float = 0.001,
        eps: float = 0.0,
        trust_clip: bool = False,
        denominator: Denominator = "paper",
        lr_placement: LrPlacement = "momentum",
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or trust_coefficient <= 0 or eps < 0:
            raise ValueError(
                f"LARS: need lr, momentum, weight_decay, eps >= 0 and trust_coefficient > 0; got lr={lr}, "
                f"momentum={momentum}, weight_decay={weight_decay}, eps={eps}, trust_coefficient={trust_coefficient}"
            )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("LARS: nesterov needs momentum > 0 and dampening = 0")
        if denominator not in ("paper", "update"):
            raise ValueError(f"LARS: denominator must be 'paper' or 'update', got {denominator!r}")
        if lr_placement not in ("momentum", "step"):
            raise ValueError(f"LARS: lr_placement must be 'momentum' or 'step', got {lr_placement!r}")
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
            trust_coefficient=trust_coefficient, eps=eps, trust_clip=trust_clip, denominator=denominator,
            lr_placement=lr_placement,
        )
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def _init_state(self, param: Tensor) -> dict[str, Any]:
        if self.defaults["momentum"] == 0 and all(g["momentum"] == 0 for g in self.param_groups):
            return {}
        return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}

    def _update(self, group: dict[str, Any], bucket: Bucket, ops: ListOps) -> LayerStats:
        lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
        params, grads = bucket.params, bucket.grads
        paper = group["denominator"] == "paper"

        inside = group["lr_placement"] == "momentum"
        first_torch_step = not inside and bucket.step == 1
        direct_on_w = momentum == 0 or group["nesterov"]
        into_factor = 1.0 if first_torch_step else 1.0 - group["dampening"]
        step_lr = 1.0 if inside else lr
        buffer_step = step_lr * momentum if group["nesterov"] else step_lr
        buffers = bucket.state_list("momentum_buffer") if momentum != 0 else []
        triton = self._triton(bucket)
        stats = None if triton is None else triton.lars_step(
            params, grads, buffers, wd, momentum, lr, group["trust_coefficient"], group["eps"], paper, group["adapt"],
            group["trust_clip"] and lr > 0, lr if inside else 1.0, into_factor, direct_on_w, step_lr, buffer_step)
        if stats is not None:  # Triton: the whole step, the trust ratios and coefficients included, in 3 launches
            weight_norm, grad_norm, update_norm, ratio, layer_lr = stats.unbind()
            return LayerStats(bucket.names, weight_norm, update_norm, ratio, layer_lr, grad_norm)

        kernels = self._kernels(bucket)
        norms = None if kernels is None else kernels.lars_norms(params, grads, wd, not paper)
        if norms is not None:  # fused pass 1: ‖w‖, ‖g‖ (and ‖g + βw‖) in one sweep
            weight_norm, grad_norm = norms[0], norms[1]
            update_norm = grad_norm + wd * weight_norm if paper else norms[2]
        else:
            weight_norm, grad_norm = ops.norms(params), ops.norms(grads)
            if paper:
                update_norm = grad_norm + wd * weight_norm
            else:
                direction = self._work_buffers(params)
                ops.copy_(direction, grads)
                ops.add_(direction, params, alpha=wd)
                update_norm = ops.norms(direction)
        if group["adapt"]:
            ratio = trust_ratio(weight_norm, update_norm, coefficient=group["trust_coefficient"], eps=group["eps"])
            if group["trust_clip"] and lr > 0:
                ratio = torch.clamp(ratio / lr, max=1.0)
        else:
            ratio = torch.ones_like(weight_norm)

        # With d = g + βw: v ← μ·v + into_buffer·d, then w −= direct·d + step_lr·μ·v (Nesterov) or step_lr·v;
        # without momentum w −= direct·d. scale: lr·ratio with the lr inside the momentum, else ratio.
        scale = lr * ratio if inside else ratio
        into_buffer = into_factor * scale
        direct = step_lr * scale if direct_on_w else None

        if norms is not None:  # fused pass 2
            coefficients = torch.stack([into_buffer, torch.zeros_like(scale) if direct is None else direct])
            kernels.lars_apply(params, grads, buffers, coefficients.to(torch.float32), wd, momentum, buffer_step)
        else:
            self._eager_step(ops, params, grads, buffers, wd, momentum, into_buffer, direct, buffer_step)
        return LayerStats(bucket.names, weight_norm, update_norm, ratio, scale if inside else lr * ratio, grad_norm)

    @staticmethod
    def _eager_step(
        ops: ListOps, params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], wd: float, momentum: float,
        into_buffer: Tensor, direct: Tensor | None, buffer_step: float,
    ) -> None:
        """v ← μ·v + into_buffer·d, w −= direct·d + buffer_step·v, with d = g + βw never materialised.

        Without momentum (no ``buffers``) only w −= direct·d; ``direct`` None means no d term on w.
        """
        dtype = params[0].dtype

        def add_direction_(targets: list[Tensor], scale: Tensor) -> None:
            """targets += scale·d, one scale per layer; the βw term goes first so ``targets`` may be the params."""
            if wd != 0:
                ops.addcmul_(targets, params, list((scale * wd).to(dtype).unbind()))
            ops.addcmul_(targets, grads, list(scale.to(dtype).unbind()))

        if buffers:
            ops.mul_(buffers, momentum)
            add_direction_(buffers, into_buffer)
        if direct is not None:
            add_direction_(params, -direct)
        if buffers:
            ops.add_(params, buffers, alpha=-buffer_step)
