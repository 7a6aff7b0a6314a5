"""MNIST-1D (Greydanus & Kobak 2024, "Scaling Down Deep Learning with MNIST-1D"), generated offline and cached.

The ``mnist1d`` package's ``make_dataset`` builds the set procedurally from ten 1-D digit templates; its
``get_dataset`` would download a pickle, so it is never used here.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from largebatch.data.splits import Splits, check_fraction, classification_splits

NAME = "mnist1d"


def default_cache_dir() -> Path:
    """``~/.cache/largebatch/mnist1d``."""
    return Path.home() / ".cache" / "largebatch" / NAME


def generation_args(num_samples: int, train_split: float, seed: int) -> dict:
    """The package's default generation arguments with ours substituted (the download URL left out)."""
    from mnist1d.data import get_dataset_args  # imports matplotlib: deferred until MNIST-1D is asked for

    args = get_dataset_args(as_dict=True)
    del args["url"]
    args.update(num_samples=num_samples, train_split=train_split, seed=seed)
    return args


def generate(args: dict) -> dict[str, np.ndarray]:
    """Run ``mnist1d.data.make_dataset``, restoring the global ``random``/``numpy`` states it reseeds."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {key: data[key] for key in ("x", "y", "x_test", "y_test")}


def load_or_generate(args: dict, cache_dir: Path | None) -> dict[str, np.ndarray]:
    """Arrays for ``args``, read from ``cache_dir`` when present, else generated (and saved there atomically)."""
    if cache_dir is None:
        return generate(args)
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"{NAME}-{key}.npz"
    if path.exists():
        with np.load(path) as stored:
            return {name: stored[name] for name in stored.files}
    arrays = generate(args)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return arrays


def build_mnist1d(
    *,
    seed: int = 0,
    num_samples: int = 5000,
    train_split: float = 0.8,
    val_fraction: float = 0.2,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Splits:
    """MNIST-1D: x float32 ``(N, 1, 40)``, y int64, 10 classes.

    ``num_samples`` examples are generated with ``seed``; the package's ``train_split`` share forms the train pool
    (the rest is the test set) and ``val_fraction`` of that pool, chosen with ``seed``, is held out for validation.
    x is standardised with the statistics of the train split. With ``cache`` the generated arrays are kept under
    ``cache_dir`` (default ``~/.cache/largebatch/mnist1d``), keyed by the generation arguments.
    """
    if num_samples < 10:
        raise ValueError(f"dataset '{NAME}': option 'num_samples' must be at least 10 (one per class), got {num_samples}")
    check_fraction(NAME, "train_split", train_split)
    check_fraction(NAME, "val_fraction", val_fraction)
    directory = (default_cache_dir() if cache_dir is None else Path(cache_dir)) if cache else None
    arrays = load_or_generate(generation_args(num_samples, train_split, seed), directory)
    x, x_test = (torch.from_numpy(arrays[k]).float().unsqueeze(1) for k in ("x", "x_test"))
    y, y_test = (torch.from_numpy(arrays[k]).long() for k in ("y", "y_test"))
    return classification_splits(x, y, (x_test, y_test), val_fraction=val_fraction, seed=seed, num_classes=10)
