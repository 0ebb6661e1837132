"""The MERLION paper's baselines on the enumerated joint action set (``--actor joint``): one
output per joint action, no factorisation, so they need ``|A| <= MAX_JOINT_ACTIONS``.

Discrete BCQ (Fujimoto et al., 2019, "Benchmarking batch deep RL algorithms"): a Q-network and
a behaviour model ``G`` over whole actions. Actions whose ``G(a | s) / max_a' G(a' | s)`` falls
below ``threshold`` are never chosen, in the target or when acting::

    A_tau(s) = {a : G(a | s) / max_a' G(a' | s) >= tau}
    a' = argmax_{a in A_tau(s')} Q(s', a)                           (double-DQN selection)
    L_Q = E[ Huber( r + gamma (1 - term) Q'(s', a') - Q(s, a) ) ]
    L_G = E[ -log G(a | s) ] + 0.01 E[ logits^2 ]                    (the authors' regulariser)

Discrete CQL (Kumar et al., 2020, CQL(H) on a DQN; ``--cql-td-loss huber`` and
``--cql-target-every K`` give the DQN recipe's Huber loss and hard target copies)::

    L_Q = E[ (r + gamma (1 - term) max_a' Q'(s', a') - Q(s, a))^2 ]
          + alpha E[ logsumexp_a Q(s, a) - Q(s, a_data) ]

with Q, and so the gap, in the critic's units: rewards times the trainer's reward scale (a
value of alpha stated for raw rewards is multiplied by that scale).

Behaviour cloning: ``L = E[ -log pi(a | s) ]`` over whole actions; acts with the mode.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from spin_train.algos.base import CriticOptions, Learner, Stats, UpdateCounter, td_loss
from spin_train.algos.bcq import BCQThresholdOptions, check_threshold
from spin_train.data import Batch
from spin_train.models.critics import soft_update
from spin_train.models.joint import JointActionSpace, JointHead
from spin_train.models.support import ratio_constrained_argmax
from spin_train.options import option


@dataclass(kw_only=True)
class CQLAlphaOptions:
    """CQL's conservative weight (discrete CQL, and MERLION's latent CQL)."""

    cql_alpha: float = option(
        0.5, "discrete CQL (joint): weight of the conservative penalty in the critic's "
             "scaled-reward units (a value for raw rewards times --reward-scale: 1/100 on "
             "the maze)")


def check_alpha(alpha: float) -> float:
    if alpha < 0:
        raise ValueError(f"CQL alpha must be >= 0, got {alpha}")
    return alpha


@dataclass(kw_only=True)
class DiscreteBCQOptions(CriticOptions, BCQThresholdOptions):
    pass


#: Discrete CQL's TD losses: squared error, or Huber as the DQN recipe CQL builds on.
TD_LOSSES = ("squared", "huber")


@dataclass(kw_only=True)
class DiscreteCQLOptions(CriticOptions, CQLAlphaOptions):
    cql_td_loss: str = option(
        "squared", "discrete CQL: TD loss, squared or huber (the DQN recipe's)")
    cql_target_every: int = option(
        0, "discrete CQL: copy Q into its target every this many steps (the DQN recipe's hard "
           "updates); 0: Polyak averaging at --tau")


class JointLearner(Learner):
    """Shared by the three: the joint action set and the obs -> |A| network shape."""

    def __init__(self, obs_dim: int, bins: tuple[int, ...], options: CriticOptions | None = None):
        super().__init__(options)
        o = self.options
        self.space = JointActionSpace(bins)
        self.obs_dim, self.hidden = obs_dim, o.critic_hidden
        self.lr, self.discount, self.tau = o.lr, o.discount, o.tau

    def _head(self) -> JointHead:
        return JointHead(self.obs_dim, self.space.size, self.hidden)



class JointQLearner(JointLearner):
    """A Q-network over joint actions with a Polyak-averaged target."""

    def __init__(self, obs_dim, bins, options: CriticOptions | None = None):
        super().__init__(obs_dim, bins, options)
        self.q = self._head()
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.q_optimiser = torch.optim.Adam(self.q.parameters(), lr=self.lr)

    def _best(self, obs: torch.Tensor) -> torch.Tensor:
        """The joint index acting picks, ``(B,)``: the argmax of Q, unless restricted."""
        return self.q(obs).float().argmax(-1)

    @torch.no_grad()
    def eval_actions(self, obs, generator=None) -> torch.Tensor:
        """Greedy in the (restricted) Q-values."""
        return self.space.table[self._best(obs)]


class DiscreteBCQ(JointQLearner):
    name = "bcq"
    Options = DiscreteBCQOptions

    def __init__(self, obs_dim, bins, options: DiscreteBCQOptions | None = None):
        super().__init__(obs_dim, bins, options)
        self.threshold = check_threshold(self.options.bcq_threshold)
        self.g = self._head()
        self.g_optimiser = torch.optim.Adam(self.g.parameters(), lr=self.lr)

    def _best(self, obs):
        """The best Q-value in ``A_tau(s)`` (the factored actors' ratio test, over joint
        actions)."""
        return ratio_constrained_argmax(self.g(obs), self.q(obs), self.threshold)

    def _update_q(self, batch: Batch, index: torch.Tensor) -> Stats:
        with self._autocast():
            with torch.no_grad():
                best = self._best(batch.next_observations)[:, None]
                q_next = self.q_target(batch.next_observations).float().gather(1, best)[:, 0]
                target = batch.rewards + self.discount * batch.not_done * q_next
            q = self.q(batch.observations).float().gather(1, index[:, None])[:, 0]
            loss = F.smooth_l1_loss(q, target)
        self._step(self.q_optimiser, loss)
        return {"q_loss": loss.detach(), "q_mean": q.detach().mean()}

    def _update_g(self, obs: torch.Tensor, index: torch.Tensor) -> Stats:
        with self._autocast():
            logits = self.g(obs).float()
            loss = F.cross_entropy(logits, index) + 0.01 * logits.pow(2).mean()
        self._step(self.g_optimiser, loss)
        return {"actor_loss": loss.detach()}

    def update(self, batch, generator=None) -> Stats:
        index = self.space.encode(batch.actions)
        stats = self._update_q(batch, index) | self._update_g(batch.observations, index)
        soft_update(self.q_target, self.q, self.tau)
        return stats


class DiscreteCQL(JointQLearner):
    name = "cql"
    Options = DiscreteCQLOptions

    def __init__(self, obs_dim, bins, options: DiscreteCQLOptions | None = None):
        super().__init__(obs_dim, bins, options)
        o = self.options
        if o.cql_td_loss not in TD_LOSSES or o.cql_target_every < 0:
            raise ValueError(f"need cql_td_loss in {', '.join(TD_LOSSES)} and cql_target_every "
                             f">= 0, got {o.cql_td_loss!r}, {o.cql_target_every}")
        self.alpha = check_alpha(o.cql_alpha)
        self.huber, self.target_every = o.cql_td_loss == "huber", o.cql_target_every
        self.updates = UpdateCounter()  # the hard-update clock

    def _update_target(self) -> None:
        """Polyak averaging, or every ``target_every`` updates a hard copy."""
        done = self.updates.tick()
        if not self.target_every:
            soft_update(self.q_target, self.q, self.tau)
        elif done % self.target_every == 0:
            self.q_target.load_state_dict(self.q.state_dict())

    def update(self, batch, generator=None) -> Stats:
        index = self.space.encode(batch.actions)
        with self._autocast():
            with torch.no_grad():
                q_next = self.q_target(batch.next_observations).float().amax(-1)
                target = batch.rewards + self.discount * batch.not_done * q_next
            q_all = self.q(batch.observations).float()
            q = q_all.gather(1, index[:, None])[:, 0]
            td = F.smooth_l1_loss(q, target) if self.huber else td_loss(q[None], target)
            gap = (torch.logsumexp(q_all, -1) - q).mean()
            loss = td + self.alpha * gap
        self._step(self.q_optimiser, loss)
        self._update_target()
        return {"q_loss": td.detach(), "q_mean": q.detach().mean(), "cql_gap": gap.detach()}


class JointBC(JointLearner):
    name = "bc"

    def __init__(self, obs_dim, bins, options: CriticOptions | None = None):
        super().__init__(obs_dim, bins, options)
        self.policy = self._head()
        self.actor_optimiser = torch.optim.Adam(self.policy.parameters(), lr=self.lr)

    def update(self, batch, generator=None) -> Stats:
        with self._autocast():
            loss = F.cross_entropy(self.policy(batch.observations).float(),
                                   self.space.encode(batch.actions))
        self._step(self.actor_optimiser, loss)
        return {"actor_loss": loss.detach()}

    @torch.no_grad()
    def eval_actions(self, obs, generator=None) -> torch.Tensor:
        """The most likely joint action."""
        return self.space.table[self.policy(obs).float().argmax(-1)]


JOINT_ALGORITHMS = {"bcq": DiscreteBCQ, "cql": DiscreteCQL, "bc": JointBC}
