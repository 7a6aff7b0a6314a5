"""Fused multi-tensor LAMB and LARS steps in Triton (the CUDA path; Triton's interpreter runs them on the CPU in tests).

A parameter bucket (tensors of one dtype on one device) is cut into blocks of ``BLOCK`` elements, each block
belonging to one tensor; a table of per-tensor addresses and a block→(tensor, start) table, built once per bucket
and cached, let one launch cover every tensor of the bucket (the design of apex's multi_tensor_apply, with a
table instead of fixed-size argument chunks). Per step:

* LAMB (You et al. 2019, Algorithm 2): ``lamb_moments`` updates m and v and writes each block's Σx², Σu'², Σg²
  (u' = m/(√v + ε̂) + (λ/c)·x, the direction of :class:`~largebatch.optim.LAMB` before the factor c); a second
  small kernel sums each tensor's blocks in a fixed order (deterministic, no atomics) and takes the square roots;
  the optimizer turns the norms into trust ratios with :func:`~largebatch.optim.trust_ratio.trust_ratio`
  (tensor ops on the device); ``lamb_apply`` recomputes u' from the stored m, v and writes x ← decay·x + s_l·u'.
  Reads x, g, m, v and writes m, v in pass 1, reads x, m, v and writes x in pass 2: 10 values per parameter,
  no scratch buffer.
* LARS (You et al. 2017, Algorithm 1): ``lars_norms`` (Σw², Σg², and Σ(g + βw)² for the "update" denominator),
  then ``lars_apply`` with the per-layer coefficients the optimizer computed on the device: the interface of
  the fused CPU kernels, so :class:`~largebatch.optim.LARS` calls both back ends alike.

Arithmetic is float32 whatever the parameter dtype (bf16/fp16 parameters, moments and buffers are read, widened,
and rounded once on store), and norms are float32. Nothing waits for the device: scalars are kernel arguments,
per-layer values stay in device tensors, and address tables go to the device by non-blocking copies from pinned
memory (only when an address changed, e.g. fresh ``.grad`` tensors after ``zero_grad(set_to_none=True)``), so a
step can be captured in a CUDA graph once its tables exist (the captured scalars — lr, bias corrections — are
those of the captured step).

Importing this module imports Triton; :mod:`largebatch.optim.base` imports it only for buckets on a device in
``TRITON_DEVICES`` and falls back to the multi-tensor path when Triton is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK = 2048  # elements per program on the GPU
REDUCE_BLOCK = 256  # block partial sums one program of the segment reduction adds per iteration
DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


@triton.jit
def _lamb_moments_kernel(block_tensor, block_start, sizes, x_table, g_table, m_table, v_table, grad_scale, partials,
                         num_blocks, beta1, one_minus_beta1, beta2, one_minus_beta2, eps_hat, wd_u,
                         DTYPE: tl.constexpr, HAS_SCALE: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    t = tl.load(block_tensor + b)
    offs = tl.load(block_start + b) + tl.arange(0, BLOCK)
    mask = offs < tl.load(sizes + t)
    x_ptr = tl.load(x_table + t).to(tl.pointer_type(DTYPE))
    g_ptr = tl.load(g_table + t).to(tl.pointer_type(DTYPE))
    m_ptr = tl.load(m_table + t).to(tl.pointer_type(DTYPE))
    v_ptr = tl.load(v_table + t).to(tl.pointer_type(DTYPE))
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    raw = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g = raw * tl.load(grad_scale) if HAS_SCALE else raw
    # 1 − β comes from the host (float64, then rounded): 1 − fp32(0.999) would be 1.3e-5 off, and so would v
    m = (beta1 * tl.load(m_ptr + offs, mask=mask, other=0.0).to(tl.float32) + one_minus_beta1 * g).to(DTYPE)
    v = (beta2 * tl.load(v_ptr + offs, mask=mask, other=0.0).to(tl.float32) + one_minus_beta2 * g * g).to(DTYPE)
    tl.store(m_ptr + offs, m, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)
    u = m.to(tl.float32) / (tl.sqrt(v.to(tl.float32)) + eps_hat) + wd_u * x  # from the stored m, v, as pass 2
    u = tl.where(mask, u, 0.0)
    tl.store(partials + b, tl.sum(x * x, axis=0))
    tl.store(partials + num_blocks + b, tl.sum(u * u, axis=0))
    tl.store(partials + 2 * num_blocks + b, tl.sum(raw * raw, axis=0))


@triton.jit
def _lamb_apply_kernel(block_tensor, block_start, sizes, x_table, m_table, v_table, step_scale, eps_hat, wd_u, decay,
                       DTYPE: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    t = tl.load(block_tensor + b)
    offs = tl.load(block_start + b) + tl.arange(0, BLOCK)
    mask = offs < tl.load(sizes + t)
    x_ptr = tl.load(x_table + t).to(tl.pointer_type(DTYPE))
    m = tl.load(tl.load(m_table + t).to(tl.pointer_type(DTYPE)) + offs, mask=mask, other=0.0).to(tl.float32)
    v = tl.load(tl.load(v_table + t).to(tl.pointer_type(DTYPE)) + offs, mask=mask, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    u = m / (tl.sqrt(v) + eps_hat) + wd_u * x
    tl.store(x_ptr + offs, (decay * x + tl.load(step_scale + t) * u).to(DTYPE), mask=mask)


@triton.jit
def _lars_norms_kernel(block_tensor, block_start, sizes, w_table, g_table, partials, num_blocks, wd,
                       DIRECTION: tl.constexpr, DTYPE: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    t = tl.load(block_tensor + b)
    offs = tl.load(block_start + b) + tl.arange(0, BLOCK)
    mask = offs < tl.load(sizes + t)
    w = tl.load(tl.load(w_table + t).to(tl.pointer_type(DTYPE)) + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(tl.load(g_table + t).to(tl.pointer_type(DTYPE)) + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(partials + b, tl.sum(w * w, axis=0))
    tl.store(partials + num_blocks + b, tl.sum(g * g, axis=0))
    if DIRECTION:
        d = g + wd * w
        tl.store(partials + 2 * num_blocks + b, tl.sum(d * d, axis=0))


@triton.jit
def _lars_apply_kernel(block_tensor, block_start, sizes, w_table, g_table, b_table, coefficients, num_tensors, wd, mu,
                       buffer_step, HAS_BUFFERS: tl.constexpr, DTYPE: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    t = tl.load(block_tensor + b)
    offs = tl.load(block_start + b) + tl.arange(0, BLOCK)
    mask = offs < tl.load(sizes + t)
    w_ptr = tl.load(w_table + t).to(tl.pointer_type(DTYPE))
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(tl.load(g_table + t).to(tl.pointer_type(DTYPE)) + offs, mask=mask, other=0.0).to(tl.float32)
    d = g + wd * w
    direct = tl.load(coefficients + num_tensors + t)
    if HAS_BUFFERS:  # v ← μ·v + a·d; w ← w − direct·d − buffer_step·v
        b_ptr = tl.load(b_table + t).to(tl.pointer_type(DTYPE))
        v = (mu * tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32) + tl.load(coefficients + t) * d)
        v = v.to(DTYPE)
        tl.store(b_ptr + offs, v, mask=mask)
        w = w - direct * d - buffer_step * v.to(tl.float32)
    else:
        w = w - direct * d
    tl.store(w_ptr + offs, w.to(DTYPE), mask=mask)


@triton.jit
def _segment_norms_kernel(partials, first_block, out, num_blocks, num_tensors, RBLOCK: tl.constexpr):
    """out[k, t] = sqrt(Σ partials[k, first_block[t]:first_block[t + 1]]), summed in a fixed order."""
    t = tl.program_id(0)
    k = tl.program_id(1)
    lo = tl.load(first_block + t)
    hi = tl.load(first_block + t + 1)
    acc = tl.zeros([RBLOCK], dtype=tl.float32)
    for start in range(lo, hi, RBLOCK):
        offs = start + tl.arange(0, RBLOCK)
        acc += tl.load(partials + k * num_blocks + offs, mask=offs < hi, other=0.0)
    tl.store(out + k * num_tensors + t, tl.sqrt(tl.sum(acc, axis=0)))


def _on_device(values: Sequence[int] | Tensor, device: torch.device) -> Tensor:
    """An int64 host vector on ``device`` without a host sync (pinned memory, non-blocking copy on CUDA)."""
    host = torch.as_tensor(values, dtype=torch.int64)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def _fusable(tensors: Sequence[Tensor], params: Sequence[Tensor]) -> bool:
    """Every tensor contiguous, of the parameters' dtype (one Triton handles) and sizes."""
    dtype = params[0].dtype
    return dtype in DTYPES and len(tensors) == len(params) and all(
        t.is_contiguous() and t.dtype == dtype and t.numel() == p.numel() for t, p in zip(tensors, params))


class _Addresses:
    """A device table of tensor addresses, re-sent (and the tensors checked) only when an address changes."""

    def __init__(self) -> None:
        self.pointers: tuple[int, ...] = ()
        self.table: Tensor | None = None

    def of(self, tensors: Sequence[Tensor], params: Sequence[Tensor]) -> Tensor | None:
        """The table, or None where the tensors cannot be fused with ``params``."""
        pointers = tuple(t.data_ptr() for t in tensors)
        if self.table is None or pointers != self.pointers:
            if not _fusable(tensors, params):
                return None
            self.pointers, self.table = pointers, _on_device(pointers, params[0].device)
        return self.table


class _Bucket:
    """The block tables of one parameter list, and address tables of the lists stepped with it."""

    def __init__(self, params: Sequence[Tensor], block: int) -> None:
        device = params[0].device
        sizes = torch.tensor([p.numel() for p in params], dtype=torch.int64)
        counts = torch.clamp((sizes + block - 1) // block, min=1)
        first = torch.zeros(len(params) + 1, dtype=torch.int64)
        torch.cumsum(counts, 0, out=first[1:])
        block_tensor = torch.repeat_interleave(torch.arange(len(params)), counts)
        block_start = (torch.arange(int(first[-1])) - first[block_tensor]) * block
        self.params = list(params)
        self.num_blocks, self.num_tensors = int(first[-1]), len(params)
        self.sizes, self.first_block = _on_device(sizes, device), _on_device(first, device)
        self.block_tensor, self.block_start = _on_device(block_tensor, device), _on_device(block_start, device)
        self.partials = torch.empty(3 * self.num_blocks, dtype=torch.float32, device=device)
        self.addresses: dict[str, _Addresses] = {}
        self.dtype = DTYPES[params[0].dtype]
        self.x = _on_device([p.data_ptr() for p in params], device)  # the bucket's key: never changes
        self.last: tuple[Tensor, ...] = ()  # the tables pass 1 used, for pass 2

    def tables(self, **lists: Sequence[Tensor]) -> list[Tensor] | None:
        """The address tables of the lists stepped with the parameters (by role: ``g=grads, m=exp_avgs``...),
        or None where one of them cannot be fused."""
        tables = []
        for role, tensors in lists.items():
            table = self.addresses.setdefault(role, _Addresses()).of(tensors, self.params)
            if table is None:
                return None
            tables.append(table)
        return tables

    def norms(self, rows: int) -> Tensor:
        """The square roots of the per-tensor sums of the first ``rows`` rows of block partials, [rows, n]."""
        out = torch.empty((rows, self.num_tensors), dtype=torch.float32, device=self.sizes.device)
        _segment_norms_kernel[(self.num_tensors, rows)](
            self.partials, self.first_block, out, self.num_blocks, self.num_tensors, RBLOCK=REDUCE_BLOCK)
        return out


class TritonKernels:
    """The fused steps of one optimizer, with its buckets' tables cached (keyed by the parameters' addresses; at
    most ``MAX_BUCKETS``, the cache restarts beyond). ``BLOCK`` is read when it is made (tests lower it so that
    small tensors span several blocks under the interpreter)."""

    MAX_BUCKETS = 64

    def __init__(self) -> None:
        self.block = BLOCK
        self._buckets: dict[tuple[int, ...], _Bucket | None] = {}
        self._current: _Bucket | None = None  # pass 1's bucket; pass 2 reuses it and its tables

    def _bucket(self, params: Sequence[Tensor]) -> _Bucket | None:
        """The bucket of ``params`` (pass 1), kept as the one pass 2 continues; None (remembered) where the
        parameters themselves cannot be fused."""
        key = tuple(p.data_ptr() for p in params)
        if key not in self._buckets:
            if len(self._buckets) >= self.MAX_BUCKETS:
                self._buckets.clear()
            self._buckets[key] = _Bucket(params, self.block) if _fusable(params, params) else None
        self._current = self._buckets[key]
        return self._current

    # ---------------------------------------------------------------------------------------------- LAMB

    def lamb_moments(self, params: Sequence[Tensor], grads: Sequence[Tensor], exp_avgs: Sequence[Tensor],
                     exp_avg_sqs: Sequence[Tensor], grad_scale: Tensor | None, beta1: float, beta2: float,
                     eps_hat: float, wd_u: float) -> Tensor | None:
        """Pass 1: m, v updated in place; returns [‖x‖, ‖u'‖, ‖g‖] per tensor ([3, n] float32), or None (declined)."""
        bucket = self._bucket(params)
        tables = None if bucket is None else bucket.tables(g=grads, m=exp_avgs, v=exp_avg_sqs)
        if bucket is None or tables is None:
            return None
        (g, m, v), x = tables, bucket.x
        bucket.last = (x, m, v)
        scale = bucket.partials if grad_scale is None else grad_scale.to(torch.float32)
        _lamb_moments_kernel[(bucket.num_blocks,)](
            bucket.block_tensor, bucket.block_start, bucket.sizes, x, g, m, v, scale, bucket.partials,
            bucket.num_blocks, beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps_hat, wd_u,
            DTYPE=bucket.dtype, HAS_SCALE=grad_scale is not None, BLOCK=self.block)
        return bucket.norms(3)

    def lamb_apply(self, step_scale: Tensor, eps_hat: float, wd_u: float, decay: float) -> None:
        """Pass 2 of the bucket of the last :meth:`lamb_moments`: x ← decay·x + step_scale[l]·u', with u'
        recomputed from the m, v it stored."""
        bucket = self._current
        assert bucket is not None and len(bucket.last) == 3, "lamb_apply follows lamb_moments"
        x, m, v = bucket.last
        _lamb_apply_kernel[(bucket.num_blocks,)](
            bucket.block_tensor, bucket.block_start, bucket.sizes, x, m, v, step_scale.to(torch.float32), eps_hat,
            wd_u, decay, DTYPE=bucket.dtype, BLOCK=self.block)

    # ---------------------------------------------------------------------------------------------- LARS

    def lars_norms(self, params: Sequence[Tensor], grads: Sequence[Tensor], weight_decay: float,
                   direction_norm: bool) -> Tensor | None:
        """Pass 1: [‖w‖, ‖g‖] (and ‖g + βw‖ with ``direction_norm``) per tensor, or None (declined)."""
        bucket = self._bucket(params)
        tables = None if bucket is None else bucket.tables(g=grads)
        if bucket is None or tables is None:
            return None
        w, g = bucket.x, tables[0]
        bucket.last = (w, g)
        _lars_norms_kernel[(bucket.num_blocks,)](
            bucket.block_tensor, bucket.block_start, bucket.sizes, w, g, bucket.partials, bucket.num_blocks,
            weight_decay, DIRECTION=direction_norm, DTYPE=bucket.dtype, BLOCK=self.block)
        return bucket.norms(3 if direction_norm else 2)

    def lars_apply(self, params: Sequence[Tensor], grads: Sequence[Tensor], buffers: Sequence[Tensor],
                   coefficients: Tensor, weight_decay: float, momentum: float, buffer_step: float) -> None:
        """Pass 2 (after :meth:`lars_norms` of the same lists) with a_l = coefficients[0, l] into the buffer and
        direct_l = coefficients[1, l] onto w. ``params`` and ``grads`` are those of pass 1 (the C++ interface)."""
        bucket = self._current
        assert bucket is not None and len(bucket.last) == 2, "lars_apply follows lars_norms"
        has_buffers = len(buffers) > 0
        w, g = bucket.last
        buffer_tables = bucket.tables(m=buffers) if has_buffers else [w]
        if buffer_tables is None:
            raise ValueError("lars_apply: momentum buffers must be contiguous, of the parameters' dtype and sizes")
        b = buffer_tables[0]
        _lars_apply_kernel[(bucket.num_blocks,)](
            bucket.block_tensor, bucket.block_start, bucket.sizes, w, g, b, coefficients.contiguous(),
            bucket.num_tensors, weight_decay, momentum, buffer_step,
            HAS_BUFFERS=has_buffers, DTYPE=bucket.dtype, BLOCK=self.block)
