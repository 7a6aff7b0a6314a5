"""Connecting a sweep to Ray: a local cluster started and stopped by the sweep, or an existing one.

A local cluster is for this machine only (Ray's single-machine mode, as on macOS and Windows): its node address
is the loopback address, so every port Ray opens (GCS, raylet, object manager, workers' and the driver's gRPC
servers, the runtime-env and dashboard agents) listens on 127.0.0.1 or a Unix socket. Ray reads that mode from
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` once, when it is imported; since the sweep modules have imported Ray by
then, :func:`loopback_only` also sets the value Ray read. Ray's token authentication stays at Ray's default (on
for a local cluster since Ray 2.59, the token in ``~/.ray/auth_token``) unless the user sets ``RAY_AUTH_MODE``.
Nothing is relaxed for loopback. The local cluster is started with a :mod:`largebatch.sweep.watchdog` next to
it, which kills what is left of it when the sweep's process ends, even by SIGKILL.

An existing cluster (``--address`` or ``RAY_ADDRESS``) is used as its owner configured it: neither the network
mode nor the authentication mode is touched (a token-authenticated cluster needs its token in
``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``).

Environment for the workers: W&B offline unless the user chose a ``WANDB_MODE`` (an API key and no network would
otherwise block each trial for 100 s), and Ray's console output reduced to our own table (Tune's own per-trial
logs: JSON and CSV, not TensorBoard). Locally workers inherit the driver's environment; on a cluster they receive
it through the job's ``runtime_env``.

Workers import ``largebatch`` to run trials: locally it is this interpreter's installation; on a cluster,
install the package on every node (``pip install -e .`` from a shared checkout), start Ray with ``ray start
--head`` / ``ray start --address HEAD:6379`` and run the sweep on the head node with ``--address HEAD:6379``.
(``ray job submit`` needs Ray's job server from ``ray[default]``, which largebatch does not install.)
Multi-node sweeps also need the runs root on storage every node sees (NFS), since trials write their run
directories there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORKER_ENV_DEFAULTS = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
DRIVER_ENV_DEFAULTS = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": the node address is the loopback address
WATCHDOG_EXIT_S = 30.0


def temp_dir() -> str:
    """Ray's session folder: ``RAY_TMPDIR`` or a short per-user path (Ray's socket paths must stay short)."""
    return os.environ.get("RAY_TMPDIR") or str(Path(tempfile.gettempdir()) / f"lbray-{os.getuid()}")


def worker_env() -> dict[str, str]:
    """The environment trials need, the user's own values winning over the defaults."""
    return {key: os.environ.get(key, value) for key, value in WORKER_ENV_DEFAULTS.items()}


@contextmanager
def loopback_only() -> Iterator[None]:
    """Ray's single-machine mode for a cluster started inside: node address 127.0.0.1 (see the module docstring).

    Ray's child processes inherit the environment variable; this process's Ray has read it already at import.
    """
    from ray._private import ray_constants

    saved_env, saved_mode = os.environ.get(SINGLE_MACHINE), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_MACHINE] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_mode
        if saved_env is None:
            os.environ.pop(SINGLE_MACHINE, None)
        else:
            os.environ[SINGLE_MACHINE] = saved_env


@contextmanager
def watched_processes() -> Iterator[subprocess.Popen[bytes]]:
    """A :mod:`largebatch.sweep.watchdog` for the processes started inside; on leaving, it kills what is left
    of them and this waits for it, so no process of the cluster outlives the sweep."""
    from largebatch.sweep import watchdog as script

    # -I: isolated (the script needs psutil only; its folder's modules must not shadow the standard library's)
    process = subprocess.Popen([sys.executable, "-I", script.__file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               start_new_session=True)
    assert process.stdout is not None
    if process.stdout.readline() != b"ready\n":  # it knows which processes were there before the cluster
        raise RuntimeError(f"the sweep's watchdog ({script.__file__}) did not start; is psutil installed?")
    try:
        yield process
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=WATCHDOG_EXIT_S)


@contextmanager
def ray_session(address: str | None = None) -> Iterator[str]:
    """Ray for the duration of a sweep; yields a description of the cluster.

    ``address`` (or ``RAY_ADDRESS``) connects to that cluster; otherwise a local, loopback-only cluster using
    every CPU is started and stopped here. Ray already initialised in this process (tests, notebooks) is used as
    it is.
    """
    import ray

    if ray.is_initialized():
        yield "the Ray cluster this process is connected to"
        return
    for key, value in {**DRIVER_ENV_DEFAULTS, **worker_env()}.items():
        os.environ.setdefault(key, value)
    address = address or os.environ.get("RAY_ADDRESS")
    if address is not None:
        ray.init(address=address, runtime_env={"env_vars": worker_env()}, log_to_driver=False,
                 logging_level="WARNING")
        try:
            yield f"the Ray cluster at {address}"
        finally:
            ray.shutdown()
        return
    with watched_processes(), loopback_only():
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _temp_dir=temp_dir(),
                 log_to_driver=False, configure_logging=True, logging_level="WARNING")
        try:
            yield f"a local Ray cluster ({os.cpu_count()} CPUs, loopback only)"
        finally:
            ray.shutdown()
