"""Discrete Batch-Constrained Q-learning (Fujimoto et al., 2019) over factored actions.

The actor is the generative model ``G`` (behaviour cloning, weight 1). A bin ``b`` of dimension
``i`` is allowed when ``G_i(b | s) / max_b' G_i(b' | s) >= threshold``; the critic bootstraps
from, and the policy acts with, the best allowed bin of each dimension (a per-dimension masked
max, exact for a factored critic):

    a'_i = argmax_{b allowed} mean_e Q_e,i(s', b)
    L_Q = E[ ( r + gamma (1 - term) min_e Q'_e(s', a') - Q_e(s, a) )^2 ]
    L_G = -E[ log G(a | s) ]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spin_train.algos.base import OfflineAlgorithm, OfflineOptions, Stats
from spin_train.data import Batch
from spin_train.options import option


@dataclass(kw_only=True)
class BCQThresholdOptions:
    """Discrete BCQ's support threshold, for bins (factored) and joint actions alike."""

    bcq_threshold: float = option(
        0.3, "discrete BCQ: keep bins (joint: actions) with pi(b)/max_b pi >= threshold")


def check_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"BCQ threshold must be in [0, 1], got {threshold}")
    return threshold


@dataclass(kw_only=True)
class BCQOptions(OfflineOptions, BCQThresholdOptions):
    pass


class BCQ(OfflineAlgorithm):
    name = "bcq"
    Options = BCQOptions

    def __init__(self, actor, obs_dim, bins, options: BCQOptions | None = None):
        super().__init__(actor, obs_dim, bins, options)
        self.threshold = check_threshold(self.options.bcq_threshold)

    def _allowed_argmax(self, obs: torch.Tensor) -> torch.Tensor:
        scores = self.q.per_bin(obs).float().mean(0).masked_fill(self.q.invalid, float("-inf"))
        return self.actor.constrained_argmax(obs, scores, self.threshold)

    def _next_value(self, next_obs, generator):
        return self.q_target(next_obs, self._allowed_argmax(next_obs)).float().min(0).values

    def actor_weights(self, obs: torch.Tensor, actions: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Behaviour cloning: every dataset action weighs 1, ``(B,)``."""
        return torch.ones(actions.shape[0], device=actions.device)

    def update(self, batch: Batch, generator: torch.Generator | None = None) -> Stats:
        stats = self._update_q(batch, generator)
        stats |= self._update_policy(batch.observations, batch.actions, None)
        self._soft_update_targets()
        return stats

    @torch.no_grad()
    def eval_actions(self, obs, generator=None) -> torch.Tensor:
        """Greedy: the best allowed bin of each dimension."""
        return self._allowed_argmax(obs)
