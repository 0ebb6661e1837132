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
``dog30`` obs 223, 38 x 30; ``maze5`` obs 2, 5 x 2). The synthetic data has structure (each
sub-action is a quantised random projection of the state) so the masked loss can fall below
log(bins); steps/s do not depend on the values. Timed steps end with a device synchronisation
before the clock is read; rows are interleaved within each repeat (a shared host drifts).

    python benchmarks/pretrain.py [--task humanoid|dog30|maze5] [--device cpu|cuda]
        [--steps 50] [--warmup 5] [--repeats 3] [--compile] [--threads N]

Prints a table (steps/s min / median / max over repeats, spin / baseline ratio of medians,
first and last loss)
and writes ``benchmarks/results/pretrain-<device>-<task>-<host>-<time>.json``.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import write_results  # noqa: E402

from spin_data.envs.bins import BinGrid  # noqa: E402
from spin_data.store import DatasetWriter  # noqa: E402
from spin_train.data import TransitionBuffer, materialise, split_episodes  # noqa: E402
from spin_train.models.asm import ActionStructureModel  # noqa: E402
from spin_train.pretrain.objectives import make_objective  # noqa: E402
from spin_train.pretrain.trainer import PretrainConfig, make_train_step  # noqa: E402

#: task -> (observation features D, sub-action dimensions N, bins per dimension, episode length)
TASKS = {
    "humanoid": (67, 21, 3, 1000),
    "dog30": (223, 38, 30, 1000),
    "maze5": (2, 5, 2, 150),
}


# ============================================================================= data
def build_store(path: Path, task: str, steps: int, seed: int = 0) -> None:
    """A store of the task's shape. Observations N(0, 1); sub-action i = the bin of the
    projection ``obs @ w_i`` (quantile edges), so actions depend on the state and on each
    other and the masked loss can fall."""
    D, N, K, length = TASKS[task]
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((D, N)) / math.sqrt(D)
    edges = np.quantile(rng.standard_normal((100_000, D)) @ w, np.linspace(0, 1, K + 1)[1:-1],
                        axis=0)  # (K - 1, N)
    writer = DatasetWriter(path, obs_dim=D, bin_grid=BinGrid.unit(N, K))
    for e in range(max(2, steps // length)):
        obs = rng.standard_normal((length + 1, D), dtype=np.float32)
        actions = ((obs[:-1] @ w)[None] > edges[:, None]).sum(0)  # (L, N) bin indices
        writer.add_episode(obs, actions.astype(np.uint8), rng.random(length, np.float32),
                           terminated=False, truncated=True, source="random", seed=e)
    writer.publish({"dataset_id": f"pretrain-benchmark-{task}"})


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
                        lr: float = 4e-4, grad_clip: float = 1.0) -> Callable[[], torch.Tensor]:
    """The reference's training step: sample, mask, forward, CE, backward, clip, Adam."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    mask_ids = torch.tensor(bins, device=states.device)
    T = states.shape[0]
    log: list[float] = []

    def step() -> torch.Tensor:
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
        return loss.detach()

    return step


# ============================================================================= spin's loop
def make_spin_step(cfg: PretrainConfig, cached, device: torch.device
                   ) -> Callable[[], torch.Tensor]:
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

    def step() -> torch.Tensor:
        batch = buffer.sample(cfg.batch_size)
        stats = train_step(batch.observations, batch.actions)
        for k, v in stats.items():
            sums[k] = sums[k] + v if k in sums else v.clone()
        count[0] += 1
        if count[0] % cfg.log_every == 0:
            float(stats["loss"])  # the progress bar's read
        return stats["loss"]

    return step


# ============================================================================= timing
@dataclass
class Row:
    name: str
    step: Callable[[], torch.Tensor]
    rates: list[float]
    first_loss: float = math.nan
    last_loss: float = math.nan
    warmup_s: float = 0.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(row: Row, steps: int, device: torch.device) -> None:
    start = time.perf_counter()
    row.first_loss = float(row.step())
    for _ in range(steps - 1):
        row.step()
    sync(device)
    row.warmup_s = time.perf_counter() - start


def timed_steps(row: Row, steps: int, device: torch.device) -> None:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = row.step()
    sync(device)
    row.rates.append(steps / (time.perf_counter() - start))
    row.last_loss = float(loss)


def build_rows(args, cached, device: torch.device) -> list[Row]:
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
        rows.append(Row(name, make_reference_step(model, [K] * N, states, actions, args.batch,
                                                  item_every_step=item, lr=cfg.lr,
                                                  grad_clip=cfg.grad_clip), []))
    torch.manual_seed(0)
    amp = " (bf16 autocast)" if cfg.amp else ""
    rows.append(Row(f"spin make_train_step{amp}", make_spin_step(cfg, cached, device), []))
    if args.compile:
        torch.manual_seed(0)
        rows.append(Row(f"spin make_train_step{amp} + torch.compile",
                        make_spin_step(replace(cfg, compile=True), cached, device), []))
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="humanoid")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="add a spin + torch.compile row")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: every usable core)")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--n-layers", type=int, default=3)
    parser.add_argument("--dataset-steps", type=int, default=100_000,
                        help="transitions in the synthetic store")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1 or args.repeats < 1:
        parser.error("--steps, --warmup and --repeats must be >= 1")
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else os.cpu_count())
    torch.set_num_threads(threads)
    device = torch.device(args.device)

    work = Path(tempfile.mkdtemp(prefix="spin-pretrain-bench-"))
    try:
        print(f"building a {args.dataset_steps:,}-step {args.task} store ...", flush=True)
        build_store(work / "store", args.task, args.dataset_steps)
        cached = materialise(work / "store", cache_dir=work / "cache")
        rows = build_rows(args, cached, device)
        for row in rows:
            print(f"warming up: {row.name} ...", flush=True)
            warm_up(row, args.warmup, device)
        for r in range(args.repeats):
            for row in rows:  # interleaved: drift on a shared host hits every row alike
                timed_steps(row, args.steps, device)
            print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(
                f"{row.rates[-1]:.3g}" for row in rows) + " steps/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for row in rows:
        if not (math.isfinite(row.first_loss) and math.isfinite(row.last_loss)):
            raise SystemExit(f"{row.name}: non-finite loss ({row.first_loss}, {row.last_loss})")
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
        print(f"  {row.name:{width}s}  {min(row.rates):8.3f}  {med:8.3f}  {max(row.rates):8.3f}"
              f"  {med / base:11.2f}x  {row.first_loss:10.4f}  {row.last_loss:9.4f}")
        results.append({"name": row.name, "steps_per_s": {"min": min(row.rates), "median": med,
                                                          "max": max(row.rates),
                                                          "all": row.rates},
                        "ratio_vs_reference_median": med / base,
                        "first_loss": row.first_loss, "last_loss": row.last_loss,
                        "warmup_s": row.warmup_s})
    payload = {"args": vars(args), "threads": threads, "device": str(device),
               "task_shape": {"obs_dim": D, "n_dims": N, "bins": K},
               "parameters": parameter_count(args), "ln_bins": math.log(K),
               "baseline": "reference loop rebuilt from REFERENCE.md section 3 (not run)",
               "rows": results}
    print(f"\nwrote {write_results(f'pretrain-{device.type}-{args.task}', payload)}")


if __name__ == "__main__":
    main()
