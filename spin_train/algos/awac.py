"""Advantage-Weighted Actor-Critic (Nair et al., 2020) with a factored critic ensemble.

With ``Q(s, a) = sum_i Q_i(s, a_i)`` the policy's value is ``V^pi(s) = sum_i <pi_i(s), Q_i(s)>``
(exact for actors that factorise given the state; along a sampled prefix for the
autoregressive actor, still unbiased):

    L_Q = E[ ( r + gamma (1 - term) min_e V^pi_e'(s') - Q_e(s, a) )^2 ]
    L_pi = -E[ min(exp((min_e Q_e(s, a) - min_e V^pi_e(s)) / lambda), w_max) log pi(a | s) ]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spin_train.algos.base import OfflineAlgorithm, OfflineOptions, Stats, WeightClipOptions
from spin_train.data import Batch
from spin_train.options import option


@dataclass(kw_only=True)
class AWACOptions(OfflineOptions, WeightClipOptions):
    awac_lambda: float = option(0.3, "AWAC: temperature lambda")


def policy_value(probs: torch.Tensor, per_bin: torch.Tensor) -> torch.Tensor:
    """``sum_i sum_b pi_i(b) Q_e,i(s, b)``: probs ``(B, N, K)``, per_bin ``(E, B, N, K)`` ->
    ``(E, B)``. Padded bins have probability 0."""
    return (probs.unsqueeze(0) * per_bin).sum((-1, -2))


class AWAC(OfflineAlgorithm):
    name = "awac"
    Options = AWACOptions

    def __init__(self, actor, obs_dim, bins, options: AWACOptions | None = None):
        super().__init__(actor, obs_dim, bins, options)
        self.lam, self.max_weight = self.options.awac_lambda, self.options.max_weight

    def _next_value(self, next_obs, generator):
        probs = self.actor.policy_probs(next_obs, generator)
        return policy_value(probs, self.q_target.per_bin(next_obs).float()).min(0).values

    @torch.no_grad()
    def actor_weights(self, obs: torch.Tensor, actions: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """``min(exp((min_e Q_e(s, a) - min_e V^pi_e(s)) / lambda), w_max)``, ``(B,)``."""
        per_bin = self.q.per_bin(obs).float()
        q_sa = self.q.gather(per_bin, actions).min(0).values
        v = policy_value(self.actor.policy_probs(obs, generator), per_bin).min(0).values
        return torch.exp((q_sa - v) / self.lam).clamp(max=self.max_weight)

    def update(self, batch: Batch, generator: torch.Generator | None = None) -> Stats:
        obs, actions = batch.observations, batch.actions
        stats = self._update_q(batch, generator)
        with self._autocast():
            weights = self.actor_weights(obs, actions, generator)
        stats |= self._update_policy(obs, actions, weights)
        self._soft_update_targets()
        return stats
