"""Connecting a sweep to Ray: a local cluster started and stopped by the sweep, or an existing one.

Environment first, because Ray workers inherit the driver's environment (local) or receive it through the
job's ``runtime_env`` (existing cluster): W&B offline unless the user chose a ``WANDB_MODE`` (an API key and
no network would otherwise block each trial for 100 s), Ray's token authentication off unless the user set
``RAY_AUTH_MODE`` (local clusters enable it by default since Ray 2.59), and Ray's console output reduced to
our own table (Tune's own per-trial logs: JSON and CSV, not TensorBoard).

Workers import ``largebatch`` to run trials: locally it is this interpreter's installation; on a cluster,
install the package on every node (``pip install -e .`` from a shared checkout), start Ray with ``ray start
--head`` / ``ray start --address HEAD:6379`` and run the sweep on the head node with ``--address HEAD:6379``.
(``ray job submit`` needs Ray's job server from ``ray[default]``, which largebatch does not install.)
Multi-node sweeps also need the runs root on storage every node sees (NFS), since trials write their run
directories there.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORKER_ENV_DEFAULTS = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
DRIVER_ENV_DEFAULTS = {"RAY_AUTH_MODE": "disabled", "RAY_AIR_NEW_OUTPUT": "0",
                       "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}


def temp_dir() -> str:
    """Ray's session folder: ``RAY_TMPDIR`` or a short per-user path (Ray's socket paths must stay short)."""
    return os.environ.get("RAY_TMPDIR") or str(Path(tempfile.gettempdir()) / f"lbray-{os.getuid()}")


def worker_env() -> dict[str, str]:
    """The environment trials need, the user's own values winning over the defaults."""
    return {key: os.environ.get(key, value) for key, value in WORKER_ENV_DEFAULTS.items()}


@contextmanager
def ray_session(address: str | None = None) -> Iterator[str]:
    """Ray for the duration of a sweep; yields a description of the cluster.

    ``address`` (or ``RAY_ADDRESS``) connects to that cluster; otherwise a local cluster using every CPU is
    started and stopped here. Ray already initialised in this process (tests, notebooks) is used as it is.
    """
    import ray

    if ray.is_initialized():
        yield "the Ray cluster this process is connected to"
        return
    for key, value in {**DRIVER_ENV_DEFAULTS, **worker_env()}.items():
        os.environ.setdefault(key, value)
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None:
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _temp_dir=temp_dir(),
                 log_to_driver=False, configure_logging=True, logging_level="WARNING")
        where = f"a local Ray cluster ({os.cpu_count()} CPUs)"
    else:
        ray.init(address=address, runtime_env={"env_vars": worker_env()}, log_to_driver=False,
                 logging_level="WARNING")
        where = f"the Ray cluster at {address}"
    try:
        yield where
    finally:
        ray.shutdown()
