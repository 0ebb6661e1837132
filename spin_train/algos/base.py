"""What every stage-2 objective shares: a factored critic ensemble with its target, the TD loss,
and the update/act/checkpoint interface the trainer drives."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from spin_train.data import Batch, PhaseData
from spin_train.device import autocast
from spin_train.models.actors import Actor
from spin_train.models.critics import FactoredQ, soft_update
from spin_train.options import option

Stats = dict[str, torch.Tensor]


@dataclass(kw_only=True)
class CriticOptions:
    """What every stage-2 learner's critic and optimisers take (REFERENCE section 3)."""

    lr: float = option(3e-4, "Adam learning rate of every network")
    discount: float = option(0.99, "gamma; bootstrapping stops only at true terminations")
    tau: float = option(0.005, "Polyak rate of the target critics")
    critic_hidden: int = option(256, "width of the critic and value MLPs (2 hidden layers)")


@dataclass(kw_only=True)
class OfflineOptions(CriticOptions):
    """The factored actors' objectives: a critic ensemble."""

    ensemble: int = option(2, "critics in the ensemble (targets take their minimum)")


@dataclass(kw_only=True)
class WeightClipOptions:
    """Advantage-weighted regression's clamp (IQL, AWAC)."""

    max_weight: float = option(100.0, "IQL/AWAC: advantage weights are clamped here")


def td_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error of every ensemble member: ``q (E, B)`` vs ``target (B,)``."""
    return (q - target.unsqueeze(0)).pow(2).mean()


def weighted_log_likelihood(actor: Actor, obs: torch.Tensor, actions: torch.Tensor,
                            weights: torch.Tensor | None) -> torch.Tensor:
    """``-E[w(s, a) log pi(a | s)]``: the actor loss of IQL, AWAC (and BCQ's with w = 1)."""
    logp = actor.log_prob(obs, actions)
    return -(logp if weights is None else weights * logp).mean()


class UpdateCounter(nn.Module):
    """Updates done so far: saved with the weights (a resumed run goes on counting where it
    stopped) and mirrored on the host, so schedules read it without a device sync per step."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.value = 0

    def tick(self) -> int:
        """Count one update; returns the new count."""
        self.value += 1
        self.count.fill_(self.value)
        return self.value

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.value = int(self.count)


class Learner(nn.Module):
    """What the stage-2 trainer drives, in the order it calls them:

    - :meth:`set_data_scale`, always: the units of the data the learner sees;
    - :meth:`first_phase` once, on a fresh run, before any RL step: the method's own training
      before RL (SPIN-Distill's distillation, MERLION's representation);
    - :meth:`load_full_state` instead, on a resumed run (weights and optimiser states, and
      whatever the first phase left, e.g. frozen parts);
    - :meth:`update`: one gradient step on a batch, returning device-tensor statistics (no
      host synchronisation), and :meth:`eval_actions` at each evaluation.

    Optimisers are found as attributes. ``Options`` is the dataclass of the learner's
    hyperparameters: the run's config carries its fields under the same names.
    """

    name = "learner"
    Options: type = CriticOptions

    def __init__(self, options: Any = None) -> None:
        """``options``: an instance of ``self.Options`` (None: its defaults)."""
        super().__init__()
        self.options = options if options is not None else self.Options()
        self._autocast = contextlib.nullcontext

    def set_data_scale(self, observation_std: torch.Tensor | None, reward_scale: float) -> None:
        """How the learner's view relates to the dataset's units, before any phase (fresh or
        resumed run): observations were divided by ``observation_std (D,)`` (None: not
        normalised), rewards multiplied by ``reward_scale``. For settings stated in the
        dataset's units (MERLION's raw distances); nothing here."""

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

    def first_phase(self, phase: PhaseData) -> dict[str, float | None]:
        """Training before the RL steps, on a fresh run; returns the metrics it logs with the
        first evaluation (``<name>_s`` seconds count into the run's wall-clock). None here."""
        return {}

    def update(self, batch: Batch, generator: torch.Generator | None = None) -> Stats:
        raise NotImplementedError

    @torch.no_grad()
    def eval_actions(self, obs: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions for evaluation, ``(B, N)`` bin indices."""
        raise NotImplementedError

    def final_weights(self) -> dict[str, Any]:
        """What ``policy.pt`` holds: the learner's weights (plain tensors)."""
        return {"algo": self.state_dict()}

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
    Options: type = OfflineOptions

    def __init__(self, actor: Actor, obs_dim: int, bins: tuple[int, ...],
                 options: OfflineOptions | None = None):
        super().__init__(options)
        o = self.options
        self.actor = actor
        self.discount, self.tau, self.lr = o.discount, o.tau, o.lr
        self.critic_hidden = o.critic_hidden
        self.q = FactoredQ(obs_dim, bins, o.critic_hidden, o.ensemble)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.actor_optimiser = torch.optim.Adam(actor.trainable_parameters(), lr=o.lr)
        self.q_optimiser = torch.optim.Adam(self.q.parameters(), lr=o.lr)

    def first_phase(self, phase: PhaseData) -> dict[str, float | None]:
        """The actor's own phase (SPIN-Distill's distillation; none for the others)."""
        return self.actor.first_phase(phase, lr=self.lr, autocast=self._autocast)

    def final_weights(self) -> dict[str, Any]:
        """The learner's weights and, on their own, the actor's (what acting needs)."""
        return super().final_weights() | {"actor": self.actor.state_dict()}

    def load_full_state(self, state: dict[str, Any]) -> None:
        """A saved learner is past its first phase: the actor as that phase leaves it."""
        super().load_full_state(state)
        self.actor.end_first_phase()

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
