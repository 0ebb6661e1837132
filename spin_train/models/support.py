"""The behaviour model's support: which choices a batch-constrained method may take.

One ratio test for every method that constrains itself to the data (discrete BCQ over bins or
joint actions, MERLION's out-of-distribution indicator): a choice is in the data's support when
``G(b | s) / max_b' G(b' | s) >= threshold``; at equality it is in, for every method.
"""

from __future__ import annotations

import torch


def in_support(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """``G(b | s) / max_b' G(b' | s) >= threshold`` over the last dimension, as a bool mask of
    ``logits``' shape (logits or log-probabilities: the ratio is the same)."""
    probs = torch.softmax(logits.float(), -1)
    return probs >= threshold * probs.amax(-1, keepdim=True)


def ratio_constrained_argmax(logits: torch.Tensor, scores: torch.Tensor,
                             threshold: float) -> torch.Tensor:
    """Best score among choices (last dimension) in the support (:func:`in_support`): discrete
    BCQ's action selection, per dimension or over joint actions."""
    return scores.float().masked_fill(~in_support(logits, threshold), float("-inf")).argmax(-1)
