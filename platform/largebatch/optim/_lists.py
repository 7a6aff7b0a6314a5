"""Tensor-list arithmetic with two back ends: multi-tensor (`torch._foreach_*`) or one tensor at a time.

LARS and LAMB write their algorithm once against :class:`ListOps`; ``foreach=True`` runs every line as one
multi-tensor call per parameter bucket, ``foreach=False`` runs the very same arithmetic per parameter. Only
the norms differ in reduction order, so the two paths agree to float rounding (tests check this).

Every op but :meth:`ListOps.norms` works in place: an optimizer step streams the whole model once per op, so
the algorithms keep their intermediates in persistent buffers and fold scalars into as few ops as possible
(a fresh full-size temporary per step also costs page faults on CPU once the allocator has returned it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Tensors = Sequence[Tensor]


class ListOps:
    """In-place element-wise ops over lists of tensors; ``scale`` may be a float or one 0-dim tensor per x."""

    def __init__(self, foreach: bool) -> None:
        self.foreach = foreach

    def norms(self, xs: Tensors) -> Tensor:
        """L2 norm of each tensor, stacked into one vector (one reduction call when foreach).

        Half-precision tensors are reduced in float32; others in their own dtype.
        """
        if not xs:
            return torch.empty(0)
        dtype = torch.float32 if xs[0].dtype in (torch.float16, torch.bfloat16) else None
        if self.foreach:
            return torch.stack(torch._foreach_norm(xs, 2, dtype=dtype))
        return torch.stack([torch.linalg.vector_norm(x, dtype=dtype) for x in xs])

    def copy_(self, xs: Tensors, ys: Tensors) -> None:
        """x ← y."""
        if self.foreach:
            torch._foreach_copy_(xs, ys)
        else:
            for x, y in zip(xs, ys):
                x.copy_(y)

    def add_(self, xs: Tensors, ys: Tensors, alpha: float = 1.0) -> None:
        """x += alpha·y."""
        if self.foreach:
            torch._foreach_add_(xs, ys, alpha=alpha)
        else:
            for x, y in zip(xs, ys):
                x.add_(y, alpha=alpha)

    def add_scalar_(self, xs: Tensors, value: float) -> None:
        """x += value."""
        if self.foreach:
            torch._foreach_add_(xs, value)
        else:
            for x in xs:
                x.add_(value)

    def mul_(self, xs: Tensors, scale: float | Tensors) -> None:
        """x *= scale: one float, or one tensor per x (0-dim or shaped like x)."""
        if self.foreach:
            torch._foreach_mul_(xs, scale)
        elif isinstance(scale, float | int):
            for x in xs:
                x.mul_(scale)
        else:
            for x, s in zip(xs, scale):
                x.mul_(s)

    def lerp_(self, xs: Tensors, ys: Tensors, weight: float) -> None:
        """x += weight·(y − x) (an exponential moving average)."""
        if self.foreach:
            torch._foreach_lerp_(xs, ys, weight)
        else:
            for x, y in zip(xs, ys):
                x.lerp_(y, weight)

    def addcmul_(self, xs: Tensors, ys: Tensors, zs: Tensors, value: float = 1.0) -> None:
        """x += value·y·z; a z may be a 0-dim tensor (a per-tensor scale that stays on the device)."""
        if self.foreach:
            torch._foreach_addcmul_(xs, ys, zs, value=value)
        else:
            for x, y, z in zip(xs, ys, zs):
                x.addcmul_(y, z, value=value)

    def sqrt_(self, xs: Tensors) -> None:
        """x ← √x."""
        if self.foreach:
            torch._foreach_sqrt_(xs)
        else:
            for x in xs:
                x.sqrt_()

    def reciprocal_(self, xs: Tensors) -> None:
        """x ← 1/x."""
        if self.foreach:
            torch._foreach_reciprocal_(xs)
        else:
            for x in xs:
                x.reciprocal_()
