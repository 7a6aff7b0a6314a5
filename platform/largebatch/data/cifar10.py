"""CIFAR-10 (Krizhevsky 2009): needs a pre-downloaded copy or network access; the only non-offline dataset here.

The Python-pickle release is read directly from ``ROOT/cifar-10-batches-py``, each batch only after its MD5
matches the release's published checksum (a pickle can run code); torchvision is used only to download and
verify the archive, so it is imported lazily and is optional when the files are already present.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from torch import Tensor

from largebatch.data.splits import Splits, check_fraction, classification_splits

NAME = "cifar10"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
# The release's MD5 of each pickled batch, as torchvision lists them (torchvision/datasets/cifar.py, CIFAR10)
RELEASE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
PROBE_TIMEOUT_S = 3.0


def default_root() -> Path:
    """``~/.cache/largebatch/cifar10``."""
    return Path.home() / ".cache" / "largebatch" / NAME


def reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unavailable(root: Path, reason: str) -> RuntimeError:
    """The error for a CIFAR-10 that is neither on disk nor downloadable."""
    return RuntimeError(
        f"dataset '{NAME}': no copy at {root / FOLDER} and {reason}. CIFAR-10 needs network access or a "
        f"pre-downloaded copy at {root} (pass root=...); the offline workloads are mnist1d, digits and text."
    )


def fetch(root: Path) -> None:
    """Fetch and verify the archive with torchvision, failing at once without torchvision or network."""
    try:
        from torchvision.datasets import CIFAR10
    except ImportError:
        raise unavailable(root, "torchvision, which downloads it, is not installed") from None
    host = urlparse(CIFAR10.url).hostname
    if not reachable(host):
        raise unavailable(root, f"{host}:443 cannot be reached (no network?)")
    try:
        CIFAR10(str(root), train=True, download=True)
    except Exception as error:  # torchvision raises URLError, HTTPError, RuntimeError (checksum), OSError...
        raise unavailable(root, f"the download failed ({error})") from error


def md5(path: Path) -> str:
    """The MD5 hex digest of a file (an integrity check against the published sums, not a security hash)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def verify(folder: Path, names: tuple[str, ...]) -> None:
    """Raise ``RuntimeError`` unless every batch file matches the release's published MD5.

    A pickle runs code when loaded, so nothing is unpickled before its checksum matches.
    """
    for name in names:
        path = folder / name
        found = md5(path)
        if found != RELEASE_MD5[name]:
            raise RuntimeError(
                f"dataset '{NAME}': {path} is not the CIFAR-10 release's file (MD5 {found}, published "
                f"{RELEASE_MD5[name]}); not unpickling it, since a pickle can run code. Delete {folder} to "
                "download the release again, or point root=... at a verified copy."
            )


def read_batches(folder: Path, names: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """Images as float32 ``(N, 3, 32, 32)`` in [0, 1] and int64 labels from the release's pickled batches,
    each checked against the release's MD5 before it is unpickled (:func:`verify`)."""
    verify(folder, names)
    images, labels = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(batch[b"labels"])
    return torch.from_numpy(np.concatenate(images)).float().div_(255.0), torch.tensor(labels, dtype=torch.long)


def build_cifar10(
    *, seed: int = 0, root: str | os.PathLike[str] | None = None, download: bool = True, val_fraction: float = 0.1
) -> Splits:
    """CIFAR-10: x float32 ``(N, 3, 32, 32)`` standardised per channel with train-split statistics, y int64.

    A seeded ``val_fraction`` of the 50,000 training images is held out for validation; the 10,000 test images
    are the test set. Raises ``RuntimeError`` at once when the files are absent and cannot be downloaded.
    """
    check_fraction(NAME, "val_fraction", val_fraction)
    base = default_root() if root is None else Path(root).expanduser()
    folder = base / FOLDER
    if not all((folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
        if not download:
            raise unavailable(base, "download=False")
        fetch(base)
    x, y = read_batches(folder, TRAIN_FILES)
    test = read_batches(folder, (TEST_FILE,))
    return classification_splits(x, y, test, val_fraction=val_fraction, seed=seed, num_classes=10)
