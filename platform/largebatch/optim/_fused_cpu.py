"""The fused CPU kernels of LARS and LAMB: ``_fused_cpu.cpp`` JIT-compiled once with torch's C++ extension builder.

An eager multi-tensor step streams the model many times (LAMB ~27 floats per parameter); the kernels do it in
two passes: pass 1 updates what only depends on the gradient (LAMB's moments) and returns per-layer norms,
Python turns those into trust ratios with :func:`largebatch.optim.trust_ratio.trust_ratio`, pass 2 applies
the step with one coefficient per layer (LAMB 10 floats per parameter, LARS 7). They take float32 contiguous
CPU tensors only; the optimizers route everything else to the eager path.

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
