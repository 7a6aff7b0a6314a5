"""Sharpness as the top Hessian eigenvalue of the training loss (the proxy used since Keskar et al. 2017).

Power iteration on Hessian-vector products (Pearlmutter 1994: Hv = ∇(∇L·v), one double backward each), as in
PyHessian: v ← Hv/‖Hv‖ until the Rayleigh quotient vᵀHv changes by less than ``tol`` relatively. Power
iteration converges to the eigenvalue of largest *magnitude*; near a minimum that is the top one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Eigenvalue:
    value: float
    iterations: int
    converged: bool


def hessian_vector_product(loss: Tensor, params: Sequence[Tensor], vector: Sequence[Tensor]) -> list[Tensor]:
    """H·v for the Hessian of ``loss`` w.r.t. ``params`` (``loss`` built with a graph that allows double backward)."""
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vector))
    return list(torch.autograd.grad(dot, params))


def top_hessian_eigenvalue(
    loss_fn: Callable[[], Tensor],
    params: Sequence[Tensor],
    *,
    max_iterations: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
) -> Eigenvalue:
    """Largest-magnitude Hessian eigenvalue of ``loss_fn()`` at ``params`` by power iteration (relative ``tol``)."""
    generator = torch.Generator().manual_seed(seed)
    vector = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    norm = torch.sqrt(sum((v * v).sum() for v in vector))
    vector = [v / norm for v in vector]
    previous = None
    for iteration in range(1, max_iterations + 1):
        hv = hessian_vector_product(loss_fn(), params, vector)
        value = float(sum((h * v).sum() for h, v in zip(hv, vector)))
        norm = torch.sqrt(sum((h * h).sum() for h in hv))
        if norm == 0:
            return Eigenvalue(0.0, iteration, True)
        vector = [h / norm for h in hv]
        if previous is not None and abs(value - previous) <= tol * (abs(previous) + 1e-12):
            return Eigenvalue(value, iteration, True)
        previous = value
    return Eigenvalue(float(previous), max_iterations, False)
