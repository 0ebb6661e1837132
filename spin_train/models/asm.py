"""The Action Structure Model (SPIN section 4.1): a permutation-equivariant Transformer over M
state tokens and N sub-action tokens.

Shapes: B batch, D observation features, N sub-action dimensions, ``bins[i]`` bins of
dimension i, d ``d_model``. No positional encodings: a slot is identified only by its own
embedding table (and its head), so permuting the dimensions together with their tables and
heads permutes the outputs (tested).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from spin_train.models.layers import SlotHeads, TransformerBlock


@dataclass
class ASMConfig:
    """Sizes of an :class:`ActionStructureModel` (defaults: REFERENCE section 3)."""

    obs_dim: int  # D, observation features
    bins: tuple[int, ...]  # bins per sub-action dimension (N = len(bins))
    d_model: int = 256  # token width d
    n_heads: int = 4  # attention heads per block
    n_layers: int = 3  # pre-LN Transformer blocks
    ffn_mult: int = 2  # FFN width = ffn_mult * d (GELU)
    dropout: float = 0.1  # dropout in attention, after attention/FFN, and in the heads
    n_state_tokens: int = 1  # M state tokens made by the state MLP
    head_hidden: int = 128  # hidden width of each per-dimension prediction head
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes saved with the model

    def __post_init__(self) -> None:
        self.bins = tuple(int(b) for b in self.bins)
        if not self.bins or min(self.bins) < 2:
            raise ValueError(f"bins must list >= 2 bins per dimension, got {self.bins}")
        for name in ("obs_dim", "d_model", "n_heads", "n_layers", "ffn_mult", "n_state_tokens",
                     "head_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model must be a multiple of n_heads (each head gets d_model / "
                             f"n_heads dimensions), got {self.d_model} and {self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def n_dims(self) -> int:
        return len(self.bins)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bins"] = list(self.bins)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ASMConfig":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class StateEncoder(nn.Module):
    """State -> M tokens: ``Linear(D, 2d) -> GELU -> Linear(2d, M*d)``, ``(B, D) -> (B, M, d)``."""

    def __init__(self, obs_dim: int, d_model: int, n_tokens: int):
        super().__init__()
        self.n_tokens, self.d_model = n_tokens, d_model
        self.net = nn.Sequential(nn.Linear(obs_dim, 2 * d_model), nn.GELU(),
                                 nn.Linear(2 * d_model, n_tokens * d_model))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).view(obs.shape[0], self.n_tokens, self.d_model)


class ActionTokens(nn.Module):
    """One embedding table per dimension, ``bins[i] + 1`` rows each: row ``bins[i]`` is that
    dimension's mask token. Stored as one table with per-dimension row offsets, so embedding a
    ``(B, N)`` tuple is a single lookup. ``(B, N)`` int64 -> ``(B, N, d)``."""

    def __init__(self, bins: Sequence[int], d_model: int):
        super().__init__()
        sizes = torch.tensor([b + 1 for b in bins])
        self.table = nn.Embedding(int(sizes.sum()), d_model)
        self.register_buffer("offsets", torch.cumsum(sizes, 0) - sizes, persistent=False)
        self.register_buffer("mask_ids", torch.tensor(list(bins)), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table(tokens + self.offsets)


class ActionStructureModel(nn.Module):
    """``f_ASM(s, a)``: state tokens + sub-action tokens through pre-LN Transformer blocks.

    - :meth:`forward` ``(obs (B, D), tokens (B, N))`` -> logits ``(B, N, max_bins)``: masked
      action modelling (a token equal to ``bins[i]`` is dimension i's mask token).
    - :meth:`encode` ``(obs, slot_inputs (B, N, d))`` -> contextual slot embeddings
      ``(B, N, d)``: the trunk alone, for any slot inputs (stage 2 passes learnt queries).
    """

    def __init__(self, config: ASMConfig):
        super().__init__()
        self.config = config
        c = config
        self.state_encoder = StateEncoder(c.obs_dim, c.d_model, c.n_state_tokens)
        self.action_tokens = ActionTokens(c.bins, c.d_model)
        self.blocks = nn.ModuleList(TransformerBlock(c.d_model, c.n_heads, c.ffn_mult, c.dropout)
                                    for _ in range(c.n_layers))
        self.heads = SlotHeads(c.bins, c.d_model, c.head_hidden, c.dropout)

    @property
    def mask_ids(self) -> torch.Tensor:
        """``(N,)`` the mask token of each dimension (== its bin count)."""
        return self.action_tokens.mask_ids

    def encode(self, obs: torch.Tensor, slot_inputs: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.state_encoder(obs), slot_inputs], dim=1)
        for block in self.blocks:
            x = block(x)
        return x[:, self.config.n_state_tokens:]

    def embed(self, obs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Contextual embeddings ``h_{a_i}`` of a (possibly masked) action tuple, ``(B, N, d)``."""
        return self.encode(obs, self.action_tokens(tokens))

    def forward(self, obs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.heads(self.embed(obs, tokens))


#: How :class:`QueriedTrunk` starts its queries (see :func:`initial_queries`).
QUERY_INITS = ("small", "normal", "mask")


def initial_queries(asm: ActionStructureModel, how: str) -> torch.Tensor:
    """The N starting queries, ``(N, d)``: ``small`` N(0, 0.02^2) (a common Transformer init,
    50x below the ASM's token embeddings: the frozen trunk then sees inputs unlike any it was
    trained on), ``normal`` N(0, 1) (the reference code's: the embeddings' scale) or ``mask``
    (the ASM's own mask-token embeddings: the trunk starts from the features of the fully
    masked tuple, i.e. its state-only prediction of the action)."""
    c = asm.config
    if how == "small":
        return torch.randn(c.n_dims, c.d_model) * 0.02
    if how == "normal":
        return torch.randn(c.n_dims, c.d_model)
    if how == "mask":
        with torch.no_grad():
            return asm.action_tokens(asm.mask_ids).detach().clone()
    raise ValueError(f"query_init must be one of {', '.join(QUERY_INITS)}, got {how!r}")


class QueriedTrunk(nn.Module):
    """``f_ASM(s, Q)`` with N learnable queries in place of the action tokens, plus new
    per-dimension heads: the probe (linear heads), SPIN's policy (frozen trunk) and SAINT's
    (the same network trained from scratch) are all this module.

    ``freeze=True`` stops gradients into the trunk (state encoder and blocks) and keeps it in
    eval mode (no dropout), whatever mode the module is put in, unless ``frozen_dropout``
    (the reference code's SPIN: its frozen trunk follows the module's mode, so its
    pre-training dropout stays on while the policy trains); only the queries and heads
    learn. The ASM's action tables and pre-training heads are not used.
    ``(B, D) -> logits (B, N, max_bins)``; :meth:`embeddings` gives ``z`` ``(B, N, d)``.
    """

    def __init__(self, asm: ActionStructureModel, *, freeze: bool, head_hidden: int | None = 128,
                 head_dropout: float = 0.0, query_init: str = "small",
                 frozen_dropout: bool = False):
        super().__init__()
        c = asm.config
        self.asm = asm
        self.frozen_eval = freeze and not frozen_dropout
        self.queries = nn.Parameter(initial_queries(asm, query_init))
        self.heads = SlotHeads(c.bins, c.d_model, head_hidden, head_dropout)
        if freeze:
            for p in asm.parameters():
                p.requires_grad_(False)
            if self.frozen_eval:
                asm.eval()

    def train(self, mode: bool = True) -> "QueriedTrunk":
        super().train(mode)
        if self.frozen_eval:
            self.asm.eval()
        return self

    def embeddings(self, obs: torch.Tensor) -> torch.Tensor:
        return self.asm.encode(obs, self.queries.expand(obs.shape[0], -1, -1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.heads(self.embeddings(obs))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
