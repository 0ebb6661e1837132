"""The linear probe of SPIN section 6.2: how much joint action structure an ASM encodes.

The trunk (state encoder + Transformer blocks) is frozen - as pre-trained, or randomly
initialised with the same sizes (``random_init``) - and only new action queries and one linear
head per dimension are trained to predict the dataset's actions from states. On held-out
episodes it reports per-slot accuracy, exact-match accuracy of the whole tuple, and the
exact-match expected if the slots were independent (the product of per-slot accuracies): an
exact-match above that product means the representation coordinates the sub-actions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spin_train.data import TransitionBuffer, check_compatible, materialise, split_episodes
from spin_train.device import autocast, resolve_device
from spin_train.models.asm import ActionStructureModel, ASMConfig, QueriedTrunk
from spin_train.options import RunOptions, check_finite, option
from spin_train.pretrain.trainer import asm_normaliser, load_asm
from spin_train.runs import write_json
from spin_data.envs.bins import BinGrid


@dataclass(kw_only=True)
class ProbeConfig(RunOptions):
    """A probe run: the fields below and the run options every spin-train command shares
    (``--dataset``: the store whose (state, action) pairs are probed, same bin grid as the ASM)."""

    asm: str = option(
        help="asm.pt of a pre-training run (or its directory): the trunk and its sizes")
    random_init: bool = option(
        False, "probe a randomly initialised trunk of the same sizes instead")
    steps: int = option(2000, "Adam steps on the queries and heads")
    batch_size: int = option(1024, "pairs per step")
    lr: float = option(1e-3, "Adam learning rate")
    val_fraction: float = option(0.1, "fraction of episodes held out for the reported accuracies")
    val_size: int = option(16384, "at most this many held-out steps are evaluated")
    out: str | None = option(  # a report, not a run directory
        None, "JSON report; default probe.json / probe-random.json beside asm.pt")

    def __post_init__(self) -> None:
        check_finite(self)
        for name in ("steps", "batch_size", "val_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


def accuracy_report(predicted: torch.Tensor, actions: torch.Tensor) -> dict[str, Any]:
    """Per-slot, exact-match and independence-expected accuracy of ``(B, N)`` predictions."""
    hit = (predicted == actions)
    per_slot = hit.float().mean(0).cpu().numpy().astype(np.float64)
    return {
        "slot_accuracy": float(per_slot.mean()),
        "exact_match": float(hit.all(-1).float().mean()),
        "exact_match_if_independent": float(np.prod(per_slot)),
        "slot_accuracy_per_dim": per_slot.tolist(),
        "rows": int(actions.shape[0]),
    }


def probe(cfg: ProbeConfig) -> dict[str, Any]:
    """Train the probe and return (and write) its report."""
    device = resolve_device(cfg.device)
    trained, info = load_asm(cfg.asm, device=device)
    cached = materialise(cfg.dataset, cache_dir=cfg.cache_dir)
    asm_grid = BinGrid.from_dict(info["dataset"]["bin_grid"])
    check_compatible(f"{cached.metadata.get('dataset_id', '?')} ({cfg.dataset})", cached.obs_dim,
                     cached.bin_grid, f"the ASM's dataset ({info['dataset']['dataset_id']})",
                     int(info["dataset"]["obs_dim"]), asm_grid)
    torch.manual_seed(cfg.seed)
    asm = (ActionStructureModel(ASMConfig.from_dict(info["asm_config"])).to(device)
           if cfg.random_init else trained)
    model = QueriedTrunk(asm, freeze=True, head_hidden=None).to(device)
    optimiser = torch.optim.Adam(model.trainable_parameters(), lr=cfg.lr)

    train_steps, val_steps = split_episodes(cached, cfg.val_fraction, seed=cfg.seed)
    buffer = TransitionBuffer(cached, device=device, seed=cfg.seed, steps=train_steps)
    normaliser = asm_normaliser(info)  # the trunk sees observations as it did in pre-training
    norm = normaliser.on(device) if normaliser is not None else (lambda obs: obs)
    pick = val_steps[np.linspace(0, len(val_steps) - 1, min(cfg.val_size, len(val_steps)))
                     .round().astype(np.int64)]
    val_obs = norm(torch.from_numpy(np.asarray(cached.observations()[pick])).to(device))
    val_actions = torch.from_numpy(np.asarray(cached.load("actions")[pick])).to(device)

    model.train()
    losses = []
    for step in tqdm(range(cfg.steps), disable=not cfg.progress, desc="probe", unit="step"):
        batch = buffer.sample(cfg.batch_size)
        with autocast(device, cfg.amp):
            logits = model(norm(batch.observations)).float()
        loss = F.cross_entropy(logits.transpose(1, 2), batch.actions)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad(), autocast(device, cfg.amp):
        predicted = torch.cat([model(val_obs[i:i + cfg.batch_size]).argmax(-1)
                               for i in range(0, len(val_obs), cfg.batch_size)])
    report = {
        "asm": str(cfg.asm), "random_init": cfg.random_init,
        "asm_epochs": 0 if cfg.random_init else info.get("chosen_epoch"),
        "dataset": str(cfg.dataset), "dataset_checksum": cached.content_checksum,
        "final_train_loss": losses[-1] if losses else math.nan,
        "chance_exact_match": float(np.prod([1.0 / b for b in cached.bin_grid.counts])),
        **accuracy_report(predicted, val_actions),
        "config": asdict(cfg),
    }
    out = Path(cfg.out) if cfg.out else (
        Path(cfg.asm) if Path(cfg.asm).is_dir() else Path(cfg.asm).parent
    ) / ("probe-random.json" if cfg.random_init else "probe.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    report["report_path"] = str(out)
    return report
