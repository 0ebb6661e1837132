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

import torch

from spin_train.algos.base import OfflineAlgorithm, Stats, td_loss, weighted_log_likelihood
from spin_train.data import Batch


class BCQ(OfflineAlgorithm):
    name = "bcq"
    eval_mode = "greedy"

    def __init__(self, actor, obs_dim, bins, *, threshold: float = 0.3, **common):
        super().__init__(actor, obs_dim, bins, **common)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"BCQ threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold

    def _allowed_argmax(self, obs: torch.Tensor) -> torch.Tensor:
        scores = self.q.per_bin(obs).float().mean(0).masked_fill(self.q.invalid, float("-inf"))
        return self.actor.constrained_argmax(obs, scores, self.threshold)

    def _update_q(self, batch: Batch, obs, next_obs) -> Stats:
        with self._autocast():
            with torch.no_grad():
                next_actions = self._allowed_argmax(next_obs)
                v_next = self.q_target(next_obs, next_actions).float().min(0).values
                target = batch.rewards + self.discount * batch.not_done * v_next
            q = self.q(obs, batch.actions).float()
            loss = td_loss(q, target)
        self._step(self.q_optimiser, loss)
        return {"q_loss": loss.detach(), "q_mean": q.detach().mean()}

    def actor_weights(self, obs: torch.Tensor, actions: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Behaviour cloning: every dataset action weighs 1, ``(B,)``."""
        return torch.ones(actions.shape[0], device=actions.device)

    def _update_policy(self, obs, actions) -> Stats:
        with self._autocast():
            loss = weighted_log_likelihood(self.actor, obs, actions, None)
        self._step(self.actor_optimiser, loss)
        return {"actor_loss": loss.detach()}

    def update(self, batch: Batch, generator: torch.Generator | None = None) -> Stats:
        obs, next_obs = batch.observations, batch.next_observations
        stats = self._update_q(batch, obs, next_obs)
        stats |= self._update_policy(obs, batch.actions)
        self._soft_update_targets()
        return stats

    @torch.no_grad()
    def eval_actions(self, obs, generator=None) -> torch.Tensor:
        """Greedy: the best allowed bin of each dimension."""
        return self._allowed_argmax(obs)
