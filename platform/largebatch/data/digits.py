"""scikit-learn's bundled 8×8 handwritten digits (the UCI optical-digits test set; 1,797 images, offline)."""

from __future__ import annotations

import torch

from largebatch.data.splits import Splits, check_fraction, classification_splits, holdout

NAME = "digits"


def build_digits(*, seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Splits:
    """Digits: x float32 ``(N, 1, 8, 8)``, y int64, 10 classes.

    A seeded ``test_fraction`` of all images is the test set and ``val_fraction`` of the rest is held out for
    validation. Pixels (0–16) are scaled to [0, 1], then standardised with the statistics of the train split.
    """
    check_fraction(NAME, "val_fraction", val_fraction)
    check_fraction(NAME, "test_fraction", test_fraction)
    from sklearn.datasets import load_digits  # scikit-learn takes seconds to import: only when digits are asked for

    images, targets = load_digits(return_X_y=True)
    x = torch.from_numpy(images).float().div_(16.0).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(targets).long()
    pool, test = holdout(len(y), test_fraction, seed)
    return classification_splits(
        x[pool], y[pool], (x[test], y[test]), val_fraction=val_fraction, seed=seed, num_classes=10
    )
