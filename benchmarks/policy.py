"""SPIN stage 2 (IQL on the frozen ASM): gradient steps/s of spin's IQL stage with the ``spin``
and the ``factored`` (F-IQL) actors against the public SPIN reference implementation's IQL
loop, same machine, same sizes.

The reference code cannot be fetched or run here, so its IQL loop is REBUILT below from its
description (``/work/shared/REFERENCE.md`` section 3) the way a typical research implementation
of that description is written, not as a straw man:

  - SPIN actor: the frozen Transformer (``nn.TransformerEncoder`` of
    ``nn.TransformerEncoderLayer(d, 4 heads, dim_feedforward=2d, dropout=0.1, gelu,
    batch_first=True, norm_first=True)``, no final norm) with its state MLP ``Linear(D, 2d) ->
    GELU -> Linear(2d, d)``, frozen with ``requires_grad_(False)`` and kept in eval mode (no
    dropout: the same computation as spin's frozen trunk); N learnable query vectors in place of
    the action tokens; an ``nn.ModuleList`` of N heads ``Linear(d, 128) -> GELU -> Linear(128,
    bins)`` applied in a Python loop over dimensions; ``log_softmax`` per dimension, the log
    probability of the taken bin gathered per dimension and summed;
  - F-IQL actor: MLP ``D -> 256 -> 256`` (ReLU) and an ``nn.ModuleList`` of N ``Linear(256,
    bins)`` heads in a Python loop;
  - critics: 2 separate MLP modules ``D -> 256 -> 256 -> N*bins`` (ReLU), each a
    ``deepcopy``'d target; ``Q(s, a) = sum_i Q_i(s, a_i)`` (gather on the ``(B, N, bins)``
    view); the V and actor targets take the minimum of the 2 target critics; value net ``D ->
    256 -> 256 -> 1``;
  - IQL: expectile 0.8 on ``min Q'(s, a) - V(s)``; TD target ``r + 0.99 nd V(s')`` for both
    critics (mean of their MSEs); actor loss ``-E[min(exp(3 A), 100) log pi(a|s)]`` with the
    advantage of the V step; Polyak 0.005 as a Python loop over parameter pairs
    (``tp.data.copy_(tau * p.data + (1 - tau) * tp.data)``); Adam 3e-4 for every network
    (actor: its trainable parameters only); batch 256; float32 throughout (the reference has
    no mixed precision);
  - data: the whole dataset preloaded as tensors (s, a, r, s', not_done) on the device, batches
    drawn with ``torch.randint`` on the device (as the reference does);
  - the three losses read with ``.item()`` every step for logging, at the end of the step (one
    host synchronisation per step). ASSUMPTION: typical of research loops, not stated in
    REFERENCE; the rows "no per-step .item()" drop it, so the reader sees how much of the gap is
    host-device synchronisation (nothing, on a CPU).

spin's side times exactly what ``spin-train policy`` runs per step (``train_policy()``'s inner
loop): ``TransitionBuffer.sample`` (spin's own sampler, placement chosen as the trainer does,
over a store of the task's shape written with ``DatasetWriter`` + ``publish`` and materialised
into a temporary cache), the trainer's observation normalisation (two element-wise ops), the
call of ``spin_train.algos.IQL(actor, obs_dim, bins).update(batch, generator)`` with the actor
from ``spin_train.models.actors.make_actor("spin", ..., asm=ActionStructureModel(...))`` (a
randomly initialised ASM: the trunk is frozen either way) or ``make_actor("factored", ...)``,
bf16 autocast on CUDA (``algo.use_autocast(device, True)``, the trainer's default ``amp``), a
no-op on CPU, and the accumulation of the step's statistics on the device (the trainer reads
them on the host only at evaluations, every 5,000 steps). ``--compile`` adds rows with
``torch.compile(algo.update)`` (the trainer's ``--compile``).

Both sides get the same sizes (d_model 256, 4 heads, 3 blocks, FFN 2d, head width 128, critics
and value net 256, batch 256) and the same task shape (``--task humanoid`` obs 67, 21 dims x 3
bins; ``cheetah`` obs 17, 6 x 3; ``finger`` obs 9, 2 x 3; ``dog30`` obs 223, 38 x 30; ``maze5``
obs 2, 5 x 2). The data are random (steps/s do not depend on the values). Timed steps end with
a device synchronisation before the clock is read; rows are interleaved within each repeat (a
shared host drifts).

    python benchmarks/policy.py [--task humanoid|cheetah|finger|dog30|maze5] [--device cpu|cuda]
        [--steps 50] [--warmup 5] [--repeats 3] [--compile] [--threads N]

Prints a table (steps/s min / median / max over repeats, each spin row's ratio of medians
against the reference rows of the same actor, first and last losses) and writes
``benchmarks/results/policy-<device>-<task>-<host>-<time>.json``.
"""

from __future__ import annotations

import copy
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import spin_data  # noqa: F401  (first: pins numpy's BLAS kernels, spin_data/blas.py)
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import (TASKS, Losses, StepRow, benchmark_parser, parse_benchmark_args,  # noqa: E402
                    rate_stats, run_payload, scratch_store, time_rows, write_results)

from spin_data.store import open_dataset  # noqa: E402
from spin_train.algos import IQL, IQLOptions  # noqa: E402
from spin_train.data import ObservationNormaliser, TransitionBuffer  # noqa: E402
from spin_train.device import maybe_compile  # noqa: E402
from spin_train.models.actors import make_actor  # noqa: E402
from spin_train.models.asm import ActionStructureModel, ASMConfig  # noqa: E402

LOSSES = ("v_loss", "q_loss", "actor_loss")
#: The synthetic store (``common.build_store``): random episodes of the task's shape (N(0, 1)
#: observations, uniform bins, U(0, 1) rewards); every 4th ends in a true termination so
#: ``not_done`` is not constant.
STORE = dict(name="policy", structured=False, terminate_every=4)


def reference_tensors(store: Path, device: torch.device) -> dict[str, torch.Tensor]:
    """The reference's preloaded dataset: (s, a, r, s', not_done) tensors on the device."""
    t = open_dataset(store).transitions()
    return {"s": torch.as_tensor(t["observations"], device=device),
            "a": torch.as_tensor(t["actions"].astype(np.int64), device=device),
            "r": torch.as_tensor(t["rewards"], device=device),
            "s2": torch.as_tensor(t["next_observations"], device=device),
            "nd": torch.as_tensor(1.0 - t["terminations"].astype(np.float32), device=device)}


# ============================================================================= the reference loop
def ref_mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ReferenceSpinActor(nn.Module):
    """SPIN's actor as the reference's description reads (module docstring)."""

    def __init__(self, obs_dim: int, bins: list[int], d_model: int, n_heads: int,
                 n_layers: int, head_hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.d_model = d_model
        # The pre-trained part (state MLP + encoder): loaded from stage 1, then frozen.
        self.state_mlp = nn.Sequential(nn.Linear(obs_dim, 2 * d_model), nn.GELU(),
                                       nn.Linear(2 * d_model, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=2 * d_model,
                                           dropout=dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        for module in (self.state_mlp, self.encoder):
            module.requires_grad_(False)
        # New in stage 2.
        self.queries = nn.Parameter(torch.randn(len(bins), d_model) * 0.02)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, head_hidden), nn.GELU(), nn.Linear(head_hidden, b))
            for b in bins)

    def train(self, mode: bool = True) -> "ReferenceSpinActor":
        super().train(mode)
        self.state_mlp.eval()
        self.encoder.eval()
        return self

    def forward(self, s: torch.Tensor) -> list[torch.Tensor]:
        B = s.shape[0]
        x = torch.cat([self.state_mlp(s).unsqueeze(1),
                       self.queries.unsqueeze(0).expand(B, -1, -1)], dim=1)
        h = self.encoder(x)[:, 1:]
        return [F.log_softmax(head(h[:, i]), dim=-1) for i, head in enumerate(self.heads)]

    def log_prob(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        logps = self(s)
        return sum(lp.gather(1, a[:, i:i + 1]).squeeze(1) for i, lp in enumerate(logps))


class ReferenceFactoredActor(nn.Module):
    """F-IQL's actor as the reference's description reads: MLP 2x256 + N linear heads."""

    def __init__(self, obs_dim: int, bins: list[int], hidden: int = 256):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(),
                                   nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(hidden, b) for b in bins)

    def forward(self, s: torch.Tensor) -> list[torch.Tensor]:
        h = self.trunk(s)
        return [F.log_softmax(head(h), dim=-1) for head in self.heads]

    def log_prob(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        logps = self(s)
        return sum(lp.gather(1, a[:, i:i + 1]).squeeze(1) for i, lp in enumerate(logps))


class ReferenceCritic(nn.Module):
    """One critic: MLP ``D -> 256 -> 256 -> N*bins``; ``Q(s, a) = sum_i Q_i(s, a_i)``."""

    def __init__(self, obs_dim: int, n_dims: int, n_bins: int, hidden: int = 256):
        super().__init__()
        self.n_dims, self.n_bins = n_dims, n_bins
        self.net = ref_mlp([obs_dim, hidden, hidden, n_dims * n_bins])

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        q = self.net(s).view(-1, self.n_dims, self.n_bins)
        return q.gather(2, a.unsqueeze(2)).squeeze(2).sum(1)


class ReferenceIQL:
    """The reference's IQL update (module docstring), one call of :meth:`step` per gradient
    step: sample, V step, Q step, actor step, Polyak loop, (optionally) log with ``.item()``."""

    def __init__(self, actor: nn.Module, obs_dim: int, n_dims: int, n_bins: int,
                 data: dict[str, torch.Tensor], batch_size: int, *, item_every_step: bool,
                 hidden: int = 256, lr: float = 3e-4, discount: float = 0.99, tau: float = 0.005,
                 expectile: float = 0.8, beta: float = 3.0, max_weight: float = 100.0):
        device = data["s"].device
        self.actor = actor.to(device)
        self.q1 = ReferenceCritic(obs_dim, n_dims, n_bins, hidden).to(device)
        self.q2 = ReferenceCritic(obs_dim, n_dims, n_bins, hidden).to(device)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.v = ref_mlp([obs_dim, hidden, hidden, 1]).to(device)
        self.actor_opt = torch.optim.Adam(
            [p for p in self.actor.parameters() if p.requires_grad], lr=lr)
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=lr)
        self.v_opt = torch.optim.Adam(self.v.parameters(), lr=lr)
        self.data, self.batch_size, self.item_every_step = data, batch_size, item_every_step
        self.n = data["s"].shape[0]
        self.discount, self.tau, self.expectile = discount, tau, expectile
        self.beta, self.max_weight = beta, max_weight
        self.log: list[dict[str, float]] = []
        self.actor.train()

    def sample(self):
        idx = torch.randint(0, self.n, (self.batch_size,), device=self.data["s"].device)
        d = self.data
        return d["s"][idx], d["a"][idx], d["r"][idx], d["s2"][idx], d["nd"][idx]

    def step(self) -> Losses:
        s, a, r, s2, nd = self.sample()
        # V
        with torch.no_grad():
            target_q = torch.min(self.q1_target(s, a), self.q2_target(s, a))
        v = self.v(s).squeeze(-1)
        adv = target_q - v
        weight = torch.abs(self.expectile - (adv < 0).float())
        v_loss = (weight * adv ** 2).mean()
        self.v_opt.zero_grad()
        v_loss.backward()
        self.v_opt.step()
        # Q
        with torch.no_grad():
            next_v = self.v(s2).squeeze(-1)
            target = r + self.discount * nd * next_v
        q_loss = (F.mse_loss(self.q1(s, a), target) + F.mse_loss(self.q2(s, a), target)) / 2
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        # actor
        exp_adv = torch.exp(self.beta * adv.detach()).clamp(max=self.max_weight)
        actor_loss = -(exp_adv * self.actor.log_prob(s, a)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        # Polyak
        with torch.no_grad():
            for net, target_net in ((self.q1, self.q1_target), (self.q2, self.q2_target)):
                for p, tp in zip(net.parameters(), target_net.parameters()):
                    tp.data.copy_(self.tau * p.data + (1 - self.tau) * tp.data)
        losses = {"v_loss": v_loss.detach(), "q_loss": q_loss.detach(),
                  "actor_loss": actor_loss.detach()}
        if self.item_every_step:
            self.log.append({k: v.item() for k, v in losses.items()})
        return losses


def reference_actor(kind: str, D: int, N: int, K: int, args) -> nn.Module:
    if kind == "spin":
        return ReferenceSpinActor(D, [K] * N, args.d_model, args.n_heads, args.n_layers)
    return ReferenceFactoredActor(D, [K] * N)


# ============================================================================= spin's loop
def spin_algo(kind: str, D: int, N: int, K: int, args, device: torch.device) -> IQL:
    """The trainer's construction: actor, then ``IQL(actor, obs_dim, bins)``, on the device."""
    bins = (K,) * N
    asm = None
    if kind == "spin":
        asm = ActionStructureModel(ASMConfig(obs_dim=D, bins=bins, d_model=args.d_model,
                                             n_heads=args.n_heads, n_layers=args.n_layers))
        asm = asm.to(device)
    actor = make_actor(kind, obs_dim=D, bins=bins, asm=asm).to(device)
    algo = IQL(actor, D, bins, IQLOptions(critic_hidden=256)).to(device)
    algo.use_autocast(device, True)
    return algo


def make_spin_step(algo: IQL, cached, batch_size: int, device: torch.device,
                   compile: bool) -> Callable[[], Losses]:
    """What ``train_policy()`` runs per step (normalisation as the trainer's ``_normalise_fn``;
    rewards of [0, 1) keep the default reward scale 1)."""
    buffer = TransitionBuffer(cached, device=device, seed=0)
    normaliser = ObservationNormaliser.from_cached(cached)
    mean = torch.as_tensor(normaliser.mean, device=device)
    std = torch.as_tensor(normaliser.std, device=device)
    generator = torch.Generator(device=device)
    generator.manual_seed(1)
    update = maybe_compile(algo.update, compile)
    algo.train()
    sums: dict[str, torch.Tensor] = {}

    def step() -> Losses:
        batch = buffer.sample(batch_size)
        batch.observations = (batch.observations - mean) / std
        batch.next_observations = (batch.next_observations - mean) / std
        stats = update(batch, generator)
        for k, v in stats.items():
            sums[k] = sums[k] + v if k in sums else v.detach().clone()
        return {k: stats[k] for k in LOSSES}

    step.placement = buffer.placement  # type: ignore[attr-defined]
    return step


# ============================================================================= the rows
@dataclass(kw_only=True)
class Row(StepRow):
    """A :class:`common.StepRow` of one actor and one side."""

    actor: str  # "spin" or "factored"
    side: str  # "reference" or "spin"


def build_rows(args, store: Path, cached, device: torch.device) -> list[Row]:
    D, N, K, _ = TASKS[args.task]
    data = reference_tensors(store, device)
    amp = " (bf16 autocast)" if device.type == "cuda" else ""
    rows = []
    for kind in args.actors:
        label = "SPIN" if kind == "spin" else "F-IQL"
        for item in (True, False):
            torch.manual_seed(0)
            ref = ReferenceIQL(reference_actor(kind, D, N, K, args), D, N, K, data, args.batch,
                               item_every_step=item)
            suffix = ".item() every step" if item else "no per-step .item()"
            rows.append(Row(f"{label} reference loop (rebuilt), {suffix}", ref.step, actor=kind,
                            side="reference"))
        for compiled in (False, True) if args.compile else (False,):
            torch.manual_seed(0)
            algo = spin_algo(kind, D, N, K, args, device)
            step = make_spin_step(algo, cached, args.batch, device, compiled)
            name = (f"spin IQL.update, {kind} actor{amp}"
                    + (" + torch.compile" if compiled else ""))
            rows.append(Row(name, step, actor=kind, side="spin"))
    return rows


def parameter_counts(args) -> dict[str, dict[str, int]]:
    """Trainable / total parameters of each actor, both sides (the critics are the same)."""
    D, N, K, _ = TASKS[args.task]
    out = {}
    for kind in args.actors:
        ref = reference_actor(kind, D, N, K, args)
        spin = spin_algo(kind, D, N, K, args, torch.device("cpu")).actor
        out[kind] = {f"{side}_{what}": sum(p.numel() for p in m.parameters()
                                           if what == "total" or p.requires_grad)
                     for side, m in (("reference", ref), ("spin", spin))
                     for what in ("trainable", "total")}
    return out


def main() -> None:
    parser = benchmark_parser(__doc__.splitlines()[0], batch=256, dataset_steps=50_000,
                              compile_help="add spin rows with torch.compile(algo.update)")
    parser.add_argument("--actors", nargs="+", choices=("spin", "factored"),
                        default=["spin", "factored"])
    args, threads, device = parse_benchmark_args(parser)

    with scratch_store(args.task, args.dataset_steps, **STORE) as (store, cached):
        rows = build_rows(args, store, cached, device)
        time_rows(rows, warmup=args.warmup, steps=args.steps, repeats=args.repeats,
                  device=device)
        placement = next((getattr(r.step, "placement", None) for r in rows
                          if r.side == "spin"), None)

    D, N, K, _ = TASKS[args.task]
    print(f"\nIQL gradient steps/s, task {args.task} (obs {D}, {N} dims x {K} bins), d_model "
          f"{args.d_model}, {args.n_heads} heads, {args.n_layers} blocks, critics 256, batch "
          f"{args.batch}, {device}, {threads} threads; {args.steps} steps x {args.repeats} "
          f"repeats; spin's buffer placement: {placement}")
    width = max(len(r.name) for r in rows)
    print(f"  {'loop':{width}s}  {'min':>8s}  {'median':>8s}  {'max':>8s}  {'vs ref':>7s}"
          f"  {'vs ref no .item()':>17s}  {'first v/q/actor loss':>22s}  "
          f"{'last v/q/actor loss':>22s}")
    results = []
    for row in rows:
        refs = [r for r in rows if r.actor == row.actor and r.side == "reference"]
        base_item, base_plain = (statistics.median(r.rates) for r in refs)
        med = statistics.median(row.rates)
        fmt = lambda d: "/".join(f"{d[k]:.3g}" for k in LOSSES)  # noqa: E731
        print(f"  {row.name:{width}s}  {min(row.rates):8.2f}  {med:8.2f}  {max(row.rates):8.2f}"
              f"  {med / base_item:6.2f}x  {med / base_plain:16.2f}x  {fmt(row.first):>22s}  "
              f"{fmt(row.last):>22s}")
        results.append({"name": row.name, "actor": row.actor, "side": row.side,
                        "steps_per_s": rate_stats(row.rates),
                        "ratio_vs_reference_median": med / base_item,
                        "ratio_vs_reference_no_item_median": med / base_plain,
                        "first_losses": row.first, "last_losses": row.last,
                        "warmup_s": row.warmup_s})
    payload = {**run_payload(args, threads, device),
               "spin_buffer_placement": placement,
               "parameters": parameter_counts(args),
               "baseline": "reference IQL loop rebuilt from REFERENCE.md section 3 (not run)",
               "rows": results}
    print(f"\nwrote {write_results(f'policy-{device.type}-{args.task}', payload)}")


if __name__ == "__main__":
    main()
