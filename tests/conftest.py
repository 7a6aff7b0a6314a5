"""Shared test setup: one torch thread (2-core machines), W&B offline and quiet, no network, Ray on loopback."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@contextmanager
def loopback_ray(**resources: float) -> Iterator[None]:
    """A local Ray instance with ``resources`` (``num_cpus``, ``num_gpus``), started as ``largebatch sweep``
    starts its own: loopback only, Ray's default token authentication, a watchdog for what it leaves behind."""
    import ray

    from largebatch.sweep.cluster import loopback_only, watched_processes

    with tempfile.TemporaryDirectory(prefix="lbt-", dir="/tmp") as temp, watched_processes(), loopback_only():
        ray.init(address="local", include_dashboard=False, _temp_dir=temp, log_to_driver=False, **resources)
        try:
            yield
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local 2-CPU Ray instance (:func:`loopback_ray`) for one test module, shut down after it."""
    with loopback_ray(num_cpus=2):
        yield


@pytest.fixture
def start_ray() -> Callable[..., AbstractContextManager[None]]:
    """:func:`loopback_ray`, for a test that needs a cluster of its own."""
    return loopback_ray
