"""Building the fused CPU kernels: a name per source and torch version, a stale lock from a killed builder,
a live builder that outlasts the timeout, the first-build message. torch's compiler is replaced by a stand-in
that takes torch's own lock the way ``torch.utils.cpp_extension`` does, so no test compiles."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch.utils.file_baton import FileBaton

from largebatch.optim import _fused_cpu

BUILT = ModuleType("built_kernels")


@pytest.fixture
def extensions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh extension root, a fresh ``kernels`` cache and the build directory the kernels would use."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(_fused_cpu, "kernels", functools.cache(_fused_cpu.kernels.__wrapped__))
    directory = _fused_cpu.build_directory(_fused_cpu.build_name())
    directory.mkdir(parents=True)
    return directory


def fake_load(calls: list[dict], wait_s: float = 2.0) -> Callable[..., ModuleType]:
    """A stand-in for ``torch.utils.cpp_extension.load``: takes torch's lock file as torch does (where torch
    would wait forever on a stale one, this fails after ``wait_s``), then 'builds' the library."""

    def load(*, name: str, build_directory: str, **kwargs: object) -> ModuleType:
        baton = FileBaton(str(Path(build_directory) / "lock"))
        deadline = time.monotonic() + wait_s
        while not baton.try_acquire():
            if time.monotonic() > deadline:
                raise AssertionError("torch's builder would wait forever on this lock")
            time.sleep(0.05)
        (Path(build_directory) / f"{name}.so").touch()
        baton.release()
        calls.append({"name": name, "build_directory": build_directory, **kwargs})
        return BUILT

    return load


def test_the_cached_kernel_is_named_by_its_source_and_torch_version(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    name = _fused_cpu.build_name()
    assert name == _fused_cpu.build_name() and name.startswith("largebatch_fused_cpu_")
    monkeypatch.setattr(torch, "__version__", torch.__version__ + ".other")
    other_torch = _fused_cpu.build_name()
    source = tmp_path / "_fused_cpu.cpp"
    source.write_bytes(_fused_cpu.SOURCE.read_bytes() + b"\n// edited\n")
    monkeypatch.setattr(_fused_cpu, "SOURCE", source)
    other_source = _fused_cpu.build_name()
    assert len({name, other_torch, other_source}) == 3


def test_a_stale_lock_of_a_killed_builder_is_removed_and_the_build_runs(
    extensions: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (extensions / "lock").touch()  # what a builder killed during compilation leaves behind
    calls: list[dict] = []
    monkeypatch.setattr("torch.utils.cpp_extension.load", fake_load(calls))
    assert _fused_cpu.kernels() is BUILT
    assert [Path(c["build_directory"]) for c in calls] == [extensions]
    assert not (extensions / "lock").exists()
    assert capsys.readouterr().err.count(_fused_cpu.COMPILING_MESSAGE) == 1


def test_a_built_kernel_loads_without_the_compiling_message(
    extensions: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (extensions / f"{extensions.name}.so").touch()
    monkeypatch.setattr("torch.utils.cpp_extension.load", fake_load([]))
    assert _fused_cpu.kernels() is BUILT
    assert _fused_cpu.COMPILING_MESSAGE not in capsys.readouterr().err


HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_live_builder_past_the_timeout_sends_others_to_the_eager_path_until_it_dies(
    extensions: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the build lock (it is compiling): a run waits ``LARGEBATCH_KERNEL_BUILD_TIMEOUT``,
    then warns and takes the multi-tensor path. Once that builder is killed (its torch lock left behind), the
    next run builds at once."""
    monkeypatch.setenv(_fused_cpu.BUILD_TIMEOUT_ENV, "0.5")
    calls: list[dict] = []
    monkeypatch.setattr("torch.utils.cpp_extension.load", fake_load(calls))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(extensions / _fused_cpu.BUILD_LOCK)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (extensions / "lock").touch()  # the holder's torch lock, as if it were compiling
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert _fused_cpu.kernels() is None
        assert time.perf_counter() - started < 5
        (message,) = [str(w.message) for w in caught]
        assert "over 0.5 s" in message and _fused_cpu.BUILD_TIMEOUT_ENV in message
        assert "multi-tensor path" in message and calls == []
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.setattr(_fused_cpu, "kernels", functools.cache(_fused_cpu.kernels.__wrapped__))
    assert _fused_cpu.kernels() is BUILT and len(calls) == 1


def test_a_timeout_that_is_not_a_number_is_named(extensions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_fused_cpu.BUILD_TIMEOUT_ENV, "soon")
    with pytest.warns(RuntimeWarning, match=rf"{_fused_cpu.BUILD_TIMEOUT_ENV}='soon' is not a number"):
        assert _fused_cpu.kernels() is None
