"""What every stage-2 objective shares: a factored critic ensemble with its target, the TD loss,
and the update/act/checkpoint interface the trainer drives."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch
from torch import nn

from spin_train.data import Batch
from spin_train.device import autocast
from spin_train.models.actors import Actor
from spin_train.models.critics import FactoredQ, soft_update

Stats = dict[str, torch.Tensor]


def td_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error of every ensemble member: ``q (E, B)`` vs ``target (B,)``."""
    return (q - target.unsqueeze(0)).pow(2).mean()


def weighted_log_likelihood(actor: Actor, obs: torch.Tensor, actions: torch.Tensor,
                            weights: torch.Tensor | None) -> torch.Tensor:
    """``-E[w(s, a) log pi(a | s)]``: the actor loss of IQL, AWAC (and BCQ's with w = 1)."""
    logp = actor.log_prob(obs, actions)
    return -(logp if weights is None else weights * logp).mean()


class Learner(nn.Module):
    """What the stage-2 trainer drives: :meth:`update` (one gradient step on a batch, returning
    device-tensor statistics: no host synchronisation), :meth:`eval_actions` and a checkpoint
    of weights and optimiser states. Optimisers are found as attributes."""

    name = "learner"

    def __init__(self) -> None:
        super().__init__()
        self._autocast = contextlib.nullcontext

    def use_autocast(self, device: torch.device, enabled: bool = True) -> None:
        """Run the forward passes of :meth:`update` under bf16 autocast on CUDA (backward
        passes stay outside it, as PyTorch recommends)."""
        self._autocast = lambda: autocast(device, enabled)

    @staticmethod
    def _step(optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """Backward and one optimiser step (called outside the autocast region)."""
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def update(self, batch: Batch, generator: torch.Generator | None = None) -> Stats:
        raise NotImplementedError

    @torch.no_grad()
    def eval_actions(self, obs: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions for evaluation, ``(B, N)`` bin indices."""
        raise NotImplementedError

    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.optim.Optimizer)}

    def full_state(self) -> dict[str, Any]:
        """Weights and optimiser states (plain tensors: loads with ``weights_only=True``)."""
        return {"modules": self.state_dict(),
                "optimisers": {k: o.state_dict() for k, o in self.optimisers().items()}}

    def load_full_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["modules"])
        for k, o in self.optimisers().items():
            o.load_state_dict(state["optimisers"][k])


class OfflineAlgorithm(Learner):
    """An actor, a factored critic ensemble ``Q`` and its Polyak-averaged target ``Q'``.

    Subclasses implement :meth:`update` and may override :meth:`eval_actions`.
    """

    name = "base"

    def __init__(self, actor: Actor, obs_dim: int, bins: tuple[int, ...], *, lr: float = 3e-4,
                 discount: float = 0.99, tau: float = 0.005, critic_hidden: int = 256,
                 ensemble: int = 2):
        super().__init__()
        self.actor = actor
        self.discount, self.tau, self.lr, self.critic_hidden = discount, tau, lr, critic_hidden
        self.q = FactoredQ(obs_dim, bins, critic_hidden, ensemble)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.actor_optimiser = torch.optim.Adam(actor.trainable_parameters(), lr=lr)
        self.q_optimiser = torch.optim.Adam(self.q.parameters(), lr=lr)

    def _soft_update_targets(self) -> None:
        soft_update(self.q_target, self.q, self.tau)

    def _next_value(self, next_obs: torch.Tensor,
                    generator: torch.Generator | None) -> torch.Tensor:
        """The objective's bootstrap value of ``s'``, ``(B,)`` (no gradient)."""
        raise NotImplementedError

    def _update_q(self, batch: Batch, generator: torch.Generator | None = None) -> Stats:
        """``L_Q = E[(r + gamma (1 - term) V'(s') - Q_e(s, a))^2]`` for every member e."""
        with self._autocast():
            with torch.no_grad():
                v_next = self._next_value(batch.next_observations, generator).float()
                target = batch.rewards + self.discount * batch.not_done * v_next
            q = self.q(batch.observations, batch.actions).float()
            loss = td_loss(q, target)
        self._step(self.q_optimiser, loss)
        return {"q_loss": loss.detach(), "q_mean": q.detach().mean()}

    def _update_policy(self, obs: torch.Tensor, actions: torch.Tensor,
                       weights: torch.Tensor | None) -> Stats:
        """``L_pi = -E[w(s, a) log pi(a | s)]`` (``weights=None``: behaviour cloning)."""
        with self._autocast():
            loss = weighted_log_likelihood(self.actor, obs, actions, weights)
        self._step(self.actor_optimiser, loss)
        stats = {"actor_loss": loss.detach()}
        if weights is not None:
            stats["adv_weight"] = weights.mean()
        return stats

    def actor_weights(self, obs: torch.Tensor, actions: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """``w(s, a) >= 0`` of the actor's weighted log-likelihood, ``(B,)``, as the current
        networks give it (Algorithm 2's ``w_Phi``)."""
        raise NotImplementedError

    @torch.no_grad()
    def eval_actions(self, obs: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions for evaluation ``(B, N)``: sampled from the actor by default."""
        return self.actor.sample(obs, generator)
