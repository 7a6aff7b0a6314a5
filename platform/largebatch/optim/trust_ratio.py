"""The one piece LARS and LAMB share: the layer-wise trust ratio and the statistics it produces.

Both papers rescale each layer's step by how large the weights are compared with the step direction:

* LARS (You et al. 2017, arXiv:1708.03888, eq. 6 / Algorithm 1): λ_l = η·‖w_l‖ / (‖∇L(w_l)‖ + β‖w_l‖)
* LAMB (You et al. 2019, arXiv:1904.00962, Algorithm 2):         λ_l = φ(‖x_l‖) / ‖r_l + λx_l‖

:func:`trust_ratio` computes ``coefficient·φ(‖w‖) / (‖u‖ + eps)`` for a whole bucket of layers at once from
stacked norm vectors (tensor ops only: no ``.item()``, no host synchronisation) and returns 1 wherever ‖w‖ or
‖u‖ is 0, so a zero-initialised bias still learns (a bug of several public implementations). The fused CPU
LAMB step applies the same rule in C++ (``TrustRule`` in ``_fused_cpu.cpp``); tests keep the two in agreement.

The two published clips are different rules, so they have different option names:

* LARS ``trust_clip`` (LARC, NVIDIA apex): λ_l ← min(λ_l / γ_t, 1), i.e. the layer's rate γ_t·λ_l = min(λ_l, γ_t):
  the bound is the global learning rate, and it binds more as γ_t grows (during warm-up it may not bind at all).
* LAMB ``lambc`` (LAMBC): ratio ← min(ratio, 1), i.e. the layer's rate η_t·min(ratio, 1) ≤ η_t whatever η_t is;
  it is :func:`trust_ratio` with ``ratio_bounds=(None, 1)``.

They agree only at γ_t = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

Bounds = tuple[float | None, float | None]


def trust_ratio(
    weight_norm: Tensor,
    update_norm: Tensor,
    *,
    coefficient: float = 1.0,
    eps: float = 0.0,
    weight_norm_bounds: Bounds | None = None,
    ratio_bounds: Bounds | None = None,
) -> Tensor:
    """Layer-wise trust ratio ``coefficient·φ(‖w‖)/(‖u‖ + eps)`` for vectors of per-layer norms.

    Args:
        weight_norm: ‖w_l‖ per layer (any shape; element-wise).
        update_norm: the norm the ratio divides by (LARS: ‖g‖ + β‖w‖ or ‖g + βw‖; LAMB: ‖r + λw‖).
        coefficient: η of LARS (1 for LAMB).
        eps: added to the denominator.
        weight_norm_bounds: φ of LAMB Algorithm 2, ``clip(‖w‖, γ_l, γ_u)`` applied to the weight norm.
        ratio_bounds: clamp of the ratio itself (e.g. ``(None, 1.0)`` for LAMBC, ``(0.01, 10)`` for DeepSpeed).

    Returns:
        The ratio, 1 where ‖w‖ = 0 or ‖u‖ = 0 (before any clamp, measured on the raw norms).
    """
    scaled_norm = weight_norm if weight_norm_bounds is None else weight_norm.clamp(*weight_norm_bounds)
    ratio = coefficient * scaled_norm / (update_norm + eps)
    ratio = torch.where((weight_norm > 0) & (update_norm > 0), ratio, torch.ones_like(ratio))
    if ratio_bounds is not None:
        ratio = ratio.clamp(*ratio_bounds)
    return ratio


@dataclass(frozen=True)
class LayerStats:
    """Per-layer statistics of the optimizer's last step, one entry per parameter (device tensors, float32 or wider).

    ``names`` come from the group's ``param_names`` (torch's named-parameter groups, which
    :func:`largebatch.optim.param_groups` fills in), else ``group{i}.param{j}``.
    ``update_norm`` is the norm the trust ratio divided by (see :func:`trust_ratio`); ``lr`` is the effective
    per-layer learning rate ``lr·ratio``; ``grad_norm`` is ‖p.grad‖ (before any NVLAMB scaling), given by LARS
    always and by LAMB where its fused CPU pass computed it for free; None where it was not computed (the eager
    LAMB paths) and, after :meth:`concat`, where any part lacks it.
    """

    names: list[str]
    weight_norm: Tensor
    update_norm: Tensor
    trust_ratio: Tensor
    lr: Tensor
    grad_norm: Tensor | None = None

    @staticmethod
    def concat(parts: list[LayerStats]) -> LayerStats:
        """Join the statistics of several buckets (moved to the first bucket's device)."""
        if not parts:
            empty = torch.empty(0)
            return LayerStats([], empty, empty, empty, empty, None)
        device = parts[0].weight_norm.device

        def cat(name: str) -> Tensor:
            return torch.cat([getattr(p, name).to(device) for p in parts])

        has_grad = all(p.grad_norm is not None for p in parts)
        return LayerStats(
            names=[n for p in parts for n in p.names],
            weight_norm=cat("weight_norm"),
            update_norm=cat("update_norm"),
            trust_ratio=cat("trust_ratio"),
            lr=cat("lr"),
            grad_norm=cat("grad_norm") if has_grad else None,
        )
