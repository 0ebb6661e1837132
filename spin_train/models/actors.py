"""Stage-2 actors behind one interface: SPIN and its baselines.

Every actor maps observations ``(B, D)`` to a distribution over joint actions ``(B, N)`` of bin
indices and offers:

- ``log_prob(obs, actions) -> (B,)``: ``log pi(a | s) = sum_i log pi_i(a_i | s, ...)``;
- ``sample(obs, generator) -> (B, N)`` and ``greedy(obs) -> (B, N)``;
- ``policy_probs(obs, generator) -> (B, N, K)``: per-dimension probabilities; the marginals for
  actors that factorise given the state, the conditionals along one sampled prefix for the
  autoregressive one (either way ``sum_i <probs_i, Q_i>`` is an unbiased estimate of
  ``E_{a ~ pi} sum_i Q_i(s, a_i)``, which is what a factored critic needs);
- ``constrained_argmax(obs, scores, threshold) -> (B, N)``: per dimension, the best-scoring bin
  among those with ``pi_i(b) / max_b pi_i(b) >= threshold`` (discrete BCQ's action selection).

The actors (``make_actor``):

- ``spin``: the frozen ASM trunk, N learnable queries, new per-dimension heads (Algorithm 2);
- ``saint``: the same network trained from scratch, nothing frozen;
- ``factored``: MLP 2x256 with independent per-dimension heads (F-IQL);
- ``autoregressive``: an LSTM over the dimensions in a fixed order (AR-IQL);
- ``distill``: SPIN-Distill (section 6.3), an attention-free MLP student that regresses the
  frozen ASM's contextual embeddings, then serves frozen as the feature extractor for new heads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from spin_train.models.asm import ActionStructureModel, ActionTokens, ASMConfig, QueriedTrunk
from spin_train.models.layers import PAD_LOGIT, SlotHeads, mlp, slot_log_probs
from spin_train.models.support import ratio_constrained_argmax
from spin_train.options import option

if TYPE_CHECKING:
    from spin_train.data import PhaseData

ACTORS = ("spin", "saint", "factored", "autoregressive", "distill")


@dataclass(kw_only=True)
class ActorOptions:
    """The actors' own settings (the others take their sizes from the ASM or REFERENCE)."""

    distill_steps: int = option(20_000, "distill: MSE steps of the student before the RL phase")
    d_model: int = option(256, "saint: Transformer width (spin/distill take the ASM's sizes)")
    n_heads: int = option(4, "saint: attention heads")
    n_layers: int = option(3, "saint: Transformer blocks")
    saint_dropout: float = option(
        0.0, "saint: dropout in its Transformer while it trains (0 = as SPIN's frozen trunk, "
             "which runs in eval mode; the reference code's SAINT: 0.1)")
    query_init: str = option(
        "small", "spin/saint: starting queries: small (N(0, 0.02^2)), normal (N(0, 1), the "
                 "reference code's) or mask (the ASM's mask-token embeddings)")
    head_dropout: float = option(
        0.0, "spin/saint: dropout in the per-dimension heads while training (the reference "
             "code's: 0.1)")
    trunk_dropout: bool = option(
        False, "spin: the frozen trunk keeps its pre-training dropout while the policy trains, "
               "as in the reference code (which leaves it in train mode); default: eval mode")

    def saint_config(self, obs_dim: int, bins: tuple[int, ...]) -> ASMConfig:
        """SAINT's Transformer sizes as an ASM config (which checks them)."""
        return ASMConfig(obs_dim=obs_dim, bins=bins, d_model=self.d_model,
                         n_heads=self.n_heads, n_layers=self.n_layers,
                         dropout=self.saint_dropout)


def _sample_bins(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Categorical samples per slot via Gumbel-max, ``(..., K)`` -> ``(...)`` (seedable)."""
    u = torch.rand(logits.shape, device=logits.device, generator=generator)
    u = u.clamp_(1e-12, 1.0 - 1e-7)  # keep both logs finite
    gumbel = -torch.log(-torch.log(u))
    return (logits.float() + gumbel).argmax(-1)


class Actor(nn.Module):
    """An actor whose dimensions are independent given the state: everything follows from
    ``logits(obs) -> (B, N, K)`` (padded bins carry :data:`PAD_LOGIT`)."""

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return slot_log_probs(self.logits(obs), actions).sum(-1)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return _sample_bins(self.logits(obs), generator)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits(obs).argmax(-1)

    def policy_probs(self, obs: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.softmax(self.logits(obs).float(), -1)

    def constrained_argmax(self, obs: torch.Tensor, scores: torch.Tensor,
                           threshold: float) -> torch.Tensor:
        return ratio_constrained_argmax(self.logits(obs), scores, threshold)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the RL objective's actor optimiser updates."""
        return [p for p in self.parameters() if p.requires_grad]

    def first_phase(self, phase: PhaseData, *, lr: float,
                    autocast: Callable) -> dict[str, float | None]:
        """The actor's training before RL on a fresh run (its metrics); none here."""
        return {}

    def end_first_phase(self) -> None:
        """Leave the actor as its first phase does (also after a resume); nothing here."""


class QueryActor(Actor):
    """``spin`` (frozen pre-trained trunk) and ``saint`` (fresh trunk, all trained): N queries
    through the Transformer, then per-dimension MLP heads (Linear(d,128)-GELU-Linear)."""

    def __init__(self, asm: ActionStructureModel, *, freeze: bool, head_hidden: int = 128,
                 query_init: str = ActorOptions.query_init,
                 head_dropout: float = ActorOptions.head_dropout,
                 trunk_dropout: bool = ActorOptions.trunk_dropout):
        super().__init__()
        self.net = QueriedTrunk(asm, freeze=freeze, head_hidden=head_hidden,
                                head_dropout=head_dropout, query_init=query_init,
                                frozen_dropout=trunk_dropout)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class FactoredActor(Actor):
    """F-IQL's actor: ``MLP(D -> 256 -> 256)`` then one linear head per dimension."""

    def __init__(self, obs_dim: int, bins: tuple[int, ...], hidden: int = 256):
        super().__init__()
        self.trunk = mlp([obs_dim, hidden, hidden], nn.ReLU)
        self.trunk.append(nn.ReLU())
        # Every head reads the same feature, so the N linear heads are one Linear(hidden, N*K)
        # (measured 10x cheaper than per-slot matmuls over a copied feature).
        self.n_dims, self.width = len(bins), max(bins)
        self.heads = nn.Linear(hidden, self.n_dims * self.width)
        valid = torch.arange(self.width)[None, :] < torch.tensor(bins)[:, None]
        self.register_buffer("invalid", ~valid, persistent=False)
        self.padded = min(bins) < self.width

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        logits = self.heads(self.trunk(obs)).view(obs.shape[0], self.n_dims, self.width)
        return logits.masked_fill(self.invalid, PAD_LOGIT) if self.padded else logits


class DistilledActor(Actor):
    """SPIN-Distill: ``g_phi(s) -> (B, N, d)`` (an MLP, no attention) regresses the frozen ASM's
    contextual embeddings, then is frozen and new per-dimension heads are trained on it.

    The teacher's embeddings are those of the fully masked action tuple,
    ``f_ASM(s, [MASK]_1..N)``: what the pre-trained ASM produces from the state alone. The
    distillation is the actor's :meth:`first_phase` (``steps`` MSE steps of :meth:`distill_loss`,
    its own Adam), then :meth:`freeze_student`; the RL objective trains the heads only.
    """

    def __init__(self, asm: ActionStructureModel, hidden: int = 512, head_hidden: int = 128,
                 steps: int = ActorOptions.distill_steps):
        super().__init__()
        self.steps = steps
        c = asm.config
        self.teacher = asm
        for p in asm.parameters():
            p.requires_grad_(False)
        asm.eval()
        self.n_dims, self.d_model = c.n_dims, c.d_model
        self.student = mlp([c.obs_dim, hidden, hidden, c.n_dims * c.d_model], nn.GELU)
        self.heads = SlotHeads(c.bins, c.d_model, head_hidden)

    def train(self, mode: bool = True) -> "DistilledActor":
        super().train(mode)
        self.teacher.eval()
        return self

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.student(obs).view(obs.shape[0], self.n_dims, self.d_model)

    @torch.no_grad()
    def teacher_features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.teacher.embed(obs, self.teacher.mask_ids.expand(obs.shape[0], -1))

    def distill_loss(self, obs: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.features(obs).float(), self.teacher_features(obs).float())

    def freeze_student(self) -> None:
        for p in self.student.parameters():
            p.requires_grad_(False)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The heads: the student trains in the first phase only, with its own optimiser."""
        return list(self.heads.parameters())

    def first_phase(self, phase: PhaseData, *, lr: float,
                    autocast: Callable) -> dict[str, float | None]:
        """SPIN-Distill's first phase: the student regresses the teacher's embeddings (MSE).
        Returns its wall-clock seconds and the MSE of its last step (None without steps)."""
        started = time.perf_counter()
        optimiser = torch.optim.Adam(self.student.parameters(), lr=lr)
        self.train()
        loss = None
        for _ in tqdm(range(self.steps), disable=not phase.progress, desc="distill", unit="step"):
            obs = phase.sample(phase.batch_size).observations
            with autocast():
                loss = self.distill_loss(obs)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        self.end_first_phase()
        last = None if loss is None else float(loss.detach())  # one host sync, after the loop
        return {"distill_s": time.perf_counter() - started, "distill_loss": last}

    def end_first_phase(self) -> None:
        self.freeze_student()

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.heads(self.features(obs))


class AutoregressiveActor(Actor):
    """AR-IQL's actor: ``pi(a|s) = prod_i pi_i(a_i | s, a_<i)`` in the fixed order 0..N-1.

    The state sets the LSTM's initial state (``MLP(D -> 256 -> 2*256)``); step i reads the
    embedding of ``a_{i-1}`` (a start token at i = 0; one table per dimension, like the ASM's)
    and a per-dimension head reads the LSTM output. Training uses teacher forcing (one LSTM
    call); acting decodes dimension by dimension.
    """

    def __init__(self, obs_dim: int, bins: tuple[int, ...], hidden: int = 256):
        super().__init__()
        self.bins, self.hidden = tuple(bins), hidden
        self.init = mlp([obs_dim, hidden, 2 * hidden], nn.ReLU)
        # Table i embeds a_{i-1} (one table per dimension, as in the ASM); table 0 is a
        # one-bin dimension whose only token is the start token.
        self.inputs = ActionTokens((1, *self.bins[:-1]), hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.heads = SlotHeads(self.bins, hidden, hidden=None)

    def _initial_state(self, obs: torch.Tensor):
        h, c = self.init(obs).chunk(2, -1)
        return h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()

    def _prev_tokens(self, actions: torch.Tensor) -> torch.Tensor:
        start = torch.zeros_like(actions[:, :1])  # dimension "-1" has one bin: the start token
        return torch.cat([start, actions[:, :-1]], 1)

    def logits(self, obs: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits ``(B, N, K)`` of ``pi_i(. | s, a_<i)`` for given actions."""
        if actions is None:
            raise TypeError("the autoregressive actor's logits depend on the previous "
                            "sub-actions: pass actions (teacher forcing)")
        out, _ = self.lstm(self.inputs(self._prev_tokens(actions)), self._initial_state(obs))
        return self.heads(out)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return slot_log_probs(self.logits(obs, actions), actions).sum(-1)

    def _decode(self, obs: torch.Tensor,
                choose: Callable[[int, torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor,
                                                                            torch.Tensor]:
        """Decode dimension by dimension; ``choose(i, logits_i (B, K)) -> (B,)`` picks a_i.
        Returns actions ``(B, N)`` and the per-step logits ``(B, N, K)``."""
        B, N = obs.shape[0], len(self.bins)
        state = self._initial_state(obs)
        prev = torch.zeros(B, 1, dtype=torch.long, device=obs.device)
        offsets = self.inputs.offsets
        actions, all_logits = [], []
        for i in range(N):
            x = self.inputs.table(prev + offsets[i])
            out, state = self.lstm(x, state)
            w, b = self.heads.out.weight[i], self.heads.out.bias[i]
            logits_i = out[:, 0] @ w + b
            logits_i = logits_i.masked_fill(self.heads.invalid[i], PAD_LOGIT)
            a_i = choose(i, logits_i)
            actions.append(a_i)
            all_logits.append(logits_i)
            prev = a_i.unsqueeze(1)
        return torch.stack(actions, 1), torch.stack(all_logits, 1)

    def sample(self, obs, generator=None):
        return self._decode(obs, lambda i, lg: _sample_bins(lg, generator))[0]

    def greedy(self, obs):
        return self._decode(obs, lambda i, lg: lg.argmax(-1))[0]

    def policy_probs(self, obs, generator=None):
        _, logits = self._decode(obs, lambda i, lg: _sample_bins(lg, generator))
        return torch.softmax(logits.float(), -1)

    def constrained_argmax(self, obs, scores, threshold):
        return self._decode(obs, lambda i, lg: ratio_constrained_argmax(lg, scores[:, i], threshold))[0]


def make_actor(kind: str, *, obs_dim: int, bins: tuple[int, ...],
               asm: ActionStructureModel | None = None,
               asm_config: ASMConfig | None = None,
               distill_steps: int = ActorOptions.distill_steps,
               query_init: str = ActorOptions.query_init,
               head_dropout: float = ActorOptions.head_dropout,
               trunk_dropout: bool = ActorOptions.trunk_dropout) -> Actor:
    """Build an actor. ``spin`` and ``distill`` need the pre-trained ``asm`` (frozen here);
    ``saint`` builds a fresh ASM from ``asm_config`` (same sizes as SPIN's by default).
    ``head_dropout`` applies to spin's and saint's heads, ``trunk_dropout`` to spin's frozen
    trunk (saint's trunk trains with its config's dropout)."""
    if kind not in ACTORS:
        raise ValueError(f"unknown actor {kind!r}: accepted {', '.join(ACTORS)}")
    if kind in ("spin", "distill") and asm is None:
        raise ValueError(f"the {kind} actor needs a pre-trained ASM (--asm)")
    if kind == "spin":
        return QueryActor(asm, freeze=True, query_init=query_init, head_dropout=head_dropout,
                          trunk_dropout=trunk_dropout)
    if kind == "distill":
        return DistilledActor(asm, steps=distill_steps)
    if kind == "saint":
        config = asm_config or ASMConfig(obs_dim=obs_dim, bins=bins)
        return QueryActor(ActionStructureModel(config), freeze=False, query_init=query_init,
                          head_dropout=head_dropout)
    if kind == "factored":
        return FactoredActor(obs_dim, bins)
    return AutoregressiveActor(obs_dim, bins)
