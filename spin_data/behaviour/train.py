"""Training behaviour policies with stable-baselines3 into a cached, resumable checkpoint ladder.

A run lives in its run directory (:mod:`spin_data.behaviour.run_dir`: layout, commit order,
single-writer lock). Each rung saves a checkpoint and a resume state, then commits the ladder;
a run killed at any point restarts from its last committed rung, and a run of the same settings
with a larger budget extends a finished shorter one (:mod:`spin_data.behaviour.resume`). The
resume state also holds every generator and where each training env is, so an off-policy run
(sac, tqc, crossq) killed and resumed writes the same checkpoints, byte for byte, as an
uninterrupted one. A finished run then confirms its expert and medium picks
(:mod:`spin_data.behaviour.confirm`): its few best rungs, and earlier rungs by bisection towards
the medium target, scored again on many fresh episodes, committed the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spin_data.behaviour import learners
from spin_data.behaviour.config import SPIN_KEYS, BehaviourConfig
from spin_data.behaviour.confirm import confirm_rungs
from spin_data.behaviour.evaluation import bin_grid_of, evaluate_returns
from spin_data.behaviour.ladder import Ladder, Rung, finite_or_none
from spin_data.behaviour.policy import (
    BehaviourPolicy,
    build_policy_module,
    checkpoint_name,
    load_into,
    make_policy_spec,
    save_state,
)
from spin_data.behaviour.resume import (
    EpisodeCounter,
    cut_run,
    extend_run,
    find_longer_run,
    find_shorter_run,
    load_resume_state,
    restore_training_state,
    save_resume_state,
)
from spin_data.behaviour.run_dir import (commit_ladder, drop_stale, load_ladder, run_directory,
                                         run_lock)
from spin_data.collect import UniformRandomPolicy
from spin_data.envs import registry
from spin_data.files import write_text_atomic


# ============================================================================= environments
def make_training_env(config: BehaviourConfig) -> Any:
    """SB3's vectorised training envs: ``n_envs`` copies, env ``i`` seeded ``seed + i``.

    SAC gets the continuous view, PPO the MultiDiscrete task (a maze's as one
    :class:`~spin_data.behaviour.maze_vec_env.BatchedMazeVecEnv`). On mazes with a non-zero
    ``reward_shaping_scale`` each env is wrapped (outside SB3's Monitor, which therefore still
    logs true returns) in :class:`spin_data.behaviour.shaping.PotentialShaping`.
    """
    from stable_baselines3.common.env_util import make_vec_env

    continuous = config.algorithm in learners.SQUASHED_GAUSSIAN
    wrapper_class = wrapper_kwargs = None
    scale = config.hyperparameters.get("reward_shaping_scale", 0.0)
    if config.family == "maze" and not continuous:
        # The same envs, seeds and shaping stepped as one numpy batch (see maze_vec_env).
        from spin_data.behaviour.maze_vec_env import BatchedMazeVecEnv

        maze = registry.make_env(config.env).get_wrapper_attr("config")
        shaping = {"gamma": config.hyperparameters["gamma"], "scale": scale} if scale else None
        venv = BatchedMazeVecEnv(maze, config.n_envs, shaping)
        venv.seed(config.seed)
        return venv
    if config.family == "maze" and scale:
        from spin_data.behaviour.shaping import PotentialShaping

        wrapper_class = PotentialShaping
        wrapper_kwargs = {"gamma": config.hyperparameters["gamma"], "scale": scale}
    # Inside SB3's Monitor, each env counts its episodes and steps for exact resume (resume.py).
    return make_vec_env(
        lambda: EpisodeCounter(registry.make_env(config.env, bins=config.bins, grid=config.grid,
                                                 continuous=continuous)),
        n_envs=config.n_envs, seed=config.seed, wrapper_class=wrapper_class,
        wrapper_kwargs=wrapper_kwargs,
    )


def _algorithm_class(config: BehaviourConfig) -> Any:
    return learners.algorithm_class(config.algorithm, config.library)


def resolve_device(config: BehaviourConfig, device: str) -> str:
    """The torch device SB3 trains on: ``"auto"`` = CUDA when present for SAC, CPU for PPO
    (PPO's small MLPs and on-policy rollouts run faster on a CPU; SB3 itself warns otherwise).
    sbx learners ignore it: JAX places them on its default backend (a GPU when jax[cuda] is
    installed)."""
    if device != "auto":
        return device
    if config.algorithm == "ppo" or config.library == "sbx":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _new_model(config: BehaviourConfig, venv: Any, device: str) -> Any:
    params = {k: v for k, v in config.hyperparameters.items() if k not in SPIN_KEYS}
    policy_kwargs = {"net_arch": list(config.hyperparameters["net_arch"]),
                     "activation_fn": learners.activation(config.hyperparameters["activation_fn"],
                                                          config.library)}
    return _algorithm_class(config)("MlpPolicy", venv, seed=config.seed, device=device, verbose=0,
                                    policy_kwargs=policy_kwargs, **params)


# ============================================================================= training
def train_behaviour(
    config: BehaviourConfig,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    on_rung: Callable[[Rung], None] | None = None,
    device: str = "auto",
) -> Ladder:
    """Train (or resume, or just read back) ``config``'s run and return its checkpoint ladder.

    Rung 0 is the untrained policy; then a rung every ``eval_every`` training env steps and one
    at the budget (PPO trains in whole rollouts of ``n_steps * n_envs`` steps, so its rungs
    land on the first rollout boundary at or past each target; the rung records the real step).
    Each rung saves the policy weights and scores the stochastic policy on ``eval_episodes``
    fixed-seed episodes of the true task.

    Args:
        config: the run.
        cache_dir: directory of run directories (default ``$SPIN_CACHE_DIR/behaviour``).
        progress: show a tqdm bar over training env steps with the latest rung's score.
        on_rung: called with each newly committed rung (after it is safely on disk).
        device: torch device for SB3 (``"auto"``: see :func:`resolve_device`). Not part of the
            cache key: checkpoints are saved on the CPU either way.

    Once the budget is reached the run's picks are confirmed
    (:func:`~spin_data.behaviour.confirm.confirm_rungs`).

    Returns:
        The complete, confirmed ladder. A run already so in the cache returns at once,
        untouched.

    Raises:
        RunLocked: another process is training the same run.
    """
    run = run_directory(config, cache_dir)
    done = load_ladder(run)
    if done is not None and done.complete and done.medium_confirmed:
        return done
    run.mkdir(parents=True, exist_ok=True)
    # One torch/XLA thread is the fast setting for these small updates (see learners).
    with learners.one_thread(), run_lock(run):
        ladder = _train_locked(config, run, progress, on_rung, resolve_device(config, device))
        if not ladder.medium_confirmed:  # also runs finished before confirmation existed
            ladder = confirm_rungs(config, run, ladder, progress)
        return ladder


def _train_locked(config: BehaviourConfig, run: Path, progress: bool,
                  on_rung: Callable[[Rung], None] | None, device: str) -> Ladder:
    ladder = load_ladder(run)
    if ladder is not None and ladder.complete:
        return ladder  # another process finished it between our first look and the lock
    write_text_atomic(run / "config.json", json.dumps(config.to_dict(), indent=2))
    if ladder is None:
        longer = find_longer_run(config, run.parent)
        if longer is not None:  # nothing to train: its first config.budget steps are this run
            return cut_run(config, run, *longer)
    venv = make_training_env(config)
    try:
        model, ladder, resumed_from = _start_or_resume(config, run, venv, ladder, device)
        # Every learner's policy is stored as plain torch weights of one SB3 network kind
        # ("sac": the squashed-Gaussian actor; "ppo": the actor-critic) and scored from that
        # copy, so a rung's score is the score of exactly the file that datasets will load.
        spec = make_policy_spec(
            "ppo" if config.algorithm == "ppo" else "sac", venv.observation_space,
            venv.action_space, config.hyperparameters["net_arch"],
            config.hyperparameters["activation_fn"], bin_grid_of(config),
            env=config.canonical_env, bins=config.bins, grid=config.grid,
            cache_key=config.cache_key(),
            learner={"algorithm": config.algorithm, "library": config.library})
        write_text_atomic(run / "policy.json", json.dumps(spec, indent=2))
        policy = BehaviourPolicy(build_policy_module(spec), spec)

        def add_rung(wall_seconds: float) -> Rung:
            step = int(model.num_timesteps)
            model.policy.set_training_mode(False)
            name = checkpoint_name(step)
            state = learners.actor_state_dict(model, config.algorithm, config.library)
            sha = save_state(state, run / name)
            load_into(policy.module, spec, state)
            returns = evaluate_returns(config, policy)
            ref = registry.reference_score(config.env, config.bins)
            mean = float(returns.mean())
            rung = Rung(step=step, mean_return=mean, std_return=float(returns.std()),
                        normalised=None if ref is None else finite_or_none(ref.normalise(mean)),
                        checkpoint=name, sha256=sha, wall_seconds=round(wall_seconds, 3),
                        returns=tuple(float(r) for r in returns))
            save_resume_state(model, config, run, step, venv)
            ladder.rungs.append(rung)
            ladder.complete = step >= config.budget
            commit_ladder(run, ladder)
            drop_stale(run, ladder)
            return rung

        if not ladder.rungs:
            rung = add_rung(0.0)
            if on_rung:
                on_rung(rung)
        if resumed_from is not None:  # last, so that nothing above shifts the generators
            restore_training_state(model, venv, resumed_from)
        with _progress_bar(config, ladder, progress) as bar:
            callback = _ProgressCallback(bar, config.hyperparameters.get("learning_starts", 0))
            while model.num_timesteps < config.budget:
                last = ladder.rungs[-1]
                target = min((last.step // config.eval_every + 1) * config.eval_every,
                             config.budget)
                started = time.perf_counter()
                model.learn(total_timesteps=target - model.num_timesteps,
                            reset_num_timesteps=False, callback=callback, progress_bar=False)
                rung = add_rung(last.wall_seconds + time.perf_counter() - started)
                if bar is not None:
                    bar.total = max(bar.total, rung.step)
                    bar.n = rung.step
                    bar.set_postfix_str(_score_text(ladder, rung), refresh=True)
                if on_rung:
                    on_rung(rung)
        if not ladder.complete:  # resumed at or past the budget (e.g. budget already reached)
            ladder.complete = True
            commit_ladder(run, ladder)
            drop_stale(run, ladder)
        return ladder
    finally:
        venv.close()


def _start_or_resume(config: BehaviourConfig, run: Path, venv: Any, ladder: Ladder | None,
                     device: str) -> tuple[Any, Ladder, Path | None]:
    """Load the SB3 state of the last committed rung that has one, or start afresh.

    Returns the model, the ladder, and the resume state loaded (None for a fresh start), whose
    generators and env positions :func:`~spin_data.behaviour.resume.restore_training_state`
    puts back once the rest of the set-up is done."""
    if ladder is not None:
        # Walk back to the newest rung whose resume state survived (normally the last one).
        popped = False
        while ladder.rungs:
            state = run / "resume" / f"step-{ladder.rungs[-1].step}"
            if (state / "model.zip").exists():
                model = load_resume_state(config, state, venv, device)
                if popped:
                    commit_ladder(run, ladder)  # before drop_stale deletes their checkpoints
                drop_stale(run, ladder)
                return model, ladder, state
            ladder.rungs.pop()
            popped = True
    shorter = find_shorter_run(config, run.parent)
    if shorter is not None:
        ladder = extend_run(config, run, *shorter)
        state = run / "resume" / f"step-{ladder.rungs[-1].step}"
        return load_resume_state(config, state, venv, device), ladder, state
    ref = registry.reference_score(config.env, config.bins)
    random_returns = evaluate_returns(
        config, UniformRandomPolicy(bin_grid_of(config)))
    ladder = Ladder(
        env=config.canonical_env, bins=config.bins, algorithm=config.algorithm,
        cache_key=config.cache_key(), budget=config.budget,
        reference_expert=None if ref is None else ref.expert,
        reference_random=None if ref is None else ref.random,
        random_return=float(random_returns.mean()),
    )
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    shutil.rmtree(run / "resume", ignore_errors=True)
    return _new_model(config, venv, device), ladder, None


# ============================================================================= progress
def _score_text(ladder: Ladder, rung: Rung) -> str:
    if rung.normalised is not None:
        return f"return={rung.mean_return:.1f} normalised={rung.normalised:.2f}"
    return f"return={rung.mean_return:.1f}"


@contextlib.contextmanager
def _progress_bar(config: BehaviourConfig, ladder: Ladder, enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=config.budget, initial=ladder.rungs[-1].step, unit="step",
               desc=f"{config.algorithm} {config.canonical_env}", dynamic_ncols=True)
    bar.set_postfix_str(_score_text(ladder, ladder.rungs[-1]))
    try:
        yield bar
    finally:
        bar.close()


def _progress_callback_base() -> type:
    from stable_baselines3.common.callbacks import BaseCallback

    return BaseCallback


class _ProgressCallback(_progress_callback_base()):  # type: ignore[misc]
    """Moves the tqdm bar with SB3's step counter (every env step, all envs at once).

    The first ``warmup`` steps (an off-policy learner's ``learning_starts``: random actions, no
    updates) run ten times faster than training; the bar's rate and time left restart when they
    end, so its estimate is the training rate from then on instead of minutes that grow to hours.
    """

    def __init__(self, bar: Any, warmup: int = 0) -> None:
        super().__init__()
        self.bar = bar
        self.warmup = warmup
        self.timing_restarted = False

    def _on_step(self) -> bool:
        bar = self.bar
        if bar is None:
            return True
        bar.total = max(bar.total, self.num_timesteps)
        if not self.timing_restarted and self.num_timesteps >= self.warmup:
            self.timing_restarted = True
            if bar.n < self.warmup:  # it was in the warm-up until this step
                postfix = bar.postfix
                bar.reset(total=bar.total)  # restarts the clock and the rate
                bar.n = bar.last_print_n = bar.initial = self.num_timesteps
                bar.set_postfix_str(postfix or "", refresh=True)
                return True
        bar.update(self.num_timesteps - bar.n)
        return True  # anything falsy stops SB3's learn() after this step
