"""Tensor-list arithmetic with two back ends: multi-tensor (`torch._foreach_*`) or one tensor at a time.

LARS and LAMB write their algorithm once against :class:`ListOps`; ``foreach=True`` runs every line as one
multi-tensor call per parameter bucket, ``foreach=False`` runs the very same arithmetic per parameter. Only
the norms differ in reduction order, so the two paths agree to float rounding (tests check this).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Tensors = Sequence[Tensor]


class ListOps:
    """Element-wise ops over lists of tensors; ``scale`` arguments may be a float or a list of 0-dim tensors."""

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

    def add(self, xs: Tensors, ys: Tensors, alpha: float = 1.0) -> list[Tensor]:
        """New tensors x + alpha·y (inputs untouched)."""
        if self.foreach:
            return list(torch._foreach_add(xs, ys, alpha=alpha))
        return [torch.add(x, y, alpha=alpha) for x, y in zip(xs, ys)]

    def add_(self, xs: Tensors, ys: Tensors, alpha: float = 1.0) -> None:
        """x += alpha·y in place."""
        if self.foreach:
            torch._foreach_add_(xs, ys, alpha=alpha)
        else:
            for x, y in zip(xs, ys):
                x.add_(y, alpha=alpha)

    def add_scalar_(self, xs: Tensors, value: float) -> None:
        """x += value in place."""
        if self.foreach:
            torch._foreach_add_(xs, value)
        else:
            for x in xs:
                x.add_(value)

    def mul_(self, xs: Tensors, scale: float | Tensors) -> None:
        """x *= scale in place; scale is one float or one 0-dim tensor per x."""
        if self.foreach:
            torch._foreach_mul_(xs, scale)
        elif isinstance(scale, float | int):
            for x in xs:
                x.mul_(scale)
        else:
            for x, s in zip(xs, scale):
                x.mul_(s)

    def lerp_(self, xs: Tensors, ys: Tensors, weight: float) -> None:
        """x += weight·(y − x) in place (an exponential moving average)."""
        if self.foreach:
            torch._foreach_lerp_(xs, ys, weight)
        else:
            for x, y in zip(xs, ys):
                x.lerp_(y, weight)

    def addcmul_(self, xs: Tensors, ys: Tensors, zs: Tensors, value: float) -> None:
        """x += value·y·z in place."""
        if self.foreach:
            torch._foreach_addcmul_(xs, ys, zs, value=value)
        else:
            for x, y, z in zip(xs, ys, zs):
                x.addcmul_(y, z, value=value)

    def sqrt(self, xs: Tensors) -> list[Tensor]:
        """New tensors √x."""
        if self.foreach:
            return list(torch._foreach_sqrt(xs))
        return [torch.sqrt(x) for x in xs]

    def div_(self, xs: Tensors, ys: Tensors) -> None:
        """x /= y in place."""
        if self.foreach:
            torch._foreach_div_(xs, ys)
        else:
            for x, y in zip(xs, ys):
                x.div_(y)

    def div(self, xs: Tensors, ys: Tensors) -> list[Tensor]:
        """New tensors x / y."""
        if self.foreach:
            return list(torch._foreach_div(xs, ys))
        return [torch.div(x, y) for x, y in zip(xs, ys)]

    def mul(self, xs: Tensors, scale: float | Tensor) -> list[Tensor]:
        """New tensors scale·x; scale is a float or one 0-dim tensor shared by all."""
        if self.foreach:
            return list(torch._foreach_mul(xs, scale))
        return [torch.mul(x, scale) for x in xs]
