"""Stage 2 of SPIN: an actor (frozen-ASM ``spin`` or a baseline) trained with an offline RL
objective on a dataset, evaluated in the real environment (Algorithm 2).

``train_policy(PolicyConfig(dataset=..., asm=..., actor=..., algo=...))`` writes a run
directory: ``config.json``, ``metrics.csv``/``metrics.jsonl`` (one row per evaluation),
``checkpoints/last.pt`` (the full state at the last evaluation, loaded with ``weights_only=True``),
``policy.pt`` (final weights) and ``learning_curve.png``. Re-running the same command resumes,
from the last evaluation or, before the first one, from the end of the learner's first phase.

Wall-clock (``wall_clock_s``) counts gradient steps (and SPIN-Distill's distillation) from the
start of the run, plus, for actors built on a pre-trained ASM, the ASM's own recorded stage-1
wall-clock: the paper's time-to-target convention. Evaluation time is excluded (it measures the
simulator, not the learner) and logged separately as ``eval_s``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from spin_data.envs import make_env
from spin_data.envs.bins import BinGrid
from spin_train.algos import (JOINT_ACTORS, AWACOptions, BCQOptions, DiscreteBCQOptions,
                              DiscreteCQLOptions, IQLOptions, Learner, MerlionBCQOptions,
                              MerlionCQLOptions, algorithms_for, check_combination)
from spin_train.data import (ObservationNormaliser, PhaseData, TransitionBuffer, check_compatible,
                             check_env, materialise)
from spin_train.device import autocast, maybe_compile, resolve_device, rng_state, set_rng_state
from spin_train.models.asm import QUERY_INITS, ActionStructureModel
from spin_train.models.actors import ACTORS, ActorOptions, make_actor
from spin_train.algos.joint import TD_LOSSES
from spin_train.algos.merlion import DISTANCE_UNITS
from spin_train.models.joint import check_enumerable
from spin_train.models.merlion import TRANSITION_LOSSES
from spin_train.options import (RunOptions, check_finite, field_defaults, option, options_from,
                                resumable_fields)
from spin_train.policy.evaluate import env_make_kwargs, evaluate, evaluation_seeds
from spin_train.pretrain.trainer import asm_normaliser, load_asm
from spin_train.runs import MetricsLog, prepare_run_dir, read_metrics, save_checkpoint

NEEDS_ASM = ("spin", "distill")
#: The settings that name one of a few choices (the CLI lists them).
CHOICES = {"merlion_transition_loss": TRANSITION_LOSSES, "merlion_units": DISTANCE_UNITS,
           "cql_td_loss": TD_LOSSES, "query_init": QUERY_INITS}
#: Every ``--actor``: the factored actors, then those over the enumerated joint action set.
POLICY_ACTORS = ACTORS + tuple(JOINT_ACTORS)


@dataclass(kw_only=True)
class PolicyConfig(IQLOptions, AWACOptions, BCQOptions, DiscreteBCQOptions, DiscreteCQLOptions,
                   MerlionBCQOptions, MerlionCQLOptions, ActorOptions, RunOptions):
    """Everything a stage-2 run depends on (defaults: REFERENCE section 3): the run's own
    settings below, each method's options (its ``Options`` dataclass, next to its code, under the
    same names) and the run options every spin-train command shares."""

    asm: str | None = option(
        None, "pre-trained ASM (asm.pt or its run directory): spin and distill only",
        resumable=True)
    actor: str = option("spin", "spin, saint, factored, autoregressive, distill (factored "
                                "actions); joint, merlion (enumerated joint actions)")
    algo: str = option("iql", "iql, awac, bcq (factored actors); bcq, cql, bc (joint); "
                              "bcq, cql (merlion)")
    steps: int = option(1_000_000, "gradient steps", resumable=True)
    batch_size: int = option(256, "transitions per step")
    reward_scale: float | None = option(
        None, "rewards x this; default 1, or 1/max|r| if a step's |r| > 1")
    normalise: bool = option(
        True, "standardise observations (spin/distill: as their ASM did, with its statistics)")
    eval_every: int = option(5_000, "gradient steps between evaluations (and checkpoints)",
                             resumable=True)
    eval_episodes: int = option(10, "episodes per evaluation, run as one batch of environments")
    log_every: int = option(1_000, "steps between reads of the losses on the host",
                            resumable=True)
    compile: bool = option(False, "torch.compile the actor's log-probability", resumable=True)

    def __post_init__(self) -> None:
        check_finite(self)
        if self.actor not in POLICY_ACTORS:
            raise ValueError(f"unknown actor {self.actor!r}: accepted "
                             f"{', '.join(POLICY_ACTORS)}")
        check_combination(self.actor, self.algo)
        if self.actor in NEEDS_ASM and not self.asm:
            raise ValueError(f"the {self.actor} actor needs --asm (a pre-trained ASM: run "
                             f"spin-train pretrain first)")
        if self.actor not in NEEDS_ASM and self.asm:
            raise ValueError(f"--asm is only for the spin and distill actors, not "
                             f"{self.actor} (it learns from scratch)")
        for name in ("steps", "batch_size", "eval_every", "eval_episodes", "log_every",
                     "ensemble", "critic_hidden", "merlion_dim", "merlion_batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("distill_steps", "merlion_steps", "cql_alpha", "merlion_cql_alpha",
                     "cql_target_every", "merlion_penalty", "merlion_prior_clip",
                     "merlion_cql_bc_steps", "critic_prefit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.critic_prefit and self.algo != "iql":
            raise ValueError(f"critic_prefit is for --algo iql (its critic never reads the "
                             f"actor), not {self.algo}")
        for name, accepted in CHOICES.items():
            if getattr(self, name) not in accepted:
                raise ValueError(f"{name} must be one of {', '.join(accepted)}, got "
                                 f"{getattr(self, name)!r}")
        for name in ("bcq_threshold", "merlion_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.discount <= 1.0 or not 0.0 < self.tau <= 1.0:
            raise ValueError(f"need discount in [0, 1] and tau in (0, 1], got {self.discount}, "
                             f"{self.tau}")
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"expectile must be in (0, 1), got {self.expectile}")
        if min(self.lr, self.awac_lambda, self.max_weight, self.merlion_lr) <= 0:
            raise ValueError("lr, awac_lambda, max_weight and merlion_lr must be > 0")
        for name in ("saint_dropout", "head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.reward_scale is not None and self.reward_scale <= 0:
            raise ValueError(f"reward_scale must be > 0, got {self.reward_scale}")
        # SAINT's transformer sizes, checked by the model's own config before any work starts.
        self.saint_config(obs_dim=1, bins=(2,))


@dataclass
class PolicyResult:
    run_dir: Path
    steps: int
    final: dict[str, Any] = field(default_factory=dict)  # the last evaluation row


def env_from_metadata(metadata: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The evaluation environment a dataset was collected in: ``(name, make_env kwargs)``."""
    env = metadata.get("env") or {}
    if "name" not in env:
        raise ValueError("the dataset's metadata names no environment: cannot evaluate in it")
    return env["name"], dict(env.get("kwargs") or {})


def default_reward_scale(cached) -> float:
    """1 when every step reward lies in [-1, 1] (DM Control's rewards do: the paper's setting),
    else ``1 / max |r|``: the maze's +100 goal becomes 1. With raw +100 rewards, early critic
    errors of several units become advantages that ``exp(beta * A)`` turns into clamped
    weights, and the actor collapses onto noise before the critic settles."""
    peak = float(np.abs(cached.rewards()).max()) if cached.n_steps else 0.0
    return 1.0 if peak <= 1.0 else 1.0 / peak


def default_run_dir(cfg: PolicyConfig, dataset_id: str) -> Path:
    return Path("runs") / "policy" / f"{dataset_id}-{cfg.actor}-{cfg.algo}-s{cfg.seed}"


def _check_asm_matches(info: dict[str, Any], cached, dataset: str, normalise: bool) -> None:
    """Refuse an ASM pre-trained on another task or bin grid, naming both, or on observations
    standardised otherwise than ``normalise`` asks (the actor sees what its ASM saw)."""
    d = info["dataset"]
    check_compatible(f"{cached.metadata.get('dataset_id', '?')} ({dataset})", cached.obs_dim,
                     cached.bin_grid, f"the ASM's dataset {d.get('dataset_id')} "
                     f"(env {d.get('env', {}).get('name', '?')})", int(d["obs_dim"]),
                     BinGrid.from_dict(d["bin_grid"]))
    ours, theirs = cached.metadata.get("env", {}).get("name"), d.get("env", {}).get("name")
    if ours and theirs and ours != theirs:
        raise ValueError(f"the ASM was pre-trained on {theirs}, the dataset is {ours}: "
                         f"pre-train an ASM on this task")
    standardised = asm_normaliser(info) is not None
    if standardised != normalise:
        seen = "standardised" if standardised else "raw"
        raise ValueError(f"the ASM was pre-trained on {seen} observations, and spin and distill "
                         f"see what their ASM saw: pass --{'' if standardised else 'no-'}"
                         f"normalise, or pre-train an ASM with --{'' if normalise else 'no-'}"
                         f"normalise")


def build_learner(cfg: PolicyConfig, obs_dim: int, bins: tuple[int, ...],
                  asm: ActionStructureModel | None = None) -> Learner:
    """The run's learner, on the CPU: ``cfg.actor``'s (and ``cfg.algo``'s) classes, each given
    its own options from ``cfg`` (a factored actor first, for the objectives that train one)."""
    cls = algorithms_for(cfg.actor)[cfg.algo]
    options = options_from(cfg, cls.Options)
    if cfg.actor in JOINT_ACTORS:
        return cls(obs_dim, bins, options)
    actor = make_actor(cfg.actor, obs_dim=obs_dim, bins=bins, asm=asm,
                       asm_config=cfg.saint_config(obs_dim, bins),
                       distill_steps=cfg.distill_steps, query_init=cfg.query_init,
                       head_dropout=cfg.head_dropout, trunk_dropout=cfg.trunk_dropout)
    return cls(actor, obs_dim, bins, options)


def train_policy(cfg: PolicyConfig) -> PolicyResult:
    """Run (or resume, or report a finished) stage-2 training. See the module docstring."""
    device = resolve_device(cfg.device)
    cached = materialise(cfg.dataset, cache_dir=cfg.cache_dir)
    dataset_id = str(cached.metadata.get("dataset_id", Path(str(cfg.dataset)).name))
    env_name, env_kwargs = env_from_metadata(cached.metadata)
    probe_env = make_env(env_name, **env_make_kwargs(env_name, env_kwargs))
    check_env(cached, probe_env, env_name)
    probe_env.close()
    bins = tuple(int(b) for b in cached.bin_grid.counts)
    if cfg.actor in JOINT_ACTORS:  # refused before anything is written
        check_enumerable(bins, f"{dataset_id} ({env_name})")

    asm, asm_info, stage1_s = None, None, 0.0
    if cfg.asm:
        asm, asm_info = load_asm(cfg.asm, device=device)
        _check_asm_matches(asm_info, cached, cfg.dataset, cfg.normalise)
        stage1_s = float(asm_info.get("wall_clock_s", 0.0))
    if asm_info is not None:
        normaliser = asm_normaliser(asm_info)
    else:
        normaliser = ObservationNormaliser.from_cached(cached) if cfg.normalise else None

    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg, dataset_id)
    reward_scale = cfg.reward_scale if cfg.reward_scale is not None else default_reward_scale(
        cached)
    refs = cached.metadata.get("reference_scores")
    resolved = asdict(cfg) | {
        "out": str(run_dir), "dataset_id": dataset_id, "dataset_checksum": cached.content_checksum,
        "env": env_name, "env_kwargs": env_kwargs, "reference_scores": refs,
        "asm_checksum_of_dataset": asm_info["dataset"]["content_checksum"] if asm_info else None,
        "stage1_wall_clock_s": stage1_s, "reward_scale": reward_scale,
        "normaliser": normaliser.to_dict() if normaliser is not None else None,
    }
    identity = [k for k in resolved if k not in resumable_fields(type(cfg))]
    run_dir, state = prepare_run_dir(run_dir, resolved, identity_keys=identity,
                                     defaults=field_defaults(type(cfg)))

    torch.manual_seed(cfg.seed)
    buffer = TransitionBuffer(cached, device=device, seed=cfg.seed)
    norm = normaliser.on(device) if normaliser is not None else (lambda obs: obs)

    def prepare(batch):
        """The learner's view of a batch: normalised observations, scaled rewards."""
        batch.observations = norm(batch.observations)
        batch.next_observations = norm(batch.next_observations)
        if reward_scale != 1.0:
            batch.rewards = batch.rewards * reward_scale
        return batch

    algo = build_learner(cfg, cached.obs_dim, bins, asm).to(device)
    algo.use_autocast(device, cfg.amp)
    algo.set_data_scale(None if normaliser is None else torch.as_tensor(normaliser.std,
                                                                        device=device),
                        reward_scale)
    first_phase: dict[str, float | None] = {}
    if state is None:
        phase_generator = torch.Generator(device=device)
        phase_generator.manual_seed(cfg.seed + 2)
        first_phase = algo.first_phase(PhaseData(
            sample=lambda n: prepare(buffer.sample(n)), batch_size=cfg.batch_size,
            generator=phase_generator, progress=cfg.progress))
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg.seed + 1)
    step, wall = 0, stage1_s + sum(v for k, v in first_phase.items() if k.endswith("_s"))
    if state is not None:
        algo.load_full_state(state["algo"])
        buffer.set_generator_state(state["buffer_rng"])
        generator.set_state(state["rng"])
        set_rng_state(state["torch_rng"], device)
        step, wall = int(state["step"]), float(state["wall_clock_s"])

    columns = ["step", "eval_return_mean", "eval_return_std", "eval_normalised", "wall_clock_s",
               "eval_s", "steps_per_s", "q_loss", "v_loss", "actor_loss", "adv_weight",
               "q_mean", "cql_gap", "vae_loss", "distill_s", "distill_loss",
               "representation_s", "representation_loss", "critic_prefit_s",
               "critic_prefit_q_mean"]
    log = MetricsLog(run_dir, columns, resume_step=step if state is not None else None)
    if state is None:  # the untrained policy is the curve's first point
        log.log(_evaluation(algo, norm, cfg, env_name, env_kwargs, 0, device)
                | {"step": 0, "wall_clock_s": wall} | first_phase)
        # Stopped before the first evaluation, a run resumes here: its first phase (a critic
        # prefit, SPIN-Distill's distillation: up to hours) is not done again.
        _save(run_dir, algo, buffer, generator, 0, wall)

    update = maybe_compile(algo.update, cfg.compile)
    bar = tqdm(total=cfg.steps, initial=min(step, cfg.steps), disable=not cfg.progress,
               unit="step", desc=f"{cfg.actor}-{cfg.algo}", dynamic_ncols=True)
    last_eval = (read_metrics(run_dir) or [{}])[-1]
    sums: dict[str, torch.Tensor] = {}
    n_summed = 0
    algo.train()
    try:
        started = time.perf_counter()
        since = step
        while step < cfg.steps:
            stats = update(prepare(buffer.sample(cfg.batch_size)), generator)
            for k, v in stats.items():
                sums[k] = sums[k] + v if k in sums else v.detach().clone()
            n_summed += 1
            step += 1
            if step % cfg.log_every == 0 or step % cfg.eval_every == 0 or step == cfg.steps:
                bar.update(step - bar.n)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                elapsed = time.perf_counter() - started
                wall += elapsed
                row = {"step": step, "wall_clock_s": wall, "steps_per_s": (step - since) / elapsed}
                row |= {k: float(v) / n_summed for k, v in sums.items()}
                row |= _evaluation(algo, norm, cfg, env_name, env_kwargs, step, device)
                log.log(row)
                last_eval = row
                sums, n_summed = {}, 0
                _save(run_dir, algo, buffer, generator, step, wall)
                bar.set_postfix(ret=f"{row['eval_return_mean']:.1f}", refresh=False)
                started, since = time.perf_counter(), step
    finally:
        bar.close()
        log.close()
    save_checkpoint(run_dir / "policy.pt", algo.final_weights() | {"step": step})
    _plot(run_dir)
    return PolicyResult(run_dir=run_dir, steps=step, final=last_eval)


def _evaluation(algo: Learner, norm, cfg: PolicyConfig, env_name: str,
                env_kwargs: dict[str, Any], step: int, device: torch.device) -> dict[str, Any]:
    """``eval_episodes`` seeded episodes, batched; the same environment seeds every time, and
    a sampling generator seeded by (seed, step) so a resumed run evaluates identically."""
    started = time.perf_counter()
    env_seed, sampling_seed = evaluation_seeds(cfg.seed, step)
    generator = torch.Generator(device=device)
    generator.manual_seed(sampling_seed)
    algo.eval()

    def policy_fn(observations: np.ndarray) -> np.ndarray:
        obs = norm(torch.as_tensor(observations, dtype=torch.float32, device=device))
        with torch.no_grad(), autocast(device, cfg.amp):
            return algo.eval_actions(obs, generator).cpu().numpy()

    result = evaluate(policy_fn, env_name, env_kwargs, episodes=cfg.eval_episodes,
                      seed=env_seed)
    algo.train()
    return {"eval_return_mean": float(result.mean), "eval_return_std": float(result.std),
            "eval_normalised": result.normalised, "eval_s": time.perf_counter() - started}


def _save(run_dir: Path, algo: Learner, buffer: TransitionBuffer,
          generator: torch.Generator, step: int, wall: float) -> None:
    state = {"algo": algo.full_state(), "buffer_rng": buffer.generator_state(),
             "rng": generator.get_state(), "torch_rng": rng_state(buffer.device), "step": step,
             "wall_clock_s": wall}
    save_checkpoint(run_dir / "checkpoints" / "last.pt", state)


def _plot(run_dir: Path) -> None:
    try:
        from spin_train.report import plot_run
    except ImportError:  # pragma: no cover - matplotlib missing
        return
    plot_run(run_dir, run_dir / "learning_curve.png")
