"""Datasets as in-memory tensor splits, and fast whole-tensor batching.

Depends on torch, numpy and (lazily) scikit-learn, mnist1d and torchvision only.
"""

from largebatch.data.batches import TensorBatches
from largebatch.data.registry import DATASETS, build_dataset
from largebatch.data.splits import Splits
from largebatch.data.text import MaskedLMTransform, mask_tokens

__all__ = ["DATASETS", "MaskedLMTransform", "Splits", "TensorBatches", "build_dataset", "mask_tokens"]
