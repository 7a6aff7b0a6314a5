"""LAMB: Layer-wise Adaptive Moments for Batch training (You et al. 2019, arXiv:1904.00962, Algorithm 2).

For each layer l at step t, with gradient g (optionally pre-normalised, NVLAMB):

    m_t = β1·m_{t-1} + (1 − β1)·g                                   (Adam first moment)
    v_t = β2·v_{t-1} + (1 − β2)·g²                                  (Adam second moment)
    r_t = (m_t / (1 − β1^t)) / (sqrt(v_t / (1 − β2^t)) + ε)          (bias-corrected Adam direction)
    u_t = r_t + λ·x_t                                               (weight decay inside the update: the paper)
    x_{t+1} = x_t − η_t · φ(‖x_t‖) / ‖u_t‖ · u_t                    (layer-wise trust ratio)

φ is the identity by default (the authors' later advice); ``weight_norm_bounds=(0, 10)`` gives the clip of
paper v1. ``lambc=True`` caps the ratio at 1 (LAMBC: x_{t+1} = x_t − η_t·min(φ(‖x_t‖)/‖u_t‖, 1)·u_t, so no layer
steps faster than η_t), ``ratio_bounds`` clamps it generally. This option was called ``trust_clip`` before; that
name now means only LARS's LARC rule (λ ≤ γ, a bound that depends on the learning rate: see
:mod:`largebatch.optim.trust_ratio`), and experiment files that still say ``trust_clip`` for LAMB are read as
``lambc`` with a warning (:mod:`largebatch.optim.registry`).
``weight_decay_mode="decoupled"`` applies x ← x·(1 − η_t·λ) outside the ratio instead (AdamW style).
``grad_pre_normalization=c`` divides all gradients by max(1, ‖g‖_global / c) first (NVIDIA's NVLAMB);
``p.grad`` is never modified.

On float32 CPU parameters the step is one call into the fused kernels (:mod:`largebatch.optim._fused_cpu`),
which walk the bucket in cache-sized blocks of consecutive layers: pass 1 updates m and v and sums ‖x‖, ‖u‖ and
‖g‖ per layer, the trust ratios follow in C++ (the rule of :func:`trust_ratio`), pass 2 applies the step while
the block is still in cache. That streams about 7 floats per parameter from memory where the blocks fit in cache
(as many as Adam) and up to 10 for layers larger than the cache, against ~27 for the multi-tensor ops.
On CUDA (float32, bf16, fp16) the step is three Triton launches over the whole bucket
(:mod:`largebatch.optim._fused_triton`): moments and block sums; the norms, trust ratios (the rule of
:meth:`LAMB._ratio`) and step scales; the write (10 values per parameter, no host synchronisation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor

from largebatch.optim._lists import ListOps
from largebatch.optim.base import Bucket, LayerwiseOptimizer
from largebatch.optim.trust_ratio import Bounds, LayerStats, trust_ratio

WeightDecayMode = Literal["adam_update", "decoupled"]


class LAMB(LayerwiseOptimizer):
    """LAMB with the paper's defaults; see the module docstring for the equations.

    Plain ``LAMB(model.parameters())`` adapts *every* tensor, biases and normalisation layers included (their
    trust ratio can be huge: 43,433 on a bias-only group in one test), which neither paper does. Use
    ``largebatch.optim.create_optimizer(model, "lamb", lr=..., weight_decay=...)``, which puts biases,
    norm-layer and other 1-D parameters in groups with ``adapt=False`` and no weight decay (the plain Adam(W) step),
    or build the groups with :func:`largebatch.optim.param_groups`.

    Args:
        params: parameters or parameter groups (see :func:`largebatch.optim.param_groups`); a group may set
            ``adapt=False`` to use the plain Adam(W) step (ratio 1) and its own ``weight_decay``.
        lr: η. betas: (β1, β2). eps: ε, added outside the square root.
        weight_decay: λ. weight_decay_mode: ``"adam_update"`` (paper: inside the ratio) or ``"decoupled"``.
        bias_correction: divide the moments by (1 − β^t) (Algorithm 2 does; the authors' TF code did not).
        weight_norm_bounds: φ = clip(‖x‖, γ_l, γ_u); None is the identity.
        ratio_bounds: clamp of the trust ratio. lambc: cap it at 1, i.e. ``ratio_bounds=(None, 1)`` (LAMBC).
        grad_pre_normalization: NVLAMB's bound on the global gradient norm; None (default) is off.
        foreach: multi-tensor path (default) or one parameter at a time (``False``); same numbers.
        fused: the fused kernels (CPU: one cache-blocked C++ call per step; CUDA: three Triton launches per bucket);
            None (default) uses them when they can be built. Their ``layer_stats()`` carry ‖g‖ as well.
    """

    option_defaults = {
        "adapt": True, "weight_decay_mode": "adam_update", "bias_correction": True,
        "weight_norm_bounds": None, "ratio_bounds": None,
    }

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        *,
        weight_decay_mode: WeightDecayMode = "adam_update",
        bias_correction: bool = True,
        weight_norm_bounds: Bounds | None = None,
        ratio_bounds: Bounds | None = None,
        lambc: bool = False,
        grad_pre_normalization: float | None = None,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        if lr < 0:
            raise ValueError(f"LAMB: lr must be >= 0, got {lr}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"LAMB: betas must lie in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"LAMB: eps and weight_decay must be >= 0, got eps={eps}, weight_decay={weight_decay}")
        if weight_decay_mode not in ("adam_update", "decoupled"):
            raise ValueError(f"LAMB: weight_decay_mode must be 'adam_update' or 'decoupled', got {weight_decay_mode!r}")
        if grad_pre_normalization is not None and grad_pre_normalization <= 0:
            raise ValueError(f"LAMB: grad_pre_normalization must be > 0 or None, got {grad_pre_normalization}")
        if lambc:
            low = None if ratio_bounds is None else ratio_bounds[0]
            high = 1.0 if ratio_bounds is None or ratio_bounds[1] is None else min(1.0, ratio_bounds[1])
            ratio_bounds = (low, high)
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, weight_decay_mode=weight_decay_mode,
            bias_correction=bias_correction, weight_norm_bounds=weight_norm_bounds, ratio_bounds=ratio_bounds,
        )
        super().__init__(params, defaults, foreach=foreach, fused=fused)
        self.grad_pre_normalization = grad_pre_normalization
        self._grad_scale: Tensor | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("grad_pre_normalization", None)
        self.__dict__.setdefault("_grad_scale", None)

    def _init_state(self, param: Tensor) -> dict[str, Any]:
        return {
            "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
        }

    def _prepare(self) -> None:
        """NVLAMB: one global gradient norm over every parameter, as a device tensor (no host sync)."""
        self._grad_scale = None
        if self.grad_pre_normalization is None:
            return
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        devices = {gr.device for gr in grads}
        device = grads[0].device
        ops = ListOps(self.foreach)
        per_device = [ops.norms([gr for gr in grads if gr.device == d]).to(device) for d in devices]
        global_norm = torch.linalg.vector_norm(torch.cat(per_device))
        self._grad_scale = 1.0 / torch.clamp(global_norm / self.grad_pre_normalization, min=1.0)

    def _update(self, group: dict[str, Any], bucket: Bucket, ops: ListOps) -> LayerStats:
        beta1, beta2 = group["betas"]
        lr, wd, t = group["lr"], group["weight_decay"], bucket.step
        # r = (m / bc1) / (sqrt(v / bc2) + eps) = c·r' with r' = m / (sqrt(v) + eps·sqrt(bc2)), c = sqrt(bc2) / bc1.
        # Both paths work with u' = r' + (λ/c)·x = u / c: c moves into the norm and the step instead of a pass.
        bc1, bc2 = (1.0 - beta1**t, 1.0 - beta2**t) if group["bias_correction"] else (1.0, 1.0)
        c = math.sqrt(bc2) / bc1
        eps_hat = group["eps"] * math.sqrt(bc2)
        decoupled = group["weight_decay_mode"] == "decoupled"
        wd_in_update = wd / c if wd != 0 and not decoupled else 0.0
        decay = 1.0 - lr * wd if wd != 0 and decoupled else 1.0  # x ← (1 − ηλ)·x before the step (decoupled)
        params, exp_avgs, exp_avg_sqs = bucket.params, bucket.state_list("exp_avg"), bucket.state_list("exp_avg_sq")
        grad_scale = None if self._grad_scale is None else self._grad_scale.to(params[0].device)

        kernels = self._triton(bucket) or self._kernels(bucket)  # Triton (CUDA) and C++ (CPU) share one interface
        stats = None if kernels is None else kernels.lamb_step(
            params, bucket.grads, exp_avgs, exp_avg_sqs, grad_scale, beta1, beta2, eps_hat, wd_in_update, c, lr, decay,
            group["adapt"], group["weight_norm_bounds"], group["ratio_bounds"])
        if stats is not None:  # fused: moments, norms, trust ratios (as _ratio) and the step
            weight_norm, update_norm, ratio, layer_lr, grad_norm = stats.unbind()
            return LayerStats(bucket.names, weight_norm, update_norm, ratio, layer_lr, grad_norm)

        update = self._work_buffers(params)
        grads: list[Tensor] = bucket.grads
        if grad_scale is not None:  # NVLAMB: the scaled gradient borrows the update buffer until r needs it
            ops.copy_(update, grads)
            ops.mul_(update, [grad_scale] * len(update))
            grads = update

        ops.lerp_(exp_avgs, grads, 1.0 - beta1)
        ops.mul_(exp_avg_sqs, beta2)
        ops.addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2)

        ops.copy_(update, exp_avg_sqs)
        ops.sqrt_(update)
        ops.add_scalar_(update, eps_hat)
        ops.reciprocal_(update)
        ops.mul_(update, exp_avgs)
        if wd_in_update != 0:
            ops.add_(update, params, alpha=wd_in_update)

        weight_norm = ops.norms(params)
        update_norm = c * ops.norms(update)
        ratio = self._ratio(group, weight_norm, update_norm)
        if decay != 1.0:
            ops.mul_(params, decay)
        ops.addcmul_(params, update, list((-lr * c * ratio).to(params[0].dtype).unbind()))  # x −= η·ratio·c·u'
        return LayerStats(bucket.names, weight_norm, update_norm, ratio, lr * ratio)

    @staticmethod
    def _ratio(group: dict[str, Any], weight_norm: Tensor, update_norm: Tensor) -> Tensor:
        """φ(‖x‖)/‖u‖ per layer (clamped as configured); 1 in groups with ``adapt=False``.

        The fused kernel applies the same rule in C++ (``TrustRule`` in ``_fused_cpu.cpp``).
        """
        if not group["adapt"]:
            return torch.ones_like(weight_norm)
        return trust_ratio(
            weight_norm, update_norm,
            weight_norm_bounds=group["weight_norm_bounds"], ratio_bounds=group["ratio_bounds"],
        )
