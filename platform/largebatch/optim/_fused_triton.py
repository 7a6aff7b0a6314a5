"""Fused multi-tensor LAMB and LARS steps in Triton (the CUDA path; Triton's interpreter runs them on the CPU in tests).

A parameter bucket (tensors of one dtype on one device) is cut into blocks of ``BLOCK`` elements, each block
belonging to one tensor; a table of per-tensor addresses and a block→(tensor, start) table, built once per bucket
and cached, let one launch cover every tensor of the bucket (the design of apex's multi_tensor_apply, with a
table instead of fixed-size argument chunks). Per step:

* LAMB (You et al. 2019, Algorithm 2), ``lamb_step``: pass 1 updates m and v and writes each block's Σx², Σu'²,
  Σg² (u' = m/(√v + ε̂) + (λ/c)·x, the direction of :class:`~largebatch.optim.LAMB` before the factor c); a
  finishing kernel, one program per tensor, sums each tensor's blocks in a fixed order (deterministic, no
  atomics), takes the square roots and computes the trust ratio φ(‖x‖)/‖u‖ (as
  :func:`~largebatch.optim.trust_ratio.trust_ratio`: bounds, 1 where a norm is 0), lr·ratio and the step scale;
  pass 2 recomputes u' from the stored m, v and writes x ← decay·x + s_l·u'. Reads x, g, m, v and writes m, v in
  pass 1, reads x, m, v and writes x in pass 2: 10 values per parameter, no scratch buffer.
* LARS (You et al. 2017, Algorithm 1), ``lars_step``: pass 1 writes block sums of w², g² (and (g + βw)² for the
  "update" denominator); the finishing kernel gives the norms, η‖w‖/(‖g‖ + β‖w‖ + ε) (or ‖g + βw‖, LARC's
  clip) and the per-layer coefficients of pass 2, which writes the momentum buffer and w.

Three launches per bucket and step, and no tensor operation on the host's side between them: on a GPU the
step's host time (what bounds a step of a small or mid-sized model) is the launches and the bookkeeping.
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
Bounds = tuple[float | None, float | None]


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
def _segment_sum(partials, row, num_blocks, lo, hi, RBLOCK: tl.constexpr):
    """Σ partials[row, lo:hi] in a fixed order (deterministic, no atomics)."""
    acc = tl.zeros([RBLOCK], dtype=tl.float32)
    for start in range(lo, hi, RBLOCK):
        offs = start + tl.arange(0, RBLOCK)
        acc += tl.load(partials + row * num_blocks + offs, mask=offs < hi, other=0.0)
    return tl.sum(acc, axis=0)


@triton.jit
def _clamped(x, lo, hi, LOWER: tl.constexpr, UPPER: tl.constexpr):
    """``torch.clamp(x, lo, hi)`` for the bounds that are set (NaN stays NaN)."""
    if LOWER:
        x = tl.where(x < lo, lo, x)
    if UPPER:
        x = tl.where(x > hi, hi, x)
    return x


@triton.jit
def _trust(weight_norm, update_norm, coefficient, eps, w_lo, w_hi, r_lo, r_hi,
           W_LO: tl.constexpr, W_HI: tl.constexpr, R_LO: tl.constexpr, R_HI: tl.constexpr):
    """:func:`largebatch.optim.trust_ratio.trust_ratio` for one layer: coefficient·φ(‖w‖)/(‖u‖ + eps), 1 where
    ‖w‖ = 0 or ‖u‖ = 0, clamped to the ratio bounds."""
    ratio = tl.div_rn(coefficient * _clamped(weight_norm, w_lo, w_hi, W_LO, W_HI), update_norm + eps)
    ratio = tl.where((weight_norm > 0) & (update_norm > 0), ratio, 1.0)
    return _clamped(ratio, r_lo, r_hi, R_LO, R_HI)


@triton.jit
def _lamb_finish_kernel(partials, first_block, out, num_blocks, num_tensors, c, lr, neg_lr_c, w_lo, w_hi, r_lo, r_hi,
                        ADAPT: tl.constexpr, W_LO: tl.constexpr, W_HI: tl.constexpr, R_LO: tl.constexpr,
                        R_HI: tl.constexpr, RBLOCK: tl.constexpr):
    """Per tensor t: out[:, t] = ‖x‖, ‖u‖ = c·‖u'‖, trust ratio, lr·ratio, ‖g‖, step scale −lr·c·ratio (pass 2's)."""
    t = tl.program_id(0)
    lo = tl.load(first_block + t)
    hi = tl.load(first_block + t + 1)
    weight_norm = tl.sqrt_rn(_segment_sum(partials, 0, num_blocks, lo, hi, RBLOCK))
    update_norm = c * tl.sqrt_rn(_segment_sum(partials, 1, num_blocks, lo, hi, RBLOCK))
    grad_norm = tl.sqrt_rn(_segment_sum(partials, 2, num_blocks, lo, hi, RBLOCK))
    if ADAPT:
        ratio = _trust(weight_norm, update_norm, 1.0, 0.0, w_lo, w_hi, r_lo, r_hi, W_LO, W_HI, R_LO, R_HI)
    else:
        ratio = tl.full([], 1.0, tl.float32)
    tl.store(out + t, weight_norm)
    tl.store(out + num_tensors + t, update_norm)
    tl.store(out + 2 * num_tensors + t, ratio)
    tl.store(out + 3 * num_tensors + t, lr * ratio)
    tl.store(out + 4 * num_tensors + t, grad_norm)
    tl.store(out + 5 * num_tensors + t, neg_lr_c * ratio)


@triton.jit
def _lars_finish_kernel(partials, first_block, out, num_blocks, num_tensors, wd, coefficient, eps, lr, scale_lr,
                        into_factor, step_lr, PAPER: tl.constexpr, ADAPT: tl.constexpr, CLIP: tl.constexpr,
                        DIRECT: tl.constexpr, RBLOCK: tl.constexpr):
    """Per tensor t: out[:, t] = ‖w‖, ‖g‖, the denominator's norm (‖g‖ + β‖w‖, or ‖g + βw‖), trust ratio, lr·ratio,
    then pass 2's coefficients: into the buffer ``into_factor``·s and onto w ``step_lr``·s (0 without ``DIRECT``),
    with s = ``scale_lr``·ratio (lr inside the momentum, or 1)."""
    t = tl.program_id(0)
    lo = tl.load(first_block + t)
    hi = tl.load(first_block + t + 1)
    weight_norm = tl.sqrt_rn(_segment_sum(partials, 0, num_blocks, lo, hi, RBLOCK))
    grad_norm = tl.sqrt_rn(_segment_sum(partials, 1, num_blocks, lo, hi, RBLOCK))
    if PAPER:
        update_norm = grad_norm + wd * weight_norm
    else:
        update_norm = tl.sqrt_rn(_segment_sum(partials, 2, num_blocks, lo, hi, RBLOCK))
    if ADAPT:
        ratio = _trust(weight_norm, update_norm, coefficient, eps, 0.0, 0.0, 0.0, 0.0, False, False, False, False)
        if CLIP:  # LARC: min(ratio / lr, 1)
            ratio = _clamped(tl.div_rn(ratio, lr), 0.0, 1.0, False, True)
    else:
        ratio = tl.full([], 1.0, tl.float32)
    scale = scale_lr * ratio
    tl.store(out + t, weight_norm)
    tl.store(out + num_tensors + t, grad_norm)
    tl.store(out + 2 * num_tensors + t, update_norm)
    tl.store(out + 3 * num_tensors + t, ratio)
    tl.store(out + 4 * num_tensors + t, lr * ratio)
    tl.store(out + 5 * num_tensors + t, into_factor * scale)
    direct = tl.full([], 0.0, tl.float32)
    if DIRECT:
        direct = step_lr * scale
    tl.store(out + 6 * num_tensors + t, direct)


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
        pointers = tuple(map(Tensor.data_ptr, tensors))
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

    def stats(self, rows: int) -> Tensor:
        """A fresh [rows, n] float32 output for a finishing kernel (fresh: the optimizer's statistics of a step
        may be kept while later steps run)."""
        return torch.empty((rows, self.num_tensors), dtype=torch.float32, device=self.sizes.device)


class TritonKernels:
    """The fused steps of one optimizer, with its buckets' tables cached (keyed by the parameters' addresses; at
    most ``MAX_BUCKETS``, the cache restarts beyond). ``BLOCK`` is read when it is made (tests lower it so that
    small tensors span several blocks under the interpreter)."""

    MAX_BUCKETS = 64

    def __init__(self) -> None:
        self.block = BLOCK
        self._buckets: dict[tuple[int, ...], _Bucket | None] = {}

    def _bucket(self, params: Sequence[Tensor]) -> _Bucket | None:
        """The bucket of ``params``; None (remembered) where the parameters themselves cannot be fused."""
        key = tuple(map(Tensor.data_ptr, params))
        if key not in self._buckets:
            if len(self._buckets) >= self.MAX_BUCKETS:
                self._buckets.clear()
            self._buckets[key] = _Bucket(params, self.block) if _fusable(params, params) else None
        return self._buckets[key]

    # ---------------------------------------------------------------------------------------------- LAMB

    def lamb_step(self, params: Sequence[Tensor], grads: Sequence[Tensor], exp_avgs: Sequence[Tensor],
                  exp_avg_sqs: Sequence[Tensor], grad_scale: Tensor | None, beta1: float, beta2: float, eps_hat: float,
                  wd_u: float, c: float, lr: float, decay: float, adapt: bool, weight_norm_bounds: Bounds | None,
                  ratio_bounds: Bounds | None) -> Tensor | None:
        """The whole LAMB step in three launches (the interface of the fused CPU kernel's ``lamb_step``): pass 1
        updates m, v and writes block sums; the finishing kernel turns them into norms, trust ratios (as
        :func:`~largebatch.optim.trust_ratio.trust_ratio`) and step scales; pass 2 writes x. Returns
        [‖x‖, ‖u‖, ratio, lr·ratio, ‖g‖] per tensor ([5, n] float32), or None (declined: nothing was changed)."""
        bucket = self._bucket(params)
        tables = None if bucket is None else bucket.tables(g=grads, m=exp_avgs, v=exp_avg_sqs)
        if bucket is None or tables is None:
            return None
        (g, m, v), x = tables, bucket.x
        scale = bucket.partials if grad_scale is None else grad_scale.to(torch.float32)
        grid = (bucket.num_blocks,)
        _lamb_moments_kernel[grid](
            bucket.block_tensor, bucket.block_start, bucket.sizes, x, g, m, v, scale, bucket.partials,
            bucket.num_blocks, beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps_hat, wd_u,
            DTYPE=bucket.dtype, HAS_SCALE=grad_scale is not None, BLOCK=self.block)
        out = bucket.stats(6)
        (w_lo, w_hi), (r_lo, r_hi) = weight_norm_bounds or (None, None), ratio_bounds or (None, None)
        _lamb_finish_kernel[(bucket.num_tensors,)](
            bucket.partials, bucket.first_block, out, bucket.num_blocks, bucket.num_tensors, c, lr, -lr * c,
            w_lo or 0.0, w_hi or 0.0, r_lo or 0.0, r_hi or 0.0, ADAPT=adapt, W_LO=w_lo is not None,
            W_HI=w_hi is not None, R_LO=r_lo is not None, R_HI=r_hi is not None, RBLOCK=REDUCE_BLOCK)
        _lamb_apply_kernel[grid](
            bucket.block_tensor, bucket.block_start, bucket.sizes, x, m, v, out[5], eps_hat, wd_u, decay,
            DTYPE=bucket.dtype, BLOCK=self.block)
        return out[:5]

    # ---------------------------------------------------------------------------------------------- LARS

    def lars_step(self, params: Sequence[Tensor], grads: Sequence[Tensor], buffers: Sequence[Tensor], wd: float,
                  momentum: float, lr: float, coefficient: float, eps: float, paper: bool, adapt: bool, clip: bool,
                  scale_lr: float, into_factor: float, direct: bool, step_lr: float,
                  buffer_step: float) -> Tensor | None:
        """The whole LARS step in three launches: pass 1 writes block sums of w², g² (and (g + βw)² unless
        ``paper``); the finishing kernel turns them into norms, trust ratios and per-layer coefficients (s =
        ``scale_lr``·ratio; into the buffer ``into_factor``·s, onto w ``step_lr``·s where ``direct``); pass 2 writes
        v ← μ·v + into·d and w ← w − direct·d − ``buffer_step``·v (d = g + βw; no buffer without momentum).
        Returns [‖w‖, ‖g‖, denominator norm, ratio, lr·ratio] per tensor ([5, n] float32), or None (declined)."""
        bucket = self._bucket(params)
        tables = None if bucket is None else bucket.tables(g=grads, **({"m": buffers} if buffers else {}))
        if bucket is None or tables is None:
            return None
        w, g = bucket.x, tables[0]
        b = tables[1] if buffers else w
        grid = (bucket.num_blocks,)
        _lars_norms_kernel[grid](
            bucket.block_tensor, bucket.block_start, bucket.sizes, w, g, bucket.partials, bucket.num_blocks, wd,
            DIRECTION=not paper, DTYPE=bucket.dtype, BLOCK=self.block)
        out = bucket.stats(7)
        _lars_finish_kernel[(bucket.num_tensors,)](
            bucket.partials, bucket.first_block, out, bucket.num_blocks, bucket.num_tensors, wd, coefficient, eps, lr,
            scale_lr, into_factor, step_lr, PAPER=paper, ADAPT=adapt, CLIP=clip, DIRECT=direct, RBLOCK=REDUCE_BLOCK)
        _lars_apply_kernel[grid](
            bucket.block_tensor, bucket.block_start, bucket.sizes, w, g, b, out[5:], bucket.num_tensors, wd, momentum,
            buffer_step, HAS_BUFFERS=bool(buffers), DTYPE=bucket.dtype, BLOCK=self.block)
        return out[:5]
