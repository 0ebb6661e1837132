"""SPIN stage 1 (Action Structure Model pre-training): training steps/s of spin against the
public SPIN reference implementation's ASM training loop, same machine, same model size.

The reference code cannot be fetched or run here, so its loop is REBUILT below from its
description (``/work/shared/REFERENCE.md`` section 3) the way a typical research implementation
of that description is written, not as a straw man:

  - model: ``nn.TransformerEncoder`` of ``nn.TransformerEncoderLayer(d, heads,
    dim_feedforward=2d, dropout=0.1, activation="gelu", batch_first=True, norm_first=True)``, no
    final norm, no positional encodings; state MLP ``Linear(D, 2d) -> GELU -> Linear(2d, M*d)``;
    an ``nn.ModuleList`` of N ``nn.Embedding(bins_i + 1, d)`` tables (the extra row is the mask
    token) looked up in a Python loop over dimensions; an ``nn.ModuleList`` of N heads
    ``Linear(d, 128) -> GELU -> Dropout -> Linear(128, bins_i)`` applied in a Python loop;
  - objective: each (row, dimension) selected with probability 0.15 (at least one per batch),
    80% mask token / 10% random bin / 10% unchanged, cross-entropy on the selected tokens only,
    averaged over them (summed per dimension in a Python loop: the heads differ in width);
  - Adam lr 4e-4, ``clip_grad_norm_`` 1.0, batch 1024, float32 throughout (the reference code
    has no mixed precision);
  - data: the whole dataset preloaded as tensors on the device, batches drawn with
    ``torch.randint`` on the device (as the reference does);
  - ``loss.item()`` read every step for logging. ASSUMPTION: typical of research loops, not
    stated in REFERENCE; the row "reference loop, no per-step .item()" drops it so the reader
    sees how much of the gap is host-device synchronisation.
  Generous to the baseline: its "at least one selected" rule and its masked cross-entropy are
  written without host syncs (weights, not boolean indexing), it samples only (s, a), and it
  does not normalise observations.

spin's side times exactly what ``spin-train pretrain`` runs per step (``pretrain()``'s inner
loop): ``TransitionBuffer.sample`` (spin's own sampler, over a store written with
``DatasetWriter`` + ``publish`` and materialised into a temporary cache, normalised
observations, the training episodes of a 95/5 episode split), the step from
``spin_train.pretrain.trainer.make_train_step`` (``ActionStructureModel``, ``make_objective
("mam")``, Adam, grad clip 1.0, bf16 autocast on CUDA (``amp=True``), a no-op on CPU), the
accumulation of the step's stats, and a host read of the loss every ``log_every`` (50) steps.
``--compile`` adds a row with ``torch.compile`` (``PretrainConfig(compile=True)``).

Both sides get the same sizes (d_model 256, 4 heads, 3 blocks, FFN 2d, head width 128, batch
1024 by default) and the same task shape (``--task humanoid`` obs 67, 21 dims x 3 bins;
``cheetah`` obs 17, 6 x 3; ``finger`` obs 9, 2 x 3;
``dog30`` obs 223, 38 x 30; ``maze5`` obs 2, 5 x 2). The synthetic data has structure (each
sub-action is a quantised random projection of the state) so the masked loss can fall below
log(bins); steps/s do not depend on the values. Timed steps end with a device synchronisation
before the clock is read; rows are interleaved within each repeat (a shared host drifts).

    python benchmarks/pretrain.py [--task humanoid|cheetah|finger|dog30|maze5] [--device cpu|cuda]
        [--steps 50] [--warmup 5] [--repeats 3] [--compile] [--threads N]

Prints a table (steps/s min / median / max over repeats, spin / baseline ratio of medians,
first and last loss)
and writes ``benchmarks/results/pretrain-<device>-<task>-<host>-<time>.json``.
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import replace
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

from spin_train.data import TransitionBuffer, split_episodes  # noqa: E402
from spin_train.models.asm import ActionStructureModel  # noqa: E402
from spin_train.pretrain.objectives import make_objective  # noqa: E402
from spin_train.pretrain.trainer import PretrainConfig, make_train_step  # noqa: E402

#: The synthetic store (``common.build_store``): sub-action i = the bin of the projection
#: ``obs @ w_i`` of the N(0, 1) observations (quantile edges), so actions depend on the state
#: and on each other and the masked loss can fall; every episode truncated.
STORE = dict(name="pretrain", structured=True)


# ============================================================================= the reference loop
class ReferenceASM(nn.Module):
    """The ASM as the reference implementation's description reads (module docstring)."""

    def __init__(self, obs_dim: int, bins: list[int], d_model: int, n_heads: int,
                 n_layers: int, dropout: float = 0.1, head_hidden: int = 128,
                 n_state_tokens: int = 1):
        super().__init__()
        self.d_model, self.m = d_model, n_state_tokens
        self.state_mlp = nn.Sequential(nn.Linear(obs_dim, 2 * d_model), nn.GELU(),
                                       nn.Linear(2 * d_model, n_state_tokens * d_model))
        self.action_embeddings = nn.ModuleList(nn.Embedding(b + 1, d_model) for b in bins)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=2 * d_model,
                                           dropout=dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, head_hidden), nn.GELU(), nn.Dropout(dropout),
                          nn.Linear(head_hidden, b)) for b in bins)

    def forward(self, states: torch.Tensor, tokens: torch.Tensor) -> list[torch.Tensor]:
        B = states.shape[0]
        state_tokens = self.state_mlp(states).view(B, self.m, self.d_model)
        action_tokens = torch.stack(
            [emb(tokens[:, i]) for i, emb in enumerate(self.action_embeddings)], dim=1)
        h = self.encoder(torch.cat([state_tokens, action_tokens], dim=1))[:, self.m:]
        return [head(h[:, i]) for i, head in enumerate(self.heads)]


def reference_mask(actions: torch.Tensor, mask_ids: torch.Tensor, p: float = 0.15
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """80/10/10 corruption of the selected tokens; ``(tokens, selected)``."""
    B, N = actions.shape
    dev = actions.device
    selected = torch.rand(B, N, device=dev) < p
    # at least one selected token per batch, without asking the host (generous to the baseline)
    forced = torch.zeros(B * N, dtype=torch.bool, device=dev)
    forced[torch.randint(0, B * N, (1,), device=dev)] = True
    selected = selected | (forced.view(B, N) & ~selected.any())
    u = torch.rand(B, N, device=dev)
    random_bins = (torch.rand(B, N, device=dev) * mask_ids).long()
    tokens = torch.where(selected & (u < 0.8), mask_ids.expand(B, N),
                         torch.where(selected & (u < 0.9), random_bins, actions))
    return tokens, selected


def make_reference_step(model: ReferenceASM, bins: list[int], states: torch.Tensor,
                        actions: torch.Tensor, batch_size: int, *, item_every_step: bool,
                        lr: float = 4e-4, grad_clip: float = 1.0) -> Callable[[], Losses]:
    """The reference's training step: sample, mask, forward, CE, backward, clip, Adam."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    mask_ids = torch.tensor(bins, device=states.device)
    T = states.shape[0]
    log: list[float] = []

    def step() -> Losses:
        idx = torch.randint(0, T, (batch_size,), device=states.device)
        s, a = states[idx], actions[idx]
        tokens, selected = reference_mask(a, mask_ids)
        logits = model(s, tokens)
        total = 0.0
        for i, lg in enumerate(logits):
            ce = F.cross_entropy(lg, a[:, i], reduction="none")
            total = total + (ce * selected[:, i]).sum()
        loss = total / selected.sum().clamp(min=1)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimiser.step()
        if item_every_step:
            log.append(loss.item())
        return {"loss": loss.detach()}

    return step


# ============================================================================= spin's loop
def make_spin_step(cfg: PretrainConfig, cached, device: torch.device
                   ) -> Callable[[], Losses]:
    """What ``pretrain()`` runs per step, built from spin's own pieces."""
    train_steps, _ = split_episodes(cached, cfg.val_fraction, seed=cfg.seed)
    bins = tuple(int(b) for b in cached.bin_grid.counts)
    asm = ActionStructureModel(cfg.asm_config(cached.obs_dim, bins)).to(device)
    objective = make_objective(cfg.objective, asm, **cfg.objective_kwargs()).to(device)
    optimiser = torch.optim.Adam([*asm.parameters(), *objective.parameters()], lr=cfg.lr)
    buffer = TransitionBuffer(cached, device=device, normalise=cfg.normalise, seed=cfg.seed,
                              steps=train_steps)
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg.seed + 1)
    train_step = make_train_step(asm, objective, optimiser, generator, grad_clip=cfg.grad_clip,
                                 amp=cfg.amp, compile=cfg.compile)
    asm.train()
    objective.train()
    sums: dict[str, torch.Tensor] = {}
    count = [0]

    def step() -> Losses:
        batch = buffer.sample(cfg.batch_size)
        stats = train_step(batch.observations, batch.actions)
        for k, v in stats.items():
            sums[k] = sums[k] + v if k in sums else v.clone()
        count[0] += 1
        if count[0] % cfg.log_every == 0:
            float(stats["loss"])  # the progress bar's read
        return {"loss": stats["loss"]}

    return step


# ============================================================================= the rows
def build_rows(args, cached, device: torch.device) -> list[StepRow]:
    D, N, K, _ = TASKS[args.task]
    sizes = dict(d_model=args.d_model, n_heads=args.n_heads, n_layers=args.n_layers)
    cfg = PretrainConfig(dataset=str(cached.location), batch_size=args.batch, seed=0,
                         device=str(device), amp=device.type == "cuda", **sizes)
    states = torch.from_numpy(np.array(cached.observations(), np.float32)).to(device)
    actions = torch.from_numpy(np.array(cached.load("actions"), np.int64)).to(device)
    rows = []
    for item in (True, False):
        torch.manual_seed(0)
        model = ReferenceASM(D, [K] * N, **sizes, dropout=cfg.dropout,
                             head_hidden=cfg.head_hidden).to(device)
        model.train()
        name = "reference loop (rebuilt), .item() every step" if item else \
            "reference loop (rebuilt), no per-step .item()"
        rows.append(StepRow(name, make_reference_step(model, [K] * N, states, actions,
                                                      args.batch, item_every_step=item,
                                                      lr=cfg.lr, grad_clip=cfg.grad_clip)))
    torch.manual_seed(0)
    amp = " (bf16 autocast)" if cfg.amp else ""
    rows.append(StepRow(f"spin make_train_step{amp}", make_spin_step(cfg, cached, device)))
    if args.compile:
        torch.manual_seed(0)
        rows.append(StepRow(f"spin make_train_step{amp} + torch.compile",
                            make_spin_step(replace(cfg, compile=True), cached, device)))
    return rows


def parameter_count(args) -> dict[str, int]:
    D, N, K, _ = TASKS[args.task]
    ref = ReferenceASM(D, [K] * N, args.d_model, args.n_heads, args.n_layers)
    spin = ActionStructureModel(PretrainConfig(dataset="-", d_model=args.d_model,
                                               n_heads=args.n_heads, n_layers=args.n_layers)
                                .asm_config(D, (K,) * N))
    return {"reference": sum(p.numel() for p in ref.parameters()),
            "spin": sum(p.numel() for p in spin.parameters())}


def main() -> None:
    parser = benchmark_parser(__doc__.splitlines()[0], batch=1024, dataset_steps=100_000,
                              compile_help="add a spin + torch.compile row")
    args, threads, device = parse_benchmark_args(parser)

    with scratch_store(args.task, args.dataset_steps, **STORE) as (_, cached):
        rows = build_rows(args, cached, device)
        time_rows(rows, warmup=args.warmup, steps=args.steps, repeats=args.repeats,
                  device=device)

    base = statistics.median(rows[0].rates)
    D, N, K, _ = TASKS[args.task]
    print(f"\nstage-1 training steps/s, task {args.task} (obs {D}, {N} dims x {K} bins), "
          f"d_model {args.d_model}, {args.n_heads} heads, {args.n_layers} blocks, batch "
          f"{args.batch}, {device}, {threads} threads; {args.steps} steps x {args.repeats} "
          f"repeats; loss ln(bins) = {math.log(K):.3f}")
    width = max(len(r.name) for r in rows)
    print(f"  {'loop':{width}s}  {'min':>8s}  {'median':>8s}  {'max':>8s}  {'vs reference':>12s}"
          f"  {'first loss':>10s}  {'last loss':>9s}")
    results = []
    for row in rows:
        med = statistics.median(row.rates)
        first, last = row.first["loss"], row.last["loss"]
        print(f"  {row.name:{width}s}  {min(row.rates):8.3f}  {med:8.3f}  {max(row.rates):8.3f}"
              f"  {med / base:11.2f}x  {first:10.4f}  {last:9.4f}")
        results.append({"name": row.name, "steps_per_s": rate_stats(row.rates),
                        "ratio_vs_reference_median": med / base,
                        "first_loss": first, "last_loss": last, "warmup_s": row.warmup_s})
    payload = {**run_payload(args, threads, device),
               "parameters": parameter_count(args), "ln_bins": math.log(K),
               "baseline": "reference loop rebuilt from REFERENCE.md section 3 (not run)",
               "rows": results}
    print(f"\nwrote {write_results(f'pretrain-{device.type}-{args.task}', payload)}")


if __name__ == "__main__":
    main()
