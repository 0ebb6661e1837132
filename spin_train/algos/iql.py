"""Implicit Q-Learning (Kostrikov et al., 2021) with a factored critic ensemble.

    L_V = E[ L_2^tau( min_e Q'_e(s, a) - V(s) ) ]                    expectile tau
    L_Q = E[ ( r + gamma (1 - term) V(s') - Q_e(s, a) )^2 ]          every member e
    L_pi = -E[ min(exp(beta (min_e Q'_e(s, a) - V(s))), w_max) log pi(a | s) ]

L_V and L_Q do not involve the actor, so the critic can be fitted on its own first
(``critic_prefit`` steps, the learner's first phase): the actor's first step then sees the
advantages of a critic near its fixed point rather than of one still climbing toward it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from spin_train.algos.base import OfflineAlgorithm, OfflineOptions, Stats, WeightClipOptions
from spin_train.data import Batch, PhaseData
from spin_train.models.critics import ValueNet
from spin_train.options import option


@dataclass(kw_only=True)
class IQLOptions(OfflineOptions, WeightClipOptions):
    expectile: float = option(0.8, "IQL: expectile of the value regression")
    beta: float = option(3.0, "IQL: inverse temperature of the advantage weights")
    critic_prefit: int = option(
        0, "IQL: steps of V and Q alone before the first actor step (the critic's "
           "advantages settle before they weight the actor); 0: none")


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """``|tau - 1(u < 0)| u^2`` averaged: an asymmetric square pulling V toward an upper
    expectile of Q."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff.pow(2)).mean()


class IQL(OfflineAlgorithm):
    name = "iql"
    Options = IQLOptions

    def __init__(self, actor, obs_dim, bins, options: IQLOptions | None = None):
        super().__init__(actor, obs_dim, bins, options)
        o = self.options
        self.expectile, self.beta, self.max_weight = o.expectile, o.beta, o.max_weight
        self.v = ValueNet(obs_dim, self.critic_hidden)
        self.v_optimiser = torch.optim.Adam(self.v.parameters(), lr=self.lr)

    def first_phase(self, phase: PhaseData) -> dict[str, float | None]:
        """The actor's own first phase, then ``critic_prefit`` steps of ``_update_v`` and
        ``_update_q`` (with the target's Polyak update) on the run's batch size. Returns the
        prefit's seconds and the mean Q of its last batch (None without steps)."""
        metrics = super().first_phase(phase)
        started, stats = time.perf_counter(), None
        for _ in tqdm(range(self.options.critic_prefit), disable=not phase.progress,
                      desc="critic prefit", unit="step"):
            batch = phase.sample(phase.batch_size)
            _, stats = self._update_v(batch.observations, batch.actions)
            stats |= self._update_q(batch)
            self._soft_update_targets()
        if stats is None:
            return metrics
        return metrics | {"critic_prefit_s": time.perf_counter() - started,
                          "critic_prefit_q_mean": float(stats["q_mean"])}

    def _update_v(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        with self._autocast():
            with torch.no_grad():
                target_q = self.q_target(obs, actions).min(0).values
            adv = target_q.float() - self.v(obs).float()
            loss = expectile_loss(adv, self.expectile)
        self._step(self.v_optimiser, loss)
        return adv.detach(), {"v_loss": loss.detach()}

    def _next_value(self, next_obs, generator):
        return self.v(next_obs)

    def _weights(self, adv: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.beta * adv).clamp(max=self.max_weight)

    @torch.no_grad()
    def actor_weights(self, obs: torch.Tensor, actions: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """``min(exp(beta (min_e Q'_e(s, a) - V(s))), w_max)``, ``(B,)``."""
        return self._weights(self.q_target(obs, actions).min(0).values.float()
                             - self.v(obs).float())

    def update(self, batch: Batch, generator: torch.Generator | None = None) -> Stats:
        obs, actions = batch.observations, batch.actions
        adv, stats = self._update_v(obs, actions)
        stats |= self._update_q(batch)
        # The advantage of _update_v (before its V step), as in the reference algorithm.
        stats |= self._update_policy(obs, actions, self._weights(adv))
        self._soft_update_targets()
        return stats
