"""Stage-1 pre-training objectives for the Action Structure Model (SPIN section 4.1, App. C).

Each objective is an ``nn.Module`` holding only its own extra parameters (the ASM is passed in),
with ``loss(asm, obs, actions, generator) -> (loss, stats)``; ``stats`` are 0-d tensors left on
the device (the trainer reads them every few steps, never per step). Shapes: ``obs (B, D)``
float, ``actions (B, N)`` int64 bin indices.

- ``mam`` Masked Action Modelling, SPIN's objective (Algorithm 1).
- ``vam`` Variational Action Modelling: ELBO with a Gaussian latent from the pooled slot
  embeddings, decoded with the state by per-dimension heads.
- ``cam`` Contrastive Action Modelling: local-to-global InfoNCE between each slot and the mean
  of the others, negatives from the other tuples of the batch.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from spin_train.models.asm import ActionStructureModel
from spin_train.models.layers import SlotHeads, mlp

Stats = dict[str, torch.Tensor]


def mask_actions(actions: torch.Tensor, bins: torch.Tensor, generator: torch.Generator,
                 select_prob: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style corruption of action tuples.

    Each (row, dimension) is selected with probability ``select_prob`` (at least one per batch);
    a selected token becomes the dimension's mask token (80%), a uniform random bin (10%) or
    stays (10%). Returns ``(tokens, selected)``, both ``(B, N)``. No host synchronisation.
    """
    B, N = actions.shape
    dev = actions.device
    selected = torch.rand(B, N, device=dev, generator=generator) < select_prob
    # Force one selection when the batch drew none, without asking the host whether it did.
    forced = torch.randint(0, B * N, (1,), device=dev, generator=generator)
    flat = selected.view(-1)
    flat.index_put_((forced,), flat[forced] | ~selected.any())
    u = torch.rand(B, N, device=dev, generator=generator)
    random_bins = (torch.rand(B, N, device=dev, generator=generator) * bins).long()
    tokens = torch.where(selected & (u < 0.9), random_bins, actions)
    tokens = torch.where(selected & (u < 0.8), bins.expand(B, N), tokens)
    return tokens, selected


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum().clamp(min=1)


def all_masked_logits(asm: ActionStructureModel, obs: torch.Tensor) -> torch.Tensor:
    """Logits ``(B, N, K)`` of every dimension with the whole tuple masked: the ASM's prediction
    of a dataset action from the state alone."""
    return asm(obs, asm.mask_ids.expand(obs.shape[0], -1))


class MaskedActionModelling(nn.Module):
    """``L = E[ sum_{i in M} CE(f_i(h_{a_i}), a_i) ]`` averaged over the selected tokens."""

    name = "mam"
    monitor = ("val_exact_match", "max")

    def __init__(self, asm: ActionStructureModel, select_prob: float = 0.15):
        super().__init__()
        if not 0.0 < select_prob <= 1.0:
            raise ValueError(f"select_prob must be in (0, 1], got {select_prob}")
        self.select_prob = select_prob

    def loss(self, asm, obs, actions, generator) -> tuple[torch.Tensor, Stats]:
        tokens, selected = mask_actions(actions, asm.mask_ids, generator, self.select_prob)
        logits = asm(obs, tokens).float()
        ce = F.cross_entropy(logits.transpose(1, 2), actions, reduction="none")  # (B, N)
        w = selected.float()
        loss = _masked_mean(ce, w)
        acc = _masked_mean((logits.argmax(-1) == actions).float(), w)
        return loss, {"loss": loss.detach(), "masked_acc": acc}

    def predict(self, asm, obs) -> torch.Tensor:
        return all_masked_logits(asm, obs)


class VariationalActionModelling(nn.Module):
    """ELBO: ``E_q[ 1/N sum_i log p(a_i | s, z) ] - beta KL(q(z | s, a) || N(0, I))``.

    ``q`` pools the ASM's slot embeddings of the clean tuple into a diagonal Gaussian; the
    decoder's per-dimension heads read ``[z, mean state token]``.
    """

    name = "vam"
    monitor = ("val_exact_match", "max")

    def __init__(self, asm: ActionStructureModel, latent_dim: int = 32, beta: float = 0.1):
        super().__init__()
        if latent_dim < 1 or beta < 0:
            raise ValueError(f"need latent_dim >= 1 and beta >= 0, got {latent_dim}, {beta}")
        c = asm.config
        self.latent_dim, self.beta = latent_dim, beta
        self.posterior = nn.Linear(c.d_model, 2 * latent_dim)
        self.decoder = SlotHeads(c.bins, latent_dim + c.d_model, c.head_hidden, c.dropout)

    def _decode(self, asm, obs, z) -> torch.Tensor:
        state = asm.state_encoder(obs).mean(1)
        x = torch.cat([z, state], -1).unsqueeze(1).expand(-1, asm.config.n_dims, -1)
        return self.decoder(x)

    def loss(self, asm, obs, actions, generator) -> tuple[torch.Tensor, Stats]:
        pooled = asm.embed(obs, actions).mean(1)
        mu, logvar = self.posterior(pooled).float().chunk(2, -1)
        eps = torch.randn(mu.shape, device=mu.device, generator=generator)
        z = mu + eps * torch.exp(0.5 * logvar)
        logits = self._decode(asm, obs, z.to(pooled.dtype)).float()
        recon = F.cross_entropy(logits.transpose(1, 2), actions, reduction="none").mean()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
        loss = recon + self.beta * kl
        acc = (logits.argmax(-1) == actions).float().mean()
        return loss, {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach(),
                      "masked_acc": acc}

    def predict(self, asm, obs) -> torch.Tensor:
        """From the state alone: the decoder at the prior's mean ``z = 0``."""
        z = torch.zeros(obs.shape[0], self.latent_dim, device=obs.device)
        return self._decode(asm, obs, z)


class ContrastiveActionModelling(nn.Module):
    """Local-to-global InfoNCE: slot ``h_i`` against the mean of the other slots, temperature
    ``tau``; the other tuples of the batch give the negatives. Averaged over slots."""

    name = "cam"
    monitor = ("val_loss", "min")

    def __init__(self, asm: ActionStructureModel, temperature: float = 0.1, proj_dim: int = 128):
        super().__init__()
        c = asm.config
        if c.n_dims < 2:
            raise ValueError("the contrastive objective needs at least 2 sub-action dimensions")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.g_tok = mlp([c.d_model, c.d_model, proj_dim], nn.GELU)
        self.g_ctx = mlp([c.d_model, c.d_model, proj_dim], nn.GELU)

    def loss(self, asm, obs, actions, generator) -> tuple[torch.Tensor, Stats]:
        h = asm.embed(obs, actions)  # (B, N, d)
        N = h.shape[1]
        ctx = (h.sum(1, keepdim=True) - h) / (N - 1)
        q = F.normalize(self.g_tok(h).float(), dim=-1)
        k = F.normalize(self.g_ctx(ctx).float(), dim=-1)
        logits = torch.einsum("bnd,cnd->nbc", q, k) / self.temperature  # (N, B, B)
        target = torch.arange(h.shape[0], device=h.device).expand(N, -1)
        loss = F.cross_entropy(logits.transpose(1, 2), target)
        acc = (logits.argmax(-1) == target).float().mean()
        return loss, {"loss": loss.detach(), "match_acc": acc}

    predict = None  # CAM has no action predictor: validation monitors its loss


OBJECTIVES: dict[str, Callable[..., nn.Module]] = {
    "mam": MaskedActionModelling,
    "vam": VariationalActionModelling,
    "cam": ContrastiveActionModelling,
}


def make_objective(name: str, asm: ActionStructureModel, **kwargs) -> nn.Module:
    """The objective called ``name`` (``mam``, ``vam`` or ``cam``)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}: accepted {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name](asm, **kwargs)
