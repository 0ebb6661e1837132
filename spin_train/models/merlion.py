"""MERLION's pseudometric-based action representations (Gu et al., section 4 and Algorithm 2).

A state-conditional action encoder ``phi(a; s) -> e`` (``(B, k)``) is trained so that l1
distances between the representations of two actions at one state match the estimated
pseudometric (equation 7)::

    d^(a_i, a_j | s) = | r_i - R^(s, e_j) |                                reward difference
                       + gamma W2( P^(. | s, e_i), P^(. | s, e_j) )        next-state distributions
                       + p 1[ G(a_j | s) / max_a G(a | s) < tau ]          a_j out of data (paper: <=)
    J(phi) = ( ||e_i - e_j||_1 - d^(a_i, a_j | s) )^2

with ``(s, a_i, r_i, s')`` from the dataset, ``a_j`` uniform over the joint action set and the
e's inside ``d^`` under stop-gradient (the paper's e-bar): the target is a constant for phi.
The reward model ``R^(s, e)``, the transition model ``P^(. | s, e)`` (a diagonal Gaussian over
``s'``) and the behaviour model ``G(a | s)`` have their own losses; the reward and transition
losses reach phi through ``e_i`` (the paper's ``J(R^, phi)``, ``J(P^, phi)``).

Choices where the paper is silent (its Figure 5, the architectures, is not in the text):
MLPs 2 x ``hidden`` with ReLU; actions enter phi as per-dimension one-hots; ``P^`` predicts
``s' - s``. ``transition_loss="mse"`` fits it by squared error as the paper writes,
so ``P^`` is a point prediction and W2 between two of them is the distance of the means;
``"gaussian"`` also predicts a log standard deviation, fitted by Gaussian negative
log-likelihood. The networks see the trainer's normalised observations and scaled rewards;
the distance ``d^`` is measured in the dataset's own units (raw observations and rewards, as
the paper's maze coordinates, so its ``p`` means what the paper's does) once
:meth:`PseudometricRepresentation.set_units` is given the normaliser's scale and the reward
scale; without it, in the learner's units.

The lookup ``g(e^) = argmin_a ||e^ - phi(a; s)||_1`` scores every joint action (equation 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spin_train.models.joint import JointActionSpace, JointHead
from spin_train.models.layers import mlp
from spin_train.models.support import in_support

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
#: How ``P^`` is fitted: squared error (the paper) or Gaussian negative log-likelihood.
TRANSITION_LOSSES = ("mse", "gaussian")


def w2_diagonal_gaussians(mean_a: torch.Tensor, std_a: torch.Tensor, mean_b: torch.Tensor,
                          std_b: torch.Tensor) -> torch.Tensor:
    """2-Wasserstein distance between diagonal Gaussians, ``(..., D)`` -> ``(...)``:
    ``sqrt(|mu_a - mu_b|^2 + |sigma_a - sigma_b|^2)`` (closed form: the covariances commute)."""
    sq = (mean_a - mean_b).pow(2).sum(-1) + (std_a - std_b).pow(2).sum(-1)
    return sq.clamp_min(1e-12).sqrt()


def out_of_distribution(log_probs: torch.Tensor, index: torch.Tensor,
                        threshold: float) -> torch.Tensor:
    """``I^(a | s) = 1[ G(a | s) / max_a' G(a' | s) < tau ]`` as float, ``(B,)``: not in
    :func:`~spin_train.models.support.in_support`, the ratio test discrete BCQ keeps actions
    by (the paper writes ``<=``; the two differ only at equality). ``log_probs`` ``(B, |A|)``
    are G's, ``index (B,)`` the joint actions asked about."""
    kept = in_support(log_probs, threshold).gather(1, index[:, None])[:, 0]
    return (~kept).float()


class PseudometricRepresentation(nn.Module):
    """phi, R^, P^ and G of Algorithm 2 and the pseudometric between actions they estimate."""

    def __init__(self, obs_dim: int, bins: tuple[int, ...], *, latent_dim: int,
                 penalty: float, ood_threshold: float, hidden: int = 256,
                 discount: float = 0.99, transition_loss: str):
        super().__init__()
        if transition_loss not in TRANSITION_LOSSES:
            raise ValueError(f"transition_loss must be one of {', '.join(TRANSITION_LOSSES)}, "
                             f"got {transition_loss!r}")
        self.space = JointActionSpace(bins)
        self.obs_dim, self.latent_dim = obs_dim, latent_dim
        self.discount, self.penalty, self.ood_threshold = discount, penalty, ood_threshold
        self.gaussian = transition_loss == "gaussian"
        self.encoder = mlp([obs_dim + self.space.feature_dim, hidden, hidden, latent_dim])
        self.reward_model = mlp([obs_dim + latent_dim, hidden, hidden, 1])
        self.transition_model = mlp([obs_dim + latent_dim, hidden, hidden,
                                     (2 if self.gaussian else 1) * obs_dim])
        self.behaviour_model = JointHead(obs_dim, self.space.size, hidden)
        # Learner units -> the distance's units (set_units): raw = normalised * std, r / scale.
        self.register_buffer("state_scale", torch.ones(obs_dim))
        self.register_buffer("reward_unscale", torch.ones(()))

    @torch.no_grad()
    def set_units(self, observation_std: torch.Tensor | None, reward_scale: float) -> None:
        """Measure ``d^`` in the dataset's units: next-state distances times the normaliser's
        ``observation_std (D,)`` (None: observations are not normalised), reward differences
        divided by the trainer's ``reward_scale``."""
        if observation_std is not None:
            self.state_scale.copy_(observation_std)
        self.reward_unscale.fill_(1.0 / reward_scale)

    def encode(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``phi(a; s)``: ``obs (B, D)``, ``actions (B, N)`` bin indices -> ``(B, k)``."""
        return self.encoder(torch.cat([obs, self.space.features(actions)], -1))

    def encode_all(self, obs: torch.Tensor) -> torch.Tensor:
        """``phi(a; s)`` of every joint action at every state, ``(B, |A|, k)``."""
        B, A = obs.shape[0], self.space.size
        rows = torch.cat([obs[:, None, :].expand(B, A, -1),
                          self.space.one_hot[None].expand(B, -1, -1)], -1)
        return self.encoder(rows)

    def predict_reward(self, obs: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``R^(s, e)``, ``(B,)``."""
        return self.reward_model(torch.cat([obs, latent], -1))[:, 0]

    def predict_next(self, obs: torch.Tensor,
                     latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``P^(. | s, e)``: mean and standard deviation of ``s'``, each ``(B, D)`` (the
        standard deviation is 0 for the squared-error model: a point prediction)."""
        out = self.transition_model(torch.cat([obs, latent], -1))
        if not self.gaussian:
            return obs + out, torch.zeros_like(out)
        delta, log_std = out.chunk(2, -1)
        return obs + delta, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()

    def behaviour_log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """``log G(a | s)`` of every joint action, ``(B, |A|)``."""
        return torch.log_softmax(self.behaviour_model(obs).float(), -1)

    @torch.no_grad()
    def target_distance(self, obs: torch.Tensor, reward_i: torch.Tensor, latent_i: torch.Tensor,
                        latent_j: torch.Tensor, index_j: torch.Tensor) -> torch.Tensor:
        """``d^(a_i, a_j | s)`` of equation 7 in the distance's units (:meth:`set_units`),
        ``(B,)``: a constant (no gradient anywhere)."""
        scale = self.state_scale
        mean_i, std_i = self.predict_next(obs, latent_i)
        mean_j, std_j = self.predict_next(obs, latent_j)
        ood = out_of_distribution(self.behaviour_log_probs(obs), index_j, self.ood_threshold)
        return ((reward_i - self.predict_reward(obs, latent_j)).abs() * self.reward_unscale
                + self.discount * w2_diagonal_gaussians(mean_i * scale, std_i * scale,
                                                        mean_j * scale, std_j * scale)
                + self.penalty * ood)

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
             next_obs: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Algorithm 2's four objectives on one batch, summed; and each of them (detached)."""
        index_i = self.space.encode(actions)
        index_j = self.space.sample(obs.shape[0], generator)
        latent_i = self.encode(obs, actions)
        latent_j = self.encode(obs, self.space.table[index_j])
        target = self.target_distance(obs, rewards, latent_i.detach(), latent_j.detach(),
                                      index_j)
        metric = ((latent_i - latent_j).abs().sum(-1) - target).pow(2).mean()
        mean, std = self.predict_next(obs, latent_i)
        if self.gaussian:
            transition = (0.5 * ((next_obs - mean) / std).pow(2) + std.log()).sum(-1).mean()
        else:
            transition = (next_obs - mean).pow(2).sum(-1).mean()
        reward = (self.predict_reward(obs, latent_i) - rewards).pow(2).mean()
        behaviour = F.cross_entropy(self.behaviour_model(obs).float(), index_i)
        stats = {"metric_loss": metric, "transition_loss": transition, "reward_loss": reward,
                 "behaviour_loss": behaviour, "target_distance": target.mean()}
        return (metric + transition + reward + behaviour,
                {k: v.detach() for k, v in stats.items()})

    @torch.no_grad()
    def nearest(self, obs: torch.Tensor, latent: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """``g(e^) = argmin_a ||e^ - phi(a; s)||_1``: joint indices ``(B,)`` for ``latent
        (B, k)``, scoring every action (``chunk`` states at a time bounds the memory)."""
        out = []
        for start in range(0, obs.shape[0], chunk):
            table = self.encode_all(obs[start:start + chunk]).float()
            out.append((table - latent[start:start + chunk, None, :]).abs().sum(-1).argmin(-1))
        return torch.cat(out)
