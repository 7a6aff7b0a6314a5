"""The fused CPU kernels of LARS and LAMB: ``_fused_cpu.cpp`` JIT-compiled once with torch's C++ extension builder.

An eager multi-tensor step streams the model many times (LAMB ~27 floats per parameter); the kernels stream it
about once or twice. They take float32 contiguous CPU tensors only; the optimizers route everything else to the
eager path.

* LAMB (You et al. 2019, Algorithm 2): ``lamb_step`` does the whole step in one call, block by block, a block
  being consecutive tensors with up to ``LAMB_BLOCK_BYTES`` (8 MiB) of x, m and v together (a larger tensor is a
  block of its own). Pass 1 updates the moments and sums ‖x‖², ‖u‖², ‖g‖² per layer; the block's trust ratios
  follow in C++, by the rule of :func:`largebatch.optim.trust_ratio.trust_ratio`; pass 2 applies the step while
  the block is still in cache, each thread walking back over its own part of pass 1 and reading the direction u
  that pass 1 kept for its last windows (``LAMB_KEPT_ELEMENTS`` in all threads) instead of recomputing it from
  m and v. About 7 floats per parameter go through memory where the blocks fit in cache (what Adam needs: read
  x, g, m, v, write x, m, v), up to 10 for tensors larger than the cache.
* LARS (You et al. 2017, Algorithm 1): two passes over the bucket, ``lars_norms`` then ``lars_apply``, with the
  trust ratios computed in Python between them by :func:`~largebatch.optim.trust_ratio.trust_ratio` (7 floats
  per parameter).

The build is cached in torch's extension directory (``TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``), one build per instruction set torch dispatches to
(``torch.backends.cpu.get_cpu_capability()``), so later processes only load it. When it cannot be built (no
compiler, no ninja) :func:`kernels` warns once and returns None, and the optimizers stay on the eager path.
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).with_name("_fused_cpu.cpp")

# Vector flags per capability torch reports. AVX-512 machines get the AVX2 code as well (only that one was built
# and measured); other capabilities build with the compiler's defaults.
_ISA_FLAGS = {"AVX2": ["-mavx2", "-mfma"], "AVX512": ["-mavx2", "-mfma"]}

log = logging.getLogger(__name__)


def _build() -> ModuleType:
    from torch.utils.cpp_extension import load

    capability = torch.backends.cpu.get_cpu_capability()
    started = time.perf_counter()
    module = load(
        name=f"largebatch_fused_cpu_{capability.lower()}",
        sources=[str(SOURCE)],
        extra_cflags=["-O3", "-fopenmp", "-fno-math-errno", *_ISA_FLAGS.get(capability, [])],
        extra_ldflags=["-fopenmp"],
    )
    log.info("largebatch fused CPU kernels ready in %.1f s (%s)", time.perf_counter() - started, capability)
    return module


def _reason(exc: Exception) -> str:
    """The line of a build failure worth showing: the first compiler or shell error, else the last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    telling = [line for line in lines if any(key in line for key in ("error:", "not found", "No such file"))]
    return f"{type(exc).__name__}: {telling[0] if telling else lines[-1] if lines else repr(exc)}"


@functools.cache
def kernels() -> ModuleType | None:
    """The compiled kernels, built on first use; None (after one warning) where they cannot be built."""
    try:
        return _build()
    except Exception as exc:  # any build failure (no compiler, no ninja, compile error) means: eager path
        warnings.warn(
            f"largebatch: the fused CPU kernels of LARS/LAMB could not be built ({_reason(exc)}); "
            "LARS/LAMB use the multi-tensor path instead",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
