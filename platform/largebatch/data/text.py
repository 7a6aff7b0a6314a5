"""A small masked-language-modelling corpus, and BERT's token masking (Devlin et al. 2019, §3.1 and App. A.1).

The default corpus is the English documentation that ships inside CPython (``pydoc_data.topics``), so the
workload runs offline; any UTF-8 text file can stand in for it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from largebatch.data.splits import Splits, check_fraction, holdout

NAME = "text"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[MASK]")
PAD_ID, UNK_ID, MASK_ID = range(len(SPECIAL_TOKENS))
IGNORE_INDEX = -100  # the default ``ignore_index`` of ``torch.nn.functional.cross_entropy``
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")


def read_corpus(path: str | os.PathLike[str] | None) -> str:
    """The text at ``path`` (UTF-8), or by default CPython's pydoc topics joined in sorted key order."""
    if path is None:
        from pydoc_data.topics import topics

        return "".join(topics[key] for key in sorted(topics))
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"dataset '{NAME}': corpus file not found: {file}")
    return file.read_text(encoding="utf-8")


def tokenize(text: str, tokenizer: str) -> list[str]:
    """Characters (``"char"``), or lower-cased words and single punctuation marks (``"word"``)."""
    return list(text) if tokenizer == "char" else WORD_PATTERN.findall(text.lower())


def build_vocab(tokens: list[str], *, min_freq: int, vocab_size: int) -> tuple[str, ...]:
    """Special tokens, then the ``vocab_size`` most frequent tokens seen at least ``min_freq`` times (ties by text)."""
    ranked = sorted(Counter(tokens).items(), key=lambda item: (-item[1], item[0]))
    return SPECIAL_TOKENS + tuple(token for token, count in ranked if count >= min_freq)[:vocab_size]


def build_text(
    *,
    seed: int = 0,
    path: str | os.PathLike[str] | None = None,
    tokenizer: str = "char",
    min_freq: int = 1,
    vocab_size: int = 2000,
    seq_len: int = 64,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    mask_prob: float = 0.15,
) -> Splits:
    """Masked-LM corpus: 1-tuples ``(ids,)`` of int64 ``(N, seq_len)`` token sequences.

    The token stream is cut into non-overlapping ``seq_len`` sequences (the tail is dropped); a seeded
    ``test_fraction`` of them is the test set and ``val_fraction`` of the rest is held out for validation.
    ``vocab_size`` caps the non-special vocabulary; unseen or rare tokens map to ``[UNK]``. ``mask_prob`` is
    recorded in ``meta`` for ``MaskedLMTransform``; the splits hold unmasked ids.
    """
    if tokenizer not in ("char", "word"):
        raise ValueError(f"dataset '{NAME}': option 'tokenizer' must be 'char' or 'word', got {tokenizer!r}")
    for option, value, least in (("min_freq", min_freq, 1), ("vocab_size", vocab_size, 1), ("seq_len", seq_len, 2)):
        if value < least:
            raise ValueError(f"dataset '{NAME}': option '{option}' must be at least {least}, got {value}")
    for option, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction), ("mask_prob", mask_prob)):
        check_fraction(NAME, option, value)
    tokens = tokenize(read_corpus(path), tokenizer)
    vocab = build_vocab(tokens, min_freq=min_freq, vocab_size=vocab_size)
    index = {token: i for i, token in enumerate(vocab)}
    num_sequences = len(tokens) // seq_len
    if num_sequences < 3:
        raise ValueError(
            f"dataset '{NAME}': the corpus gives {num_sequences} sequence(s) of seq_len={seq_len}; need at least 3"
        )
    stream = torch.tensor([index.get(token, UNK_ID) for token in tokens[: num_sequences * seq_len]])
    sequences = stream.view(num_sequences, seq_len)
    pool, test = holdout(num_sequences, test_fraction, seed)
    train, val = holdout(len(pool), val_fraction, seed)
    meta = {
        "task": "mlm",
        "tokenizer": tokenizer,
        "vocab": vocab,
        "vocab_size": len(vocab),
        "seq_len": seq_len,
        "pad_token_id": PAD_ID,
        "unk_token_id": UNK_ID,
        "mask_token_id": MASK_ID,
        "num_special": len(SPECIAL_TOKENS),
        "mask_prob": mask_prob,
    }
    return Splits(train=(sequences[pool[train]],), val=(sequences[pool[val]],), test=(sequences[test],), meta=meta)


def mask_tokens(
    ids: Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    mask_prob: float,
    generator: torch.Generator,
    num_special: int = 3,
) -> tuple[Tensor, Tensor]:
    """BERT's masking rule (Devlin et al. 2019, §3.1): ``(input_ids, labels)`` for a masked-LM loss.

    Each non-special token (id ≥ ``num_special``; so never ``[PAD]``) is selected with probability
    ``mask_prob``. Of the selected, 80% become ``mask_token_id``, 10% a uniformly random non-special token and
    10% stay unchanged. ``labels`` holds the original id at selected positions and -100 elsewhere. Random
    numbers come from ``generator`` on its own device, so results are reproducible for a given generator.
    """

    def uniform() -> Tensor:
        return torch.rand(ids.shape, generator=generator, device=generator.device).to(ids.device)

    selected = (uniform() < mask_prob) & (ids >= num_special)
    action = uniform()
    random_ids = torch.randint(
        num_special, vocab_size, ids.shape, generator=generator, device=generator.device, dtype=ids.dtype
    ).to(ids.device)
    input_ids = torch.where(selected & (action >= 0.8) & (action < 0.9), random_ids, ids)
    input_ids = input_ids.masked_fill_(selected & (action < 0.8), mask_token_id)
    return input_ids, ids.masked_fill(~selected, IGNORE_INDEX)


@dataclass(frozen=True)
class MaskedLMTransform:
    """A ``TensorBatches`` transform: ``(ids,)`` → ``(input_ids, labels)`` by ``mask_tokens``, fresh per batch."""

    mask_token_id: int
    vocab_size: int
    mask_prob: float
    num_special: int = len(SPECIAL_TOKENS)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> MaskedLMTransform:
        """The transform a text dataset's ``meta`` describes."""
        return cls(meta["mask_token_id"], meta["vocab_size"], meta["mask_prob"], meta["num_special"])

    def __call__(self, batch: tuple[Tensor, ...], generator: torch.Generator) -> tuple[Tensor, Tensor]:
        (ids,) = batch
        return mask_tokens(
            ids,
            mask_token_id=self.mask_token_id,
            vocab_size=self.vocab_size,
            mask_prob=self.mask_prob,
            generator=generator,
            num_special=self.num_special,
        )
