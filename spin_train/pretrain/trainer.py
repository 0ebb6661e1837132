"""Stage 1 of SPIN: pre-train the Action Structure Model on a dataset's (state, action) pairs.

``pretrain(PretrainConfig(dataset=...))`` runs epochs of ``ceil(N_train / batch)`` Adam steps
of the chosen objective (Algorithm 1 for ``mam``), validates on held-out episodes, logs metrics,
checkpoints, resumes, and optionally stops early. The result is a run directory whose
``asm.pt`` (weights, loaded with ``weights_only=True``) and ``asm.json`` (dataset checksum,
bin grid, observation normaliser, config, wall-clock) are what stage 2 and the probe read.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from spin_train.data import ObservationNormaliser, TransitionBuffer, materialise, split_episodes
from spin_train.device import autocast, maybe_compile, resolve_device, rng_state, set_rng_state
from spin_train.models.asm import ActionStructureModel, ASMConfig
from spin_train.options import check_finite, field_defaults, option
from spin_train.pretrain.objectives import make_objective
from spin_train.runs import (MetricsLog, RunError, load_checkpoint, prepare_run_dir,
                             read_metrics, save_checkpoint, write_json)

ASM_FORMAT = 1


@dataclass
class PretrainConfig:
    """Everything a pre-training run depends on (defaults: REFERENCE section 3)."""

    dataset: str = option(help="store path or URL (spin-data generate's output)")
    out: str | None = option(
        None, "run directory; default runs/pretrain/<dataset id>-<objective>-s<seed>")
    objective: str = option("mam", "mam (SPIN), vam (variational) or cam (contrastive)")
    epochs: int = option(
        100, "an epoch is ceil(N_train / batch_size) steps, sampled with replacement")
    batch_size: int = option(1024, "(state, action) pairs per step")
    lr: float = option(4e-4, "Adam learning rate")
    grad_clip: float = option(1.0, "global grad-norm clip")
    select_prob: float = option(0.15, "mam: per-token selection probability (80/10/10 corruption)")
    vam_latent_dim: int = option(32, "vam: latent size d_z")
    vam_beta: float = option(0.1, "vam: KL weight beta")
    cam_temperature: float = option(0.1, "cam: InfoNCE temperature tau")
    d_model: int = option(256, "ASM token width")
    n_heads: int = option(4, "attention heads")
    n_layers: int = option(3, "Transformer blocks")
    ffn_mult: int = option(2, "FFN width multiplier")
    dropout: float = option(0.1, "dropout everywhere in the ASM")
    n_state_tokens: int = option(1, "M state tokens")
    head_hidden: int = option(128, "per-dimension head width")
    normalise: bool = option(True, "standardise observations with the dataset's mean/std (saved)")
    val_fraction: float = option(0.05, "fraction of episodes held out for validation")
    val_size: int = option(8192, "at most this many held-out steps are evaluated")
    val_every: int = option(1, "epochs between validations")
    checkpoint_every: int = option(
        5, "epochs between kept checkpoints (last.pt is written every epoch)")
    early_stop_patience: int | None = option(
        None, "stop after this many validations without progress")
    early_stop_min_delta: float = option(0.0, "smallest change of the monitored metric that counts")
    log_every: int = option(50, "steps between reads of the loss on the host (no per-step sync)")
    device: str = option("auto", "auto, cpu, cuda, cuda:N")
    amp: bool = option(True, "bf16 autocast on CUDA")
    compile: bool = option(False, "torch.compile the training step's forward")
    seed: int = option(0, "model init, batches, masking, split")
    cache_dir: str | None = option(None, "spin_train's dataset cache ($SPIN_CACHE_DIR/datasets by default)")
    progress: bool = option(True, "tqdm bar")

    def __post_init__(self) -> None:
        check_finite(self)
        positive = ("epochs", "batch_size", "val_size", "val_every", "checkpoint_every",
                    "log_every", "vam_latent_dim")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.grad_clip <= 0:
            raise ValueError(f"lr and grad_clip must be > 0, got {self.lr}, {self.grad_clip}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.early_stop_patience is not None and self.early_stop_patience < 1:
            raise ValueError(f"early_stop_patience must be >= 1, got {self.early_stop_patience}")
        self.asm_config(1, (2,))  # the model's own checks (d_model / n_heads...), before any work

    def asm_config(self, obs_dim: int, bins: tuple[int, ...]) -> ASMConfig:
        return ASMConfig(obs_dim=obs_dim, bins=bins, d_model=self.d_model, n_heads=self.n_heads,
                         n_layers=self.n_layers, ffn_mult=self.ffn_mult, dropout=self.dropout,
                         n_state_tokens=self.n_state_tokens, head_hidden=self.head_hidden)

    def objective_kwargs(self) -> dict[str, Any]:
        return {"mam": {"select_prob": self.select_prob},
                "vam": {"latent_dim": self.vam_latent_dim, "beta": self.vam_beta},
                "cam": {"temperature": self.cam_temperature}}.get(self.objective, {})


#: Settings a resumed run may change; every other key must match the run directory's.
RESUMABLE_CHANGES = {"dataset", "out", "epochs", "val_every", "checkpoint_every",
                     "early_stop_patience", "early_stop_min_delta", "log_every", "device", "amp",
                     "compile", "cache_dir", "progress"}


@dataclass
class PretrainResult:
    run_dir: Path
    asm_path: Path
    epochs_run: int  # epochs trained in total (over every resume)
    chosen_epoch: int  # whose weights asm.pt holds (the best one with early stopping)
    stopped_early: bool
    wall_clock_s: float  # training + validation time over every resume
    final_metrics: dict[str, Any] = field(default_factory=dict)


def default_run_dir(cfg: PretrainConfig, dataset_id: str) -> Path:
    return Path("runs") / "pretrain" / f"{dataset_id}-{cfg.objective}-s{cfg.seed}"


def make_train_step(asm: ActionStructureModel, objective: torch.nn.Module,
                    optimiser: torch.optim.Optimizer, generator: torch.Generator, *,
                    grad_clip: float = 1.0, amp: bool = True, compile: bool = False):
    """One stage-1 update ``(obs (B, D), actions (B, N)) -> stats``: the objective's loss under
    autocast, backward, global grad-norm clip, Adam. Returns device tensors (no host sync).
    The benchmark times exactly this function."""
    device = next(asm.parameters()).device
    params = [p for group in optimiser.param_groups for p in group["params"]]
    loss_fn = maybe_compile(objective.loss, compile)

    def train_step(obs: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast(device, amp):
            loss, stats = loss_fn(asm, obs, actions, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimiser.step()
        return stats

    return train_step


@torch.no_grad()
def validate(asm, objective, obs: torch.Tensor, actions: torch.Tensor, batch_size: int,
             seed: int, device: torch.device, amp: bool) -> dict[str, Any]:
    """Held-out metrics: the objective's loss, and (when it predicts actions from states) the
    per-slot and exact-match accuracy of the whole tuple predicted from the state alone."""
    was_training = asm.training
    asm.eval()
    objective.eval()
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)  # the same corruption at every validation: comparable numbers
    n = obs.shape[0]
    loss_sum = 0.0
    stat_sums: dict[str, float] = {}
    correct = torch.zeros(asm.config.n_dims, device=device)
    exact = torch.zeros((), device=device)
    for start in range(0, n, batch_size):
        o, a = obs[start:start + batch_size], actions[start:start + batch_size]
        with autocast(device, amp):
            loss, stats = objective.loss(asm, o, a, gen)
            predicted = objective.predict(asm, o).argmax(-1) if objective.predict else None
        w = o.shape[0] / n
        loss_sum += float(loss) * w
        for k, v in stats.items():
            stat_sums[k] = stat_sums.get(k, 0.0) + float(v) * w
        if predicted is not None:
            hit = predicted == a
            correct += hit.float().sum(0)
            exact += hit.all(-1).float().sum()
    asm.train(was_training)
    objective.train(was_training)
    out: dict[str, Any] = {"val_loss": loss_sum}
    out.update({f"val_{k}": v for k, v in stat_sums.items() if k != "loss"})
    if objective.predict is not None:
        per_slot = (correct / n).tolist()
        out.update({"val_slot_acc": float(np.mean(per_slot)), "val_exact_match": float(exact) / n,
                    "val_slot_acc_per_dim": per_slot})
    return out


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Run (or resume, or report a finished) stage-1 pre-training. See the module docstring."""
    device = resolve_device(cfg.device)
    cached = materialise(cfg.dataset, cache_dir=cfg.cache_dir)
    dataset_id = str(cached.metadata.get("dataset_id", Path(str(cfg.dataset)).name))
    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg, dataset_id)
    train_steps, val_steps = split_episodes(cached, cfg.val_fraction, seed=cfg.seed)
    bins = tuple(int(b) for b in cached.bin_grid.counts)
    asm_cfg = cfg.asm_config(cached.obs_dim, bins)

    resolved = asdict(cfg)
    resolved.update(out=str(run_dir), dataset_checksum=cached.content_checksum,
                    dataset_id=dataset_id, asm=asm_cfg.to_dict(),
                    train_steps=int(len(train_steps)), val_steps=int(len(val_steps)))
    identity = [k for k in resolved if k not in RESUMABLE_CHANGES]
    run_dir, state = prepare_run_dir(run_dir, resolved, identity_keys=identity,
                                     defaults=field_defaults(type(cfg)))

    torch.manual_seed(cfg.seed)
    asm = ActionStructureModel(asm_cfg).to(device)
    objective = make_objective(cfg.objective, asm, **cfg.objective_kwargs()).to(device)
    params = [*asm.parameters(), *objective.parameters()]
    optimiser = torch.optim.Adam(params, lr=cfg.lr, fused=device.type == "cuda")
    buffer = TransitionBuffer(cached, device=device, normalise=cfg.normalise, seed=cfg.seed,
                              steps=train_steps)
    mask_gen = torch.Generator(device=device)
    mask_gen.manual_seed(cfg.seed + 1)

    # Validation rows: evenly spaced held-out steps, loaded once.
    pick = val_steps[np.linspace(0, len(val_steps) - 1, min(cfg.val_size, len(val_steps)))
                     .round().astype(np.int64)]
    val_obs = torch.from_numpy(np.asarray(cached.observations()[pick], np.float32)).to(device)
    if buffer.normaliser is not None:
        val_obs = buffer.normaliser(val_obs)
    val_actions = torch.from_numpy(np.asarray(cached.load("actions")[pick])).to(device)

    steps_per_epoch = math.ceil(len(train_steps) / cfg.batch_size)
    monitor, mode = objective.monitor
    sign = 1.0 if mode == "max" else -1.0
    epoch, step, wall, best, best_epoch, since_best, stopped = 0, 0, 0.0, -math.inf, 0, 0, False
    if state is not None:
        asm.load_state_dict(state["model"])
        objective.load_state_dict(state["objective"])
        optimiser.load_state_dict(state["optimiser"])
        buffer.set_generator_state(state["buffer_rng"])
        mask_gen.set_state(state["mask_rng"])
        set_rng_state(state["rng"], device)
        epoch, step, wall = int(state["epoch"]), int(state["step"]), float(state["wall_clock_s"])
        best, best_epoch = float(state["best"]), int(state["best_epoch"])
        since_best, stopped = int(state["since_best"]), bool(state["stopped"])

    columns = ["epoch", "step", "train_loss", "train_masked_acc", "val_loss", "val_masked_acc",
               "val_slot_acc", "val_exact_match", "lr", "steps_per_s", "wall_clock_s"]
    log = MetricsLog(run_dir, columns, resume_step=step if state is not None else None)

    train_step = make_train_step(asm, objective, optimiser, mask_gen, grad_clip=cfg.grad_clip,
                                 amp=cfg.amp, compile=cfg.compile)
    total = cfg.epochs * steps_per_epoch
    bar = tqdm(total=total, initial=min(step, total), disable=not cfg.progress, unit="step",
               desc=f"pretrain {cfg.objective}", dynamic_ncols=True)
    last_row: dict[str, Any] = {}
    asm.train()
    objective.train()
    try:
        while epoch < cfg.epochs and not stopped:
            started = time.perf_counter()
            sums: dict[str, torch.Tensor] = {}
            for i in range(steps_per_epoch):
                batch = buffer.sample(cfg.batch_size)
                stats = train_step(batch.observations, batch.actions)
                for k, v in stats.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
                step += 1
                if (i + 1) % cfg.log_every == 0 or i + 1 == steps_per_epoch:
                    bar.update((i + 1) % cfg.log_every or cfg.log_every)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{float(stats['loss']):.4f}",
                                    refresh=False)
            epoch += 1
            row: dict[str, Any] = {"epoch": epoch, "step": step, "lr": cfg.lr}
            row.update({f"train_{k}": float(v) / steps_per_epoch for k, v in sums.items()})
            epoch_s = time.perf_counter() - started
            row["steps_per_s"] = steps_per_epoch / epoch_s
            if epoch % cfg.val_every == 0 or epoch == cfg.epochs:
                row.update(validate(asm, objective, val_obs, val_actions, cfg.batch_size,
                                    cfg.seed + 2, device, cfg.amp))
                value = sign * row[monitor]
                if value > best + cfg.early_stop_min_delta:
                    best, best_epoch, since_best = value, epoch, 0
                    save_checkpoint(run_dir / "checkpoints" / "best.pt",
                                    {"model": asm.state_dict(), "epoch": epoch})
                else:
                    since_best += 1
                    if cfg.early_stop_patience and since_best >= cfg.early_stop_patience:
                        stopped = True
                bar.set_postfix(epoch=epoch, loss=f"{row['train_loss']:.4f}",
                                **{monitor: f"{row[monitor]:.4f}"}, refresh=False)
            wall += time.perf_counter() - started
            row["wall_clock_s"] = wall
            log.log(row)
            last_row = row
            state = {
                "model": asm.state_dict(), "objective": objective.state_dict(),
                "optimiser": optimiser.state_dict(), "buffer_rng": buffer.generator_state(),
                "mask_rng": mask_gen.get_state(), "rng": rng_state(device), "epoch": epoch,
                "step": step, "wall_clock_s": wall, "best": best, "best_epoch": best_epoch,
                "since_best": since_best, "stopped": stopped,
            }
            save_checkpoint(run_dir / "checkpoints" / "last.pt", state)
            if epoch % cfg.checkpoint_every == 0:
                save_checkpoint(run_dir / "checkpoints" / f"epoch-{epoch}.pt",
                                {"model": asm.state_dict(), "epoch": epoch})
    finally:
        bar.close()
        log.close()

    chosen = epoch
    if cfg.early_stop_patience and best_epoch:
        chosen = best_epoch
        asm.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "best.pt",
                                            map_location=device)["model"])
    if not last_row:  # nothing left to train: report the finished run's last row
        rows = [r for r in read_metrics(run_dir) if r.get("epoch") == epoch]
        last_row = rows[-1] if rows else {}
    info = {
        "format": ASM_FORMAT, "objective": cfg.objective, "asm_config": asm_cfg.to_dict(),
        "dataset": {"location": str(cfg.dataset), "content_checksum": cached.content_checksum,
                    "dataset_id": dataset_id, "env": cached.metadata.get("env", {}),
                    "bin_grid": cached.bin_grid.to_dict(), "obs_dim": cached.obs_dim},
        "normaliser": buffer.normaliser.to_dict() if buffer.normaliser is not None else None,
        "epochs_run": epoch, "chosen_epoch": chosen, "stopped_early": stopped,
        "early_stop": {"patience": cfg.early_stop_patience, "monitor": monitor,
                       "min_delta": cfg.early_stop_min_delta, "best_epoch": best_epoch},
        "wall_clock_s": wall, "steps": step, "final_metrics": last_row,
        "config": asdict(cfg),
    }
    asm_path = save_asm(run_dir / "asm.pt", asm, info)
    return PretrainResult(run_dir=run_dir, asm_path=asm_path, epochs_run=epoch,
                          chosen_epoch=chosen, stopped_early=stopped, wall_clock_s=wall,
                          final_metrics=last_row)


def save_asm(path: Path, asm: ActionStructureModel, info: dict[str, Any]) -> Path:
    """``asm.pt`` (weights + the info as a JSON string: self-contained) and ``asm.json``."""
    save_checkpoint(path, {"model": asm.state_dict(), "info": json.dumps(info, default=str)})
    write_json(path.with_suffix(".json"), info)
    return path


def load_asm(path: str | Path, device: str | torch.device = "cpu"
             ) -> tuple[ActionStructureModel, dict[str, Any]]:
    """An ASM saved by :func:`pretrain` (its ``asm.pt``, or the run directory holding it) and
    its info (dataset checksum, bin grid, normaliser, config, wall-clock)."""
    path = Path(path)
    if path.is_dir():
        path = path / "asm.pt"
    state = load_checkpoint(path, map_location=device)
    if "info" not in state or "model" not in state:
        raise RunError(f"{path} is not an ASM checkpoint written by spin-train pretrain")
    info = json.loads(state["info"])
    asm = ActionStructureModel(ASMConfig.from_dict(info["asm_config"])).to(device)
    asm.load_state_dict(state["model"])
    return asm, info


def asm_normaliser(info: dict[str, Any]) -> ObservationNormaliser | None:
    """The observation normaliser an ASM was trained with (None if it saw raw observations)."""
    return ObservationNormaliser.from_dict(info["normaliser"]) if info.get("normaliser") else None
