"""Factored critics: an ensemble of MLPs computed as batched matmuls.

``Q(s, a) = sum_i Q_i(s, a_i)``: each member outputs one value per (dimension, bin), so the
critic is linear in the sub-actions (what keeps maximisation and expectations over the joint
action space tractable) while the actor models their dependencies.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """E independent linear maps applied at once: ``(E, B, in) -> (E, B, out)`` (a ``(B, in)``
    input is shared by every member). Initialised like ``nn.Linear`` per member."""

    def __init__(self, ensemble: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(ensemble, in_features, out_features)
                                   .uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.weight.shape[0], -1, -1)
        return torch.baddbmm(self.bias, x, self.weight)


def ensemble_mlp(ensemble: int, sizes: list[int]) -> nn.Sequential:
    """``EnsembleLinear -> ReLU`` between sizes, no activation at the end."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(EnsembleLinear(ensemble, a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class FactoredQ(nn.Module):
    """An ensemble of E critics ``Q_e(s, .) -> (N, K)`` per-dimension, per-bin values.

    - ``per_bin(obs) -> (E, B, N, K)`` (padded bins hold 0 and are never selected: callers
      index real bins only or mask them);
    - ``forward(obs, actions) -> (E, B)``: ``sum_i Q_e,i(s, a_i)``.
    """

    def __init__(self, obs_dim: int, bins: tuple[int, ...], hidden: int = 256,
                 ensemble: int = 2):
        super().__init__()
        self.n_dims, self.width = len(bins), max(bins)
        self.net = ensemble_mlp(ensemble, [obs_dim, hidden, hidden, self.n_dims * self.width])
        valid = torch.arange(self.width)[None, :] < torch.tensor(bins)[:, None]
        self.register_buffer("invalid", ~valid, persistent=False)

    def per_bin(self, obs: torch.Tensor) -> torch.Tensor:
        q = self.net(obs)
        return q.view(q.shape[0], q.shape[1], self.n_dims, self.width)

    @staticmethod
    def gather(per_bin: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``sum_i Q_i(s, a_i)`` from ``(E, B, N, K)`` values and ``(B, N)`` actions -> (E, B)."""
        idx = actions.unsqueeze(0).unsqueeze(-1).expand(per_bin.shape[0], -1, -1, 1)
        return per_bin.gather(-1, idx).squeeze(-1).sum(-1)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.gather(self.per_bin(obs), actions)


class ValueNet(nn.Module):
    """``V(s)``: MLP ``D -> 256 -> 256 -> 1``, ``(B, D) -> (B,)``."""

    def __init__(self, obs_dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) target + tau source`` (fused over all tensors)."""
    t = list(target.parameters())
    torch._foreach_lerp_(t, list(source.parameters()), tau)
