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
``~/.cache/torch_extensions``) under a name holding the instruction set torch dispatches to
(``torch.backends.cpu.get_cpu_capability()``) and a hash of the source, the flags, torch's version and the
Python ABI (:func:`build_name`), so checkouts and environments on one machine keep builds of their own and
later processes only load it. The first build says so on stderr (it takes ~20 s).

Builds survive a killed builder: torch's builder guards a build directory with a ``lock`` file that holds no
owner and stays behind when its process is killed, after which every later load waits on it forever. Here each
build or load first takes an OS lock (``flock`` through :mod:`filelock`, released by the kernel when its holder
dies) on ``largebatch-build.lock``; whoever holds it knows no one else is building, so a ``lock`` file left in
the directory is stale and is removed. A process that cannot get the OS lock within
``LARGEBATCH_KERNEL_BUILD_TIMEOUT`` seconds (default :data:`DEFAULT_BUILD_TIMEOUT_S`) gives up. Whenever the
kernels cannot be had (no compiler, no ninja, a build that timed out) :func:`kernels` warns once and returns
None, and the optimizers stay on the eager path.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch
from filelock import FileLock, Timeout

SOURCE = Path(__file__).with_name("_fused_cpu.cpp")

# Vector flags per capability torch reports. AVX-512 machines get the AVX2 code as well (only that one was built
# and measured); other capabilities build with the compiler's defaults.
_ISA_FLAGS = {"AVX2": ["-mavx2", "-mfma"], "AVX512": ["-mavx2", "-mfma"]}
_LDFLAGS = ["-fopenmp"]

BUILD_LOCK = "largebatch-build.lock"  # our OS-level lock (flock), released by the kernel when its holder dies
TORCH_LOCK = "lock"  # torch's FileBaton: a bare file, left behind by a killed builder
BUILD_TIMEOUT_ENV = "LARGEBATCH_KERNEL_BUILD_TIMEOUT"
DEFAULT_BUILD_TIMEOUT_S = 300.0  # a build alone takes ~20 s; allow for a busy machine and a queue of waiters
COMPILING_MESSAGE = "largebatch: compiling the fused CPU kernels (first use, ~20 s)…"

log = logging.getLogger(__name__)


def build_name() -> str:
    """The cached extension's name: capability plus a hash of what the binary depends on."""
    capability = torch.backends.cpu.get_cpu_capability()
    digest = hashlib.sha256(SOURCE.read_bytes())
    for part in (_cflags(capability), _LDFLAGS, torch.__version__, sys.implementation.cache_tag):
        digest.update(repr(part).encode())
    return f"largebatch_fused_cpu_{capability.lower()}_{digest.hexdigest()[:12]}"


def _cflags(capability: str) -> list[str]:
    return ["-O3", "-fopenmp", "-fno-math-errno", *_ISA_FLAGS.get(capability, [])]


def build_directory(name: str) -> Path:
    """``TORCH_EXTENSIONS_DIR/name``, else ``name`` under torch's default extension root."""
    from torch.utils.cpp_extension import get_default_build_root

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()) / name


def build_timeout() -> float:
    """Seconds to wait for another process's build (``LARGEBATCH_KERNEL_BUILD_TIMEOUT``)."""
    raw = os.environ.get(BUILD_TIMEOUT_ENV)
    try:
        return DEFAULT_BUILD_TIMEOUT_S if raw is None else float(raw)
    except ValueError:
        raise ValueError(f"{BUILD_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None


class BuildTimeout(RuntimeError):
    """Another process held the build lock for longer than :func:`build_timeout`."""


def _ensure_ninja() -> None:
    """Put the ``ninja`` of the ninja package on PATH when none is there (a venv used without activating it)."""
    if shutil.which("ninja") is None:
        try:
            import ninja
        except ImportError:
            return
        os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, os.environ.get("PATH", "")])


def _build() -> ModuleType:
    from torch.utils.cpp_extension import load

    capability = torch.backends.cpu.get_cpu_capability()
    name = build_name()
    directory = build_directory(name)
    directory.mkdir(parents=True, exist_ok=True)
    timeout = build_timeout()
    try:
        with FileLock(directory / BUILD_LOCK, timeout=timeout):
            (directory / TORCH_LOCK).unlink(missing_ok=True)  # we hold the OS lock: no one else is building
            if not (directory / f"{name}.so").is_file():
                print(COMPILING_MESSAGE, file=sys.stderr, flush=True)
            _ensure_ninja()
            started = time.perf_counter()
            module = load(name=name, sources=[str(SOURCE)], extra_cflags=_cflags(capability),
                          extra_ldflags=_LDFLAGS, build_directory=str(directory))
    except Timeout:
        raise BuildTimeout(f"another process held {directory / BUILD_LOCK} for over {timeout:g} s (still "
                           f"compiling, or stuck; wait longer with {BUILD_TIMEOUT_ENV}=SECONDS)") from None
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
