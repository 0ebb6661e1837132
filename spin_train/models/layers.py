"""Building blocks shared by every network of spin_train: the pre-LN Transformer block, MLPs,
and per-slot (per sub-action dimension) linear layers computed as one batched matmul."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Logit given to bins a dimension does not have (dimensions with fewer bins than the widest are
#: padded). Finite, so ``p * log p`` stays 0 rather than NaN; far below any real logit.
PAD_LOGIT = -1e9


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU,
        dropout: float = 0.0) -> nn.Sequential:
    """``Linear -> act (-> Dropout)`` between consecutive ``sizes``; no activation at the end."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class TransformerBlock(nn.Module):
    """Pre-LN encoder block: ``x + Attn(LN(x))`` then ``x + FFN(LN(x))``, FFN with GELU.

    Full bidirectional attention through ``F.scaled_dot_product_attention`` (the fused
    flash / memory-efficient kernels on CUDA). Inputs ``(B, T, d)`` -> ``(B, T, d)``.
    """

    def __init__(self, d_model: int, n_heads: int, ffn_mult: int = 2, dropout: float = 0.1):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_mult * d_model), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(ffn_mult * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.n_heads, d // self.n_heads).unbind(2)
        att = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
            dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(B, T, d)))
        return x + self.drop(self.ffn(self.norm2(x)))


class SlotLinear(nn.Module):
    """N independent linear maps, one per slot: ``(B, N, in) -> (B, N, out)``.

    The same as a ``ModuleList`` of N ``nn.Linear`` (same initialisation), computed as one
    batched matmul instead of N small ones: with 38 sub-actions that is the difference between
    one kernel launch and 38.
    """

    def __init__(self, n_slots: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_slots, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_slots, out_features))
        bound = 1.0 / math.sqrt(in_features)
        # nn.Linear's default: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(in), 1/sqrt(in)).
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bni,nio->bno", x, self.weight) + self.bias


class SlotHeads(nn.Module):
    """Per-dimension heads producing logits over each dimension's bins, ``(B, N, max_bins)``.

    ``hidden=None`` gives one linear map per slot (the probe's heads); otherwise
    ``Linear(in, hidden) -> GELU -> Dropout -> Linear(hidden, bins_i)`` per slot (the ASM's and
    the policies' heads). Bins a dimension lacks get :data:`PAD_LOGIT`.
    """

    def __init__(self, bins: Sequence[int], in_features: int, hidden: int | None = 128,
                 dropout: float = 0.0):
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        n, width = len(self.bins), max(self.bins)
        if hidden is None:
            self.hidden = None
            self.out = SlotLinear(n, in_features, width)
        else:
            self.hidden = SlotLinear(n, in_features, hidden)
            self.act = nn.GELU()
            self.drop = nn.Dropout(dropout)
            self.out = SlotLinear(n, hidden, width)
        valid = torch.arange(width)[None, :] < torch.tensor(self.bins)[:, None]
        self.register_buffer("invalid", ~valid, persistent=False)
        self.padded = min(self.bins) < width  # decided once: no device sync per forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hidden is not None:
            x = self.drop(self.act(self.hidden(x)))
        logits = self.out(x)
        if self.padded:
            logits = logits.masked_fill(self.invalid, PAD_LOGIT)
        return logits


def slot_log_probs(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``log pi_i(a_i | s)`` per slot, ``(B, N)``, from logits ``(B, N, K)`` and bin indices
    ``(B, N)``. Computed in float32 whatever the autocast dtype."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
