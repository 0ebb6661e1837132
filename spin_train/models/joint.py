"""The joint action set of a factored task, enumerated: what the MERLION paper's methods and its
discrete baselines (discrete BCQ, discrete CQL, BC over whole action tuples) work on.

A joint action is one bin per dimension, ``(N,)``; its index is the mixed-radix number with
dimension 0 most significant (``(a_0, ..., a_{N-1})`` -> ``sum_i a_i prod_{j > i} K_j``), so
the maze's on/off tuples count in binary. Enumerating is only possible for small sets: the maze
with 12 actuators has 2^12 = 4,096; humanoid at 3 bins has 3^21 (about 10^10) and is refused.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spin_train.models.layers import mlp

#: The largest joint action set the joint-action methods enumerate: 2^16. Their networks hold a
#: ``hidden x |A|`` output layer and the lookup scores every action per state, so memory and
#: time grow with |A|; the MERLION paper's tasks have 1,000-4,096 actions.
MAX_JOINT_ACTIONS = 65_536


def joint_size(bins: tuple[int, ...]) -> int:
    """``prod_i K_i``: how many joint actions the bins make."""
    return math.prod(int(b) for b in bins)


def check_enumerable(bins: tuple[int, ...], what: str = "this task",
                     limit: int = MAX_JOINT_ACTIONS) -> int:
    """The joint size, or a ``ValueError`` naming it when it exceeds ``limit``."""
    size = joint_size(bins)
    if size > limit:
        counts = sorted(set(bins))
        shape = (f"{counts[0]}^{len(bins)}" if len(counts) == 1
                 else " x ".join(str(b) for b in bins))
        raise ValueError(f"{what} has {shape} = {size:,} joint actions; the joint-action methods "
                         f"(merlion, joint) enumerate at most {limit:,}: use a factored actor "
                         f"(spin, saint, factored, autoregressive, distill)")
    return size


class JointActionSpace(nn.Module):
    """Index <-> tuple conversion and per-dimension one-hot features of every joint action.

    Buffers (not saved in checkpoints: they follow from ``bins``): ``radix (N,)``, ``table (A, N)``
    (every joint action, by index) and ``one_hot (A, sum K)``.
    """

    def __init__(self, bins: tuple[int, ...]):
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        self.size = check_enumerable(self.bins)
        radix = [math.prod(self.bins[i + 1:]) for i in range(len(self.bins))]
        self.register_buffer("radix", torch.tensor(radix, dtype=torch.long), persistent=False)
        table = self.decode(torch.arange(self.size))
        self.register_buffer("table", table, persistent=False)
        self.register_buffer("one_hot", self.features(table), persistent=False)

    @property
    def feature_dim(self) -> int:
        return sum(self.bins)

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` bin indices -> ``(B,)`` joint indices."""
        return (actions.long() * self.radix).sum(-1)

    def decode(self, index: torch.Tensor) -> torch.Tensor:
        """``(B,)`` joint indices -> ``(B, N)`` bin indices."""
        radix = self.radix.to(index.device)
        return torch.div(index.long()[:, None], radix, rounding_mode="floor") % torch.tensor(
            self.bins, device=index.device)

    def features(self, actions: torch.Tensor) -> torch.Tensor:
        """``(..., N)`` bin indices -> ``(..., sum K)`` float: one one-hot block per dimension."""
        return torch.cat([F.one_hot(actions[..., i].long(), k).float()
                          for i, k in enumerate(self.bins)], -1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` joint indices drawn uniformly, ``(n,)``."""
        return torch.randint(self.size, (n,), device=self.table.device, generator=generator)


class JointHead(nn.Module):
    """``MLP(D -> hidden -> hidden -> |A|)``: one output per joint action (Q-values or logits)."""

    def __init__(self, obs_dim: int, size: int, hidden: int = 256):
        super().__init__()
        self.net = mlp([obs_dim, hidden, hidden, size])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)
