"""Shared machinery of the layer-wise optimizers: parameter buckets, per-parameter state, last-step statistics."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import Tensor

from largebatch.optim import _fused_cpu
from largebatch.optim._lists import ListOps
from largebatch.optim.trust_ratio import LayerStats

# Device types whose buckets take the Triton kernels (tests add "cpu" to run them under Triton's interpreter).
TRITON_DEVICES = frozenset({"cuda"})


@functools.cache
def _triton_module() -> ModuleType | None:
    """:mod:`largebatch.optim._fused_triton`, or None (after one warning) where Triton cannot be imported."""
    try:
        from largebatch.optim import _fused_triton
    except ImportError as exc:
        warnings.warn(f"largebatch: Triton is not importable ({exc}); LARS/LAMB on the GPU use the multi-tensor path",
                      RuntimeWarning, stacklevel=3)
        return None
    return _fused_triton


@dataclass
class Bucket:
    """Parameters of one group that share device, dtype and step count: one multi-tensor call each."""

    params: list[Tensor]
    grads: list[Tensor]
    states: list[dict[str, Any]]
    names: list[str]
    step: int

    def state_list(self, key: str) -> list[Tensor]:
        return [s[key] for s in self.states]


@dataclass
class _Plan:
    """How one group's parameters fell into buckets at the last step, to repeat while it still holds: the same
    parameter objects, the same ``state`` mapping, gradients on exactly the same parameters."""

    param_ids: tuple[int, ...]
    has_grad: tuple[bool, ...]
    state: Any
    state_size: int  # len(state): a cleared state (``optimizer.state.clear()``) is not the one planned for
    buckets: list[Bucket]
    indices: list[list[int]]

    @classmethod
    def of(cls, params: list[Tensor], grads: list[Tensor | None], state: Any, buckets: list[Bucket],
           indices: list[list[int]]) -> _Plan:
        return cls(tuple(map(id, params)), tuple(g is not None for g in grads), state, len(state), buckets, indices)

    def fits(self, params: list[Tensor], grads: list[Tensor | None], state: Any) -> bool:
        return (state is self.state and len(state) == self.state_size
                and tuple(g is not None for g in grads) == self.has_grad and tuple(map(id, params)) == self.param_ids)

    def next_buckets(self, grads: list[Tensor | None]) -> list[Bucket]:
        """This step's buckets: the step counters advanced, this step's gradients (the lists of parameters,
        states and names are shared with the previous step's buckets)."""
        out = []
        for bucket, indices in zip(self.buckets, self.indices):
            bucket_grads = [grads[i] for i in indices]
            for state in bucket.states:
                state["step"] += 1
            out.append(Bucket(bucket.params, bucket_grads, bucket.states, bucket.names,  # type: ignore[arg-type]
                              bucket.states[0]["step"]))
        return out


class LayerwiseOptimizer(torch.optim.Optimizer):
    """Base of LARS and LAMB. Subclasses implement :meth:`_init_state` and :meth:`_update`.

    Every parameter group carries ``adapt`` (apply the trust ratio) and ``weight_decay`` independently, so
    excluding a layer from weight decay never switches its adaptation off (unlike timm, Bolts and
    torch-optimizer, which skip adaptation wherever weight decay is 0).

    Four paths give the same numbers (to float rounding; :mod:`largebatch.optim.reference` is the oracle of the
    tests): ``foreach=False`` one parameter at a time, the multi-tensor path, the fused CPU kernels
    (:mod:`largebatch.optim._fused_cpu`) for float32 contiguous CPU parameters, and the fused Triton kernels
    (:mod:`largebatch.optim._fused_triton`) for float32/bf16/fp16 contiguous CUDA parameters. ``fused=None``
    (default) uses the fused kernels where they can be built (Triton importable, a C++ compiler), ``fused=True``
    asks for them and ``fused=False`` turns them off. Everything the kernels do not take (other dtypes and
    devices, non-contiguous tensors, a failed build) runs on the multi-tensor path.

    ``option_defaults`` holds every group option a subclass reads, with the value that gives the algorithm as
    it was before the option existed: :meth:`__setstate__` (which ``load_state_dict`` and unpickling call) fills
    them into groups of older checkpoints that lack them.
    """

    option_defaults: ClassVar[dict[str, Any]] = {"adapt": True}

    def __init__(
        self, params: Iterable[Any], defaults: dict[str, Any], *, foreach: bool | None, fused: bool | None
    ) -> None:
        if fused and foreach is False:
            raise ValueError(f"{type(self).__name__}: fused=True and foreach=False exclude each other")
        defaults.setdefault("adapt", True)
        super().__init__(params, defaults)
        self.foreach = True if foreach is None else bool(foreach)
        self.fused = fused is not False and self.foreach
        self._stats: list[LayerStats] = []
        self._work: dict[int, Tensor] = {}
        self._triton_kernels: Any = None  # TritonKernels once a bucket on a TRITON_DEVICES device asked for them
        self._plans: dict[int, _Plan] = {}  # per group index: its buckets at the last step (see _buckets)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled optimizer or a loaded state dict, filling options that older versions did not save."""
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.option_defaults.items():
                group.setdefault(key, value)
        self.__dict__.setdefault("foreach", True)
        self.__dict__.setdefault("fused", self.foreach)
        self.__dict__.setdefault("_stats", [])
        self.__dict__.setdefault("_work", {})
        self.__dict__.setdefault("_triton_kernels", None)
        self.__dict__["_plans"] = {}

    def _work_buffers(self, params: list[Tensor]) -> list[Tensor]:
        """One scratch tensor like each parameter, reused every step and kept out of the ``state_dict``.

        Its content does not survive a step, so resuming needs nothing from it; keeping it saves a full-size
        allocation (and the page faults of touching fresh memory) per step.
        """
        buffers = []
        for p in params:
            buffer = self._work.get(id(p))
            if buffer is None or buffer.shape != p.shape or buffer.dtype != p.dtype or buffer.device != p.device:
                buffer = self._work[id(p)] = torch.empty_like(p, memory_format=torch.preserve_format)
            buffers.append(buffer)
        return buffers

    def _kernels(self, bucket: Bucket) -> ModuleType | None:
        """The fused CPU kernels when this bucket may use them (float32 on CPU, fused not off), else None.

        The kernels still decline (return None from ``lamb_step`` or ``lars_norms``) lists with non-contiguous
        tensors.
        """
        param = bucket.params[0]
        if not self.fused or param.device.type != "cpu" or param.dtype != torch.float32:
            return None
        return _fused_cpu.kernels()

    def _triton(self, bucket: Bucket) -> Any:
        """The optimizer's :class:`~largebatch.optim._fused_triton.TritonKernels` when this bucket may use them
        (on a ``TRITON_DEVICES`` device, fused not off, Triton importable), else None.

        They still decline (return None from their first pass) lists of other dtypes or non-contiguous tensors.
        """
        if not self.fused or bucket.params[0].device.type not in TRITON_DEVICES:
            return None
        if self._triton_kernels is None:
            module = _triton_module()
            self._triton_kernels = False if module is None else module.TritonKernels()
        return self._triton_kernels or None

    def _init_state(self, param: Tensor) -> dict[str, Any]:
        raise NotImplementedError

    def _update(self, group: dict[str, Any], bucket: Bucket, ops: ListOps) -> LayerStats:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Hook run once per step before the groups are updated (e.g. a global gradient norm)."""

    def _buckets(self, group_index: int, group: dict[str, Any]) -> list[Bucket]:
        """The group's parameters that have gradients, as buckets of one device, dtype and step count.

        The grouping is remembered (:class:`_Plan`) and reused while the group's parameters, the optimizer's
        state (``load_state_dict`` replaces it) and which parameters have gradients stay the same: then a step
        costs one pass over the gradients and the step counters, not a dictionary walk per parameter (~50 µs of
        host time per step for ResNet-18's 62 tensors, as much as the kernels' own launches)."""
        params = group["params"]
        grads = [p.grad for p in params]
        plan = self._plans.get(group_index)
        if any(g is not None and g.is_sparse for g in grads):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        if plan is not None and plan.fits(params, grads, self.state):
            return plan.next_buckets(grads)
        buckets: dict[tuple[torch.device, torch.dtype, int], Bucket] = {}
        names = group.get("param_names") or [f"group{group_index}.param{i}" for i in range(len(params))]
        indices: dict[tuple[torch.device, torch.dtype, int], list[int]] = {}
        for index, (p, grad, name) in enumerate(zip(params, grads, names)):
            if grad is None:
                continue
            state = self.state[p]
            if not state:
                state.update(self._init_state(p))
                state["step"] = 0
            state["step"] += 1
            key = (p.device, p.dtype, state["step"])
            if key not in buckets:
                buckets[key], indices[key] = Bucket([], [], [], [], state["step"]), []
            bucket = buckets[key]
            bucket.params.append(p)
            bucket.grads.append(grad)
            bucket.states.append(state)
            bucket.names.append(name)
            indices[key].append(index)
        self._plans[group_index] = _Plan.of(params, grads, self.state, list(buckets.values()), list(indices.values()))
        return list(buckets.values())

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        ops = ListOps(self.foreach)
        self._prepare()
        stats = []
        for index, group in enumerate(self.param_groups):
            for bucket in self._buckets(index, group):
                stats.append(self._update(group, bucket, ops))
        self._stats = stats
        return loss

    def layer_stats(self) -> LayerStats:
        """Per-layer ‖w‖, ‖g‖, ‖update‖, trust ratio and effective lr of the last step, as device tensors.

        ‖g‖ (``grad_norm``) is there for LARS always and for LAMB where its fused kernel ran, else None.

        Computed by the step itself, so reading them costs nothing but the concatenation here.
        """
        return LayerStats.concat(self._stats)

    def bucket_stats(self) -> list[LayerStats]:
        """:meth:`layer_stats` before the concatenation: one entry per parameter bucket, as the step computed them
        (fresh tensors every step, so they may be kept): for readers that join many steps at once."""
        return list(self._stats)

