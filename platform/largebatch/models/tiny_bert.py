"""A tiny BERT-style encoder for masked language modelling (Devlin et al. 2019)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from largebatch.models.layers import check_dropout, check_positive

INITIALIZER_RANGE = 0.02  # BERT's ``initializer_range`` (google-research/bert, modeling.py)


class TinyBert(nn.Module):
    """Token + learned position embeddings → LayerNorm → dropout → ``layers`` transformer encoder blocks →
    the MLM head (dense → GELU → LayerNorm → projection to the vocabulary), as in BERT.

    Blocks are ``nn.TransformerEncoderLayer`` (GELU, feed-forward width ``ffn``, default ``4 * d_model``);
    ``norm_first=False`` is BERT's post-LN, ``True`` the pre-LN variant, which then ends with a final LayerNorm
    (``encoder.norm``). ``tie_weights`` shares the output projection with the token embedding, as BERT does.
    Positions holding ``pad_token_id`` are excluded from attention via ``src_key_padding_mask``.
    Initialisation follows BERT: matrices and embeddings truncated normal (std 0.02, cut at 2 std), biases zero,
    LayerNorm weight 1.
    """

    META_KEYS = ("vocab_size", "seq_len", "pad_token_id")

    def __init__(
        self,
        meta: Mapping[str, Any],
        *,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ffn: int | None = None,
        dropout: float = 0.1,
        norm_first: bool = False,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        ffn = 4 * d_model if ffn is None else ffn
        check_positive("tiny_bert", d_model=d_model, heads=heads, layers=layers, ffn=ffn)
        if d_model % heads:
            raise ValueError(f"model 'tiny_bert': d_model={d_model} is not divisible by heads={heads}")
        check_dropout("tiny_bert", dropout)
        vocab_size, seq_len = int(meta["vocab_size"]), int(meta["seq_len"])
        self.pad_token_id = int(meta["pad_token_id"])
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(seq_len, d_model)
        self.embedding_norm = nn.LayerNorm(d_model)
        self.embedding_dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(
            d_model, heads, ffn, dropout, activation="gelu", batch_first=True, norm_first=norm_first
        )
        self.encoder = nn.TransformerEncoder(
            block, layers, norm=nn.LayerNorm(d_model) if norm_first else None, enable_nested_tensor=False
        )
        self.mlm_dense = nn.Linear(d_model, d_model)
        self.mlm_norm = nn.LayerNorm(d_model)
        self.decoder = nn.Linear(d_model, vocab_size)
        for name, param in self.named_parameters():
            if param.dim() > 1:
                nn.init.trunc_normal_(param, std=INITIALIZER_RANGE, a=-2 * INITIALIZER_RANGE, b=2 * INITIALIZER_RANGE)
            elif name.endswith("bias"):
                nn.init.zeros_(param)
        if tie_weights:
            self.decoder.weight = self.token_embedding.weight

    def forward(self, input_ids: Tensor) -> Tensor:
        """Logits ``(B, L, vocab_size)`` for token ids ``(B, L)`` with ``L <= seq_len``."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.token_embedding(input_ids) + self.position_embedding(positions)
        h = self.embedding_dropout(self.embedding_norm(h))
        h = self.encoder(h, src_key_padding_mask=input_ids == self.pad_token_id)
        return self.decoder(self.mlm_norm(F.gelu(self.mlm_dense(h))))
