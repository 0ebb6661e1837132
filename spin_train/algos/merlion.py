"""MERLION's two phases (Gu et al., Algorithms 1-2) behind the trainer's interface
(``--actor merlion --algo bcq|cql``).

Phase 1, the learner's :meth:`~MerlionLearner.first_phase`: ``merlion_steps`` steps of
:meth:`MerlionLearner.update_representation` (the pseudometric representation of
:mod:`spin_train.models.merlion`); then it is frozen and the box ``[low, high]`` spanned by the
dataset's representations bounds the latent actions.
Phase 2, :meth:`update`: an offline RL algorithm for continuous actions on ``(s, e = phi(a; s),
r, s')`` (Algorithm 1); acting maps the latent action to a real one with the lookup ``g``.

Latent BCQ (Fujimoto et al., 2019, continuous BCQ)::

    VAE:  L = |D(s, z) - e|^2 + 0.5 KL(N(mu, sigma) || N(0, I)),    (mu, sigma) = E(s, e)
    xi(s, e) = e + Phi (high - low) / 2 tanh(f(s, e)), clipped to the box
    e~' = xi'(s', D(s', z)) for n samples z
    y = r + gamma (1 - term) max_n [lam min_k Q'_k(s', e~') + (1 - lam) max_k Q'_k(s', e~')]
    L_Q = E[(y - Q_k(s, e))^2],   L_xi = -E[Q_1(s, xi(s, D(s, z)))]
    act: the best of 100 decoded-and-perturbed candidates by Q_1

Latent CQL (Kumar et al., 2020, CQL(H) on SAC; a tanh-Gaussian scaled to the box)::

    L_pi = E[alpha_H log pi(e~|s) - min_k Q_k(s, e~)],  alpha_H tuned to entropy -k
    L_Q = E[(r + gamma (1 - term) min_k Q'_k(s', e~') - Q_k(s, e))^2]
          + alpha E[ log sum_{e~ in uniform, pi(s), pi(s')} exp(Q_k(s, e~) - log q(e~))
                     - Q_k(s, e) ]             (10 samples of each proposal, importance-weighted)
    act: the policy's mean

(``alpha``: ``--merlion-cql-alpha``, in the critic's units: rewards times the trainer's reward
scale, so a value stated for raw rewards is multiplied by that scale.)
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from spin_train.algos.base import CriticOptions, Learner, Stats, UpdateCounter, td_loss
from spin_train.algos.joint import check_alpha
from spin_train.data import Batch, PhaseData
from spin_train.models.critics import ensemble_mlp, soft_update
from spin_train.models.layers import mlp
from spin_train.models.merlion import PseudometricRepresentation
from spin_train.options import option

#: Dataset pairs whose representations span the latent box of a MERLION policy.
BOX_SAMPLES = 20_000
#: Where MERLION's distance is measured: the dataset's raw units, or the learner's.
DISTANCE_UNITS = ("raw", "learner")


@dataclass(kw_only=True)
class MerlionOptions(CriticOptions):
    """MERLION's representation and its first phase (both latent algorithms)."""

    merlion_dim: int = option(2, "merlion: width k of the action representations")
    merlion_penalty: float = option(
        0.3, "merlion: distance p added for out-of-data actions, in the units of "
             "--merlion-units (the paper's maze: 0.01 on raw coordinates; with learner units "
             "0.01 let other actions crowd the data's)")
    merlion_threshold: float = option(
        0.3, "merlion: an action is out of data when G(a|s)/max G < this (as BCQ's test)")
    # The paper's settings are mse and raw; the defaults stay those the README's measurements
    # used until pipelines/merlion.yaml has measured the paper's (issue 24).
    merlion_transition_loss: str = option(
        "gaussian", "merlion: P^ fitted by squared error (mse: the paper) or Gaussian NLL")
    merlion_units: str = option(
        "learner", "merlion: the distance d^ (and p) in the dataset's raw observations and "
                   "rewards (raw: the paper's units) or in the learner's normalised/scaled ones")
    merlion_steps: int = option(10_000, "merlion: representation steps before the RL phase")
    merlion_batch: int = option(128, "merlion: transitions per representation step")
    # Adam as in the paper; its learning rate 1e-2 made phi diverge on the merlion maze
    # (l1 vs target correlation -0.04 after 2,000 steps; 0.85 at 1e-3), so 1e-3 by default.
    merlion_lr: float = option(
        1e-3, "merlion: Adam learning rate of the representation (the paper: 1e-2, which "
              "diverged here)")


@dataclass(kw_only=True)
class MerlionBCQOptions(MerlionOptions):
    merlion_prior_clip: float = option(
        0.5, "merlion bcq: the VAE's prior samples are clipped to +-this (the BCQ authors: "
             "0.5, near the behaviour's mean; wider lets the critic choose among its spread)")


@dataclass(kw_only=True)
class MerlionCQLOptions(MerlionOptions):
    merlion_cql_alpha: float = option(
        0.5, "merlion cql: weight of the conservative penalty, separate from discrete CQL's; "
             "in the critic's scaled-reward units (the paper's maze alpha on raw rewards, "
             "times --reward-scale: 1/100 on the maze)")
    merlion_cql_bc_steps: int = option(
        0, "merlion cql: the first N RL steps train the latent policy by behaviour cloning "
           "(log-likelihood of the data's phi(a; s), with the entropy term), the CQL authors' "
           "warm start; the critic trains throughout. 0: none")


class MerlionLearner(Learner):
    """The representation, its optimiser, the latent box, and acting through ``g``."""

    Options = MerlionOptions

    def __init__(self, obs_dim: int, bins: tuple[int, ...],
                 options: MerlionOptions | None = None):
        super().__init__(options)
        o = self.options
        if o.merlion_units not in DISTANCE_UNITS:
            raise ValueError(f"merlion_units must be one of {', '.join(DISTANCE_UNITS)}, got "
                             f"{o.merlion_units!r}")
        self.representation = PseudometricRepresentation(
            obs_dim, bins, latent_dim=o.merlion_dim, hidden=o.critic_hidden,
            discount=o.discount, penalty=o.merlion_penalty, ood_threshold=o.merlion_threshold,
            transition_loss=o.merlion_transition_loss)
        self.representation_optimiser = torch.optim.Adam(self.representation.parameters(),
                                                         lr=o.merlion_lr)
        self.obs_dim, self.latent_dim, self.hidden = obs_dim, o.merlion_dim, o.critic_hidden
        self.lr, self.discount, self.tau = o.lr, o.discount, o.tau
        self.register_buffer("low", torch.full((o.merlion_dim,), -1.0))
        self.register_buffer("high", torch.full((o.merlion_dim,), 1.0))

    def set_data_scale(self, observation_std: torch.Tensor | None, reward_scale: float) -> None:
        super().set_data_scale(observation_std, reward_scale)
        if self.options.merlion_units == "raw":
            self.representation.set_units(observation_std, reward_scale)

    # ------------------------------------------------------------------ phase 1
    def first_phase(self, phase: PhaseData) -> dict[str, float | None]:
        """Algorithm 2: ``merlion_steps`` steps of ``merlion_batch``, then phi is frozen and
        the latent box measured on :data:`BOX_SAMPLES` dataset pairs. Returns its seconds and
        its last summed loss."""
        started = time.perf_counter()
        self.train()
        stats = None
        for _ in tqdm(range(self.options.merlion_steps), disable=not phase.progress,
                      desc="merlion phi", unit="step"):
            stats = self.update_representation(phase.sample(self.options.merlion_batch),
                                               phase.generator)
        box = phase.sample(BOX_SAMPLES)
        self.freeze_representation(box.observations, box.actions)
        last = None if stats is None else float(sum(v for k, v in stats.items()
                                                    if k.endswith("_loss")))
        return {"representation_s": time.perf_counter() - started,
                "representation_loss": last}

    def load_full_state(self, state) -> None:
        """A saved learner is past its first phase: phi frozen, the box in its buffers."""
        super().load_full_state(state)
        self.freeze_representation()

    def update_representation(self, batch: Batch,
                              generator: torch.Generator | None = None) -> Stats:
        """One step of Algorithm 2 on a batch."""
        with self._autocast():
            loss, stats = self.representation.loss(batch.observations, batch.actions,
                                                   batch.rewards, batch.next_observations,
                                                   generator)
        self._step(self.representation_optimiser, loss)
        return stats

    @torch.no_grad()
    def freeze_representation(self, obs: torch.Tensor | None = None,
                              actions: torch.Tensor | None = None) -> None:
        """Freeze phi and, given dataset pairs, set the latent box to the range of their
        ``phi(a; s)`` (widened by 1e-3 so a degenerate dimension keeps a non-empty box)."""
        self.representation.requires_grad_(False)
        if obs is None or actions is None:  # a resumed run: the box came with the weights
            return
        latent = self.representation.encode(obs, actions).float()
        self.low.copy_(latent.amin(0) - 1e-3)
        self.high.copy_(latent.amax(0) + 1e-3)

    @property
    def _centre(self) -> torch.Tensor:
        return (self.high + self.low) / 2

    @property
    def _half(self) -> torch.Tensor:
        return (self.high - self.low) / 2

    @torch.no_grad()
    def latent(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``e = phi(a; s)`` from the frozen encoder, ``(B, k)`` float32."""
        return self.representation.encode(obs, actions).float()

    # ------------------------------------------------------------------ acting
    def latent_action(self, obs: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """The latent policy's action ``e^``, ``(B, k)``."""
        raise NotImplementedError

    @torch.no_grad()
    def critic_values(self, obs: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``min_k Q_k(s, e)`` of the twin critics, ``(B,)``: ``obs (B, D)``, ``latent (B, k)``."""
        return _q(self.critic, obs, latent).amin(0)

    @torch.no_grad()
    def eval_actions(self, obs, generator=None) -> torch.Tensor:
        """``g(e^)``: the joint action whose representation is nearest in l1, ``(B, N)``."""
        index = self.representation.nearest(obs, self.latent_action(obs, generator).float())
        return self.representation.space.table[index]


def _twin_critic(obs_dim: int, latent_dim: int, hidden: int) -> nn.Sequential:
    """Two Q-networks ``(s, e) -> (2, B, 1)`` computed as one batched MLP."""
    return ensemble_mlp(2, [obs_dim + latent_dim, hidden, hidden, 1])


def _q(critic: nn.Module, obs: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """``Q_k(s, e)`` of both members, ``(2, B)``."""
    return critic(torch.cat([obs, latent], -1))[..., 0].float()


class LatentVAE(nn.Module):
    """BCQ's generative model of the dataset's latent actions: ``E(s, e) -> (mu, sigma)``,
    ``D(s, z) -> e`` squashed into the box. Latent width ``2k`` (the BCQ authors' choice).
    Prior samples are clipped to ``+-prior_clip``: the authors' 0.5 keeps decodes near the
    behaviour's modes, but where the behaviour is broad (a factored policy over 4,096 maze
    actions) its latent "mode" is the mean move, which is short; a wider clip hands the critic
    the spread to choose from."""

    def __init__(self, obs_dim: int, latent_dim: int, hidden: int, prior_clip: float):
        super().__init__()
        self.z_dim, self.prior_clip = 2 * latent_dim, prior_clip
        self.encoder = mlp([obs_dim + latent_dim, hidden, hidden, 2 * self.z_dim])
        self.decoder = mlp([obs_dim + self.z_dim, hidden, hidden, latent_dim])

    def decode(self, obs, centre, half, z=None, generator=None) -> torch.Tensor:
        if z is None:  # the clipped prior
            z = torch.randn((obs.shape[0], self.z_dim), device=obs.device,
                            generator=generator).clamp(-self.prior_clip, self.prior_clip)
        return centre + half * torch.tanh(self.decoder(torch.cat([obs, z], -1)))

    def forward(self, obs, latent, centre, half, generator=None):
        mean, log_std = self.encoder(torch.cat([obs, latent], -1)).chunk(2, -1)
        std = log_std.clamp(-4, 15).exp()
        z = mean + std * torch.randn(mean.shape, device=mean.device, generator=generator)
        return self.decode(obs, centre, half, z), mean, std


class MerlionBCQ(MerlionLearner):
    name = "bcq"
    Options = MerlionBCQOptions

    def __init__(self, obs_dim, bins, options: MerlionBCQOptions | None = None, *,
                 lmbda: float = 0.75, perturbation: float = 0.05, samples: int = 10,
                 eval_samples: int = 100):
        super().__init__(obs_dim, bins, options)
        self.lmbda, self.perturbation = lmbda, perturbation
        self.samples, self.eval_samples = samples, eval_samples
        k, h = self.latent_dim, self.hidden
        self.vae = LatentVAE(obs_dim, k, h, self.options.merlion_prior_clip)
        self.perturb = mlp([obs_dim + k, h, h, k])
        self.perturb_target = copy.deepcopy(self.perturb).requires_grad_(False)
        self.critic = _twin_critic(obs_dim, k, h)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.vae_optimiser = torch.optim.Adam(self.vae.parameters(), lr=self.lr)
        self.actor_optimiser = torch.optim.Adam(self.perturb.parameters(), lr=self.lr)
        self.critic_optimiser = torch.optim.Adam(self.critic.parameters(), lr=self.lr)

    def _perturbed(self, net: nn.Module, obs: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``xi(s, e)``: a bounded nudge of a decoded action, kept inside the box."""
        nudge = self.perturbation * self._half * torch.tanh(net(torch.cat([obs, latent], -1)))
        return torch.maximum(torch.minimum(latent + nudge, self.high), self.low)

    def decode(self, obs: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """A VAE sample of the dataset's latent actions at each state (the clipped prior),
        ``(B, k)`` inside the box."""
        return self.vae.decode(obs, self._centre, self._half, generator=generator)

    def _candidates(self, net, obs, n, generator):
        """``n`` perturbed VAE samples per state: ``(B * n, D)`` states and ``(B * n, k)``."""
        rep = obs.repeat_interleave(n, 0)
        return rep, self._perturbed(net, rep, self.decode(rep, generator))

    def update_vae(self, batch: Batch, generator: torch.Generator | None = None) -> Stats:
        """One step of the VAE alone on a batch (diagnostics: the RL step trains it too)."""
        return self._update_vae(batch.observations,
                                self.latent(batch.observations, batch.actions), generator)

    def _update_vae(self, obs, latent, generator) -> Stats:
        with self._autocast():
            recon, mean, std = self.vae(obs, latent, self._centre, self._half, generator)
            kl = -0.5 * (1 + (std.pow(2)).log() - mean.pow(2) - std.pow(2)).mean()
            loss = (recon.float() - latent).pow(2).mean() + 0.5 * kl
        self._step(self.vae_optimiser, loss)
        return {"vae_loss": loss.detach()}

    def _update_q(self, batch: Batch, latent, generator) -> Stats:
        with self._autocast():
            with torch.no_grad():
                rep, cand = self._candidates(self.perturb_target, batch.next_observations,
                                             self.samples, generator)
                q = _q(self.critic_target, rep, cand)
                soft_min = self.lmbda * q.amin(0) + (1 - self.lmbda) * q.amax(0)
                v_next = soft_min.view(-1, self.samples).amax(-1)
                target = batch.rewards + self.discount * batch.not_done * v_next
            q = _q(self.critic, batch.observations, latent)
            loss = td_loss(q, target)
        self._step(self.critic_optimiser, loss)
        return {"q_loss": loss.detach(), "q_mean": q.detach().mean()}

    def _update_policy(self, obs, generator) -> Stats:
        with self._autocast():
            with torch.no_grad():
                decoded = self.decode(obs, generator)
            loss = -_q(self.critic, obs, self._perturbed(self.perturb, obs, decoded))[0].mean()
        self._step(self.actor_optimiser, loss)
        return {"actor_loss": loss.detach()}

    def update(self, batch, generator=None) -> Stats:
        latent = self.latent(batch.observations, batch.actions)
        stats = self._update_vae(batch.observations, latent, generator)
        stats |= self._update_q(batch, latent, generator)
        stats |= self._update_policy(batch.observations, generator)
        soft_update(self.critic_target, self.critic, self.tau)
        soft_update(self.perturb_target, self.perturb, self.tau)
        return stats

    @torch.no_grad()
    def latent_action(self, obs, generator=None) -> torch.Tensor:
        rep, cand = self._candidates(self.perturb, obs, self.eval_samples, generator)
        best = _q(self.critic, rep, cand)[0].view(-1, self.eval_samples).argmax(-1)
        return cand.view(obs.shape[0], self.eval_samples, -1)[torch.arange(obs.shape[0]), best]


class MerlionCQL(MerlionLearner):
    name = "cql"
    Options = MerlionCQLOptions

    def __init__(self, obs_dim, bins, options: MerlionCQLOptions | None = None, *,
                 samples: int = 10):
        super().__init__(obs_dim, bins, options)
        self.alpha, self.samples = check_alpha(self.options.merlion_cql_alpha), samples
        self.bc_steps = self.options.merlion_cql_bc_steps
        self.updates = UpdateCounter()  # when the BC warm start ends
        k, h = self.latent_dim, self.hidden
        self.policy = mlp([obs_dim, h, h, 2 * k])
        self.critic = _twin_critic(obs_dim, k, h)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_entropy_alpha = nn.Parameter(torch.zeros(()))
        self.target_entropy = -float(k)
        self.actor_optimiser = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        self.critic_optimiser = torch.optim.Adam(self.critic.parameters(), lr=self.lr)
        self.entropy_optimiser = torch.optim.Adam([self.log_entropy_alpha], lr=self.lr)

    def _gaussian(self, obs) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's pre-tanh mean and std, ``(B, k)`` each."""
        mean, log_std = self.policy(obs).float().chunk(2, -1)
        return mean, log_std.clamp(-5, 2).exp()

    def _log_density(self, noise, std, squashed) -> torch.Tensor:
        """Log-density in the box of ``centre + half * squashed``, ``squashed = tanh(mean +
        std * noise)``, ``(B,)``: the Gaussian's, the tanh's and the box scaling's Jacobians."""
        return (-0.5 * noise.pow(2) - std.log() - 0.5 * math.log(2 * math.pi)
                - torch.log1p(-squashed.pow(2) + 1e-6) - self._half.log()).sum(-1)

    def _sample(self, obs, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised tanh-Gaussian sample in the box and its log-density, ``(B, k)``
        and ``(B,)``."""
        mean, std = self._gaussian(obs)
        noise = torch.randn(mean.shape, device=mean.device, generator=generator)
        squashed = torch.tanh(mean + std * noise)
        return self._centre + self._half * squashed, self._log_density(noise, std, squashed)

    def log_prob(self, obs, latent) -> torch.Tensor:
        """``log pi(e | s)`` of latents ``(B, k)`` (clipped just inside the box: the box was
        measured on a sample of the data, so a data latent can sit on or past its edge)."""
        mean, std = self._gaussian(obs)
        squashed = ((latent - self._centre) / self._half).clamp(-1 + 1e-4, 1 - 1e-4)
        return self._log_density((torch.atanh(squashed) - mean) / std, std, squashed)

    def _update_policy(self, obs, generator, latent=None) -> Stats:
        """SAC's actor step on ``min_k Q_k``, or with ``latent`` (the data's ``phi(a; s)``) the
        BC warm start: ``alpha log pi(e~|s) - log pi(e_data|s)``."""
        with self._autocast():
            sampled, logp = self._sample(obs, generator)
            ent_alpha = self.log_entropy_alpha.exp().detach()
            fit = (_q(self.critic, obs, sampled).amin(0) if latent is None
                   else self.log_prob(obs, latent))
            loss = (ent_alpha * logp - fit).mean()
        self._step(self.actor_optimiser, loss)
        # SAC's target -k is for actions in [-1, 1]^k: it is applied to the density in those
        # coordinates (logp + sum log half), so that it does not depend on the box's size. On
        # the box's own density, a box narrower than 2 x e^-1 per side could not reach it and
        # alpha grew without bound; a wide one (raw units) made the policy near-deterministic.
        unit_logp = logp.detach() + self._half.log().sum()
        alpha_loss = -(self.log_entropy_alpha * (unit_logp + self.target_entropy)).mean()
        self._step(self.entropy_optimiser, alpha_loss)
        return {"actor_loss": loss.detach(), "entropy_alpha": ent_alpha}

    def _conservative_gap(self, obs, next_obs, q_data, generator) -> torch.Tensor:
        """``log sum exp`` of Q over uniform, pi(s) and pi(s') proposals (each importance
        weighted by its density) minus Q on the data, averaged over members and states."""
        n, B = self.samples, obs.shape[0]
        rep, rep_next = obs.repeat_interleave(n, 0), next_obs.repeat_interleave(n, 0)
        with torch.no_grad():
            uniform = self.low + (self.high - self.low) * torch.rand(
                (B * n, self.latent_dim), device=obs.device, generator=generator)
            uniform_logp = -(self.high - self.low).log().sum()
            current, current_logp = self._sample(rep, generator)
            following, following_logp = self._sample(rep_next, generator)
        parts = [(_q(self.critic, rep, uniform) - uniform_logp),
                 (_q(self.critic, rep, current) - current_logp),
                 (_q(self.critic, rep, following) - following_logp)]
        stacked = torch.cat([p.view(2, B, n) for p in parts], -1)
        return (torch.logsumexp(stacked, -1) - q_data).mean()

    def _update_q(self, batch: Batch, latent, generator) -> Stats:
        with self._autocast():
            with torch.no_grad():
                next_latent, _ = self._sample(batch.next_observations, generator)
                v_next = _q(self.critic_target, batch.next_observations, next_latent).amin(0)
                target = batch.rewards + self.discount * batch.not_done * v_next
            q = _q(self.critic, batch.observations, latent)
            td = td_loss(q, target)
            gap = self._conservative_gap(batch.observations, batch.next_observations, q,
                                         generator)
            loss = td + self.alpha * gap
        self._step(self.critic_optimiser, loss)
        return {"q_loss": td.detach(), "q_mean": q.detach().mean(), "cql_gap": gap.detach()}

    def update(self, batch, generator=None) -> Stats:
        latent = self.latent(batch.observations, batch.actions)
        warm_start = self.updates.tick() <= self.bc_steps
        stats = self._update_policy(batch.observations, generator,
                                    latent if warm_start else None)
        stats |= self._update_q(batch, latent, generator)
        soft_update(self.critic_target, self.critic, self.tau)
        return stats

    @torch.no_grad()
    def latent_action(self, obs, generator=None) -> torch.Tensor:
        mean, _ = self.policy(obs).float().chunk(2, -1)
        return self._centre + self._half * torch.tanh(mean)


MERLION_ALGORITHMS = {"bcq": MerlionBCQ, "cql": MerlionCQL}
