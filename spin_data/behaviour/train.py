"""Training behaviour policies with stable-baselines3 into a cached, resumable checkpoint ladder.

Run directory ``<cache>/behaviour/<canonical env>-<cache key>/`` (``<cache>`` is
``$SPIN_CACHE_DIR``, default ``~/.cache/spin``)::

    config.json            the resolved BehaviourConfig
    policy.json            how to rebuild the policy network (no pickle; see policy.py)
    ladder.json            the rungs so far and whether the run is complete (the commit point)
    ladder.csv             the same rungs as a table
    checkpoints/step-N.safetensors
                           policy state_dict at N training env steps (see policy.py)
    resume/step-N/         SB3's own model.zip (+ replay_buffer.pkl for SAC) at the last rung,
                           and rng.json: generators and env positions (see resume.py)

``resume/`` is SB3's native format, which is a pickle: spin only ever reads back files it wrote
itself in this directory, uses them for nothing but continuing a run, and never ships them.
Checkpoints are what other code loads. The last rung's resume state is kept when the run
completes, so that a run of the same settings with a larger budget *extends* it (copies its
rungs and training state and goes on from its last rung) instead of starting over; deleting
``resume/`` of a finished run reclaims its disk (the replay buffer: about
``buffer_size x 2 x obs_dim x 4`` bytes) and only gives up that extension.

A rung is committed in this order: checkpoint, resume state, then ``ladder.json`` replaced
atomically. A run killed at any point therefore restarts from its last committed rung; work
after it is redone. The resume state also holds every generator and where each training env is
(``rng.json``, :mod:`spin_data.behaviour.resume`), so an off-policy run (sac, tqc, crossq)
killed and resumed writes the same checkpoints, byte for byte, as an uninterrupted one. A
finished run then confirms its expert and medium picks (:func:`confirm_rungs`): its few best
rungs, and earlier rungs by bisection towards the medium target, scored again on many fresh
episodes, committed the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from spin_data.behaviour import learners
from spin_data.behaviour.config import SPIN_KEYS, BehaviourConfig
from spin_data.behaviour.ladder import Ladder, Rung, finite_or_none
from spin_data.behaviour.policy import (
    BehaviourPolicy,
    build_policy_module,
    checkpoint_name,
    load_into,
    load_policy,
    make_policy_spec,
    save_state,
)
from spin_data.behaviour.resume import (EpisodeCounter, restore_training_state,
                                        save_training_state)
from spin_data.collect import UniformRandomPolicy, collect_episodes
from spin_data.envs import registry
from spin_data.files import exclusive_lock, write_text_atomic
from spin_data.paths import cache_root

#: Evaluation episodes reset with seeds EVAL_SEED_BASE + 10_000 * config.seed + e, far from the
#: training envs' seeds (config.seed + i), and identical at every rung (common random numbers).
EVAL_SEED_BASE = 1_000_000
#: First reset seed of the confirmation episodes (see :func:`confirm_rungs`).
CONFIRM_SEED_BASE = 2_000_000
#: Expert (and medium) candidates a finished run scores again on fresh episodes.
CONFIRM_RUNGS = 3
#: Confirmation episodes per candidate, as a multiple of the rungs' ``eval_episodes``.
CONFIRM_FACTOR = 10


class RunLocked(RuntimeError):
    """Another process is training the same run (same cache entry) right now."""


def default_cache_dir() -> Path:
    """``<cache root>/behaviour``: :func:`spin_data.paths.cache_root` is ``$SPIN_CACHE_DIR``,
    default ``~/.cache/spin``."""
    return cache_root() / "behaviour"


def run_directory(config: BehaviourConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``config``'s run lives: ``<cache_dir>/<canonical env>-<cache key>``.

    ``cache_dir`` defaults to :func:`default_cache_dir`.
    """
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / f"{config.canonical_env}-{config.cache_key()}"


def eval_seeds(config: BehaviourConfig) -> list[int]:
    """Reset seeds of the evaluation episodes of every rung."""
    return [EVAL_SEED_BASE + 10_000 * config.seed + e for e in range(config.eval_episodes)]


def confirm_episodes(config: BehaviourConfig) -> int:
    """Fresh episodes each expert candidate is scored on: :data:`CONFIRM_FACTOR` x the rungs'."""
    return CONFIRM_FACTOR * config.eval_episodes


def confirm_seeds(config: BehaviourConfig) -> list[int]:
    """Reset seeds of the confirmation episodes (disjoint from :func:`eval_seeds`)."""
    return [CONFIRM_SEED_BASE + 100_000 * config.seed + e
            for e in range(confirm_episodes(config))]


# ============================================================================= environments
def make_eval_env(config: BehaviourConfig) -> Any:
    """The raw task (MultiDiscrete bin indices, true rewards) that rungs are scored on."""
    return registry.make_env(config.env, bins=config.bins, grid=config.grid)


def bin_grid_of(config: BehaviourConfig) -> Any:
    """The run's :class:`~spin_data.envs.BinGrid` (read from a freshly built env)."""
    env = make_eval_env(config)
    try:
        return env.get_wrapper_attr("bin_grid")
    finally:
        env.close()


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


# ============================================================================= evaluation
def evaluate_returns(config: BehaviourConfig, policy: Any,
                     seeds: list[int] | None = None) -> np.ndarray:
    """True undiscounted returns (float64 ``(len(seeds),)``) of ``policy``, one episode per
    reset seed (default: the rungs' :func:`eval_seeds`).

    ``policy`` follows :class:`spin_data.collect.BatchPolicy`; each episode samples from its
    own generator (:func:`spin_data.collect.episode_rng` of its seed), as dataset collection does.
    """
    seeds = eval_seeds(config) if seeds is None else seeds
    episodes = collect_episodes(lambda: make_eval_env(config), policy, seeds,
                                n_envs=min(8, len(seeds)))
    return np.asarray([float(np.sum(ep.rewards, dtype=np.float64)) for ep in episodes])


def confirm_rungs(config: BehaviourConfig, run: Path, ladder: Ladder,
                  progress: bool = False) -> Ladder:
    """Confirm a finished run's picks on :func:`confirm_episodes` fresh episodes per rung and
    commit the ladder with those returns (see :mod:`spin_data.behaviour.ladder`).

    First the :data:`CONFIRM_RUNGS` best rungs (the expert is then the best of them by the
    fresh episodes), then earlier rungs by bisection towards the medium target that expert sets
    (:meth:`Ladder.search_medium`). Choosing among tens of rungs by a 10-episode mean overrates
    the choice on noisy tasks; the confirmation scores are independent of it. Rungs already
    confirmed are not scored again.
    """
    seeds = confirm_seeds(config)
    bar = _confirm_bar(config, progress)

    def confirm(rung: Rung) -> Rung:
        policy = load_policy(run / rung.checkpoint)
        returns = tuple(float(r) for r in evaluate_returns(config, policy, seeds))
        if bar is not None:
            bar.update(1)
        return dataclasses.replace(rung, confirm_returns=returns)

    try:
        if not ladder.confirm_episodes:
            best = {r.step for r in ladder.candidates(CONFIRM_RUNGS)}
            ladder.rungs = [confirm(r) if r.step in best and not r.confirm_returns else r
                            for r in ladder.rungs]
            ladder.confirm_episodes = len(seeds)
        if any(r.step < ladder.expert().step for r in ladder.rungs):
            ladder.search_medium(confirm)
    finally:
        if bar is not None:
            bar.close()
    ladder.medium_confirmed = True
    commit_ladder(run, ladder)
    return ladder


def _confirm_bar(config: BehaviourConfig, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=f"confirm {config.canonical_env} (rungs x {confirm_episodes(config)} "
                     "fresh episodes)", unit="rung", dynamic_ncols=True)


# ============================================================================= files
def commit_ladder(run: Path, ladder: Ladder) -> None:
    """Write a run's ``ladder.csv`` (and, once complete, ``ladder.png``), then ``ladder.json``
    atomically: the commit point a reader or a resumed run trusts."""
    write_text_atomic(run / "ladder.csv", ladder.to_csv())
    if ladder.complete:  # a picture of the finished run (learning curve, expert / medium marked)
        ladder.plot(str(run / "ladder.png"))
    write_text_atomic(run / "ladder.json", ladder.to_json())  # last: the commit point


def _run_lock(run: Path) -> contextlib.AbstractContextManager[None]:
    return exclusive_lock(run / ".lock",
                          lambda: RunLocked(f"{run}: another process is training this run"))


def load_ladder(run: str | os.PathLike) -> Ladder | None:
    """The committed ladder of a run directory, or None if it has none yet."""
    path = Path(run) / "ladder.json"
    return Ladder.from_json(path.read_text()) if path.exists() else None


def _save_resume(model: Any, config: BehaviourConfig, run: Path, step: int, venv: Any) -> None:
    target = run / "resume" / f"step-{step}"
    tmp = run / "resume" / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp / "model.zip")
    if config.algorithm != "ppo":
        model.save_replay_buffer(tmp / "replay_buffer.pkl")
    save_training_state(model, venv, tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def _drop_stale(run: Path, ladder: Ladder) -> None:
    """Delete resume states and checkpoints that the committed ladder does not reference."""
    keep_resume = f"step-{ladder.rungs[-1].step}" if ladder.rungs else None
    for entry in (run / "resume").glob("*") if (run / "resume").exists() else ():
        if entry.name != keep_resume:
            shutil.rmtree(entry, ignore_errors=True)
    referenced = {r.checkpoint for r in ladder.rungs}
    for ckpt in (run / "checkpoints").glob("*"):
        if f"checkpoints/{ckpt.name}" not in referenced:
            ckpt.unlink()


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

    Once the budget is reached the run's picks are confirmed (:func:`confirm_rungs`).

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
    with learners.one_thread(), _run_lock(run):
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
            _save_resume(model, config, run, step, venv)
            ladder.rungs.append(rung)
            ladder.complete = step >= config.budget
            commit_ladder(run, ladder)
            _drop_stale(run, ladder)
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
            _drop_stale(run, ladder)
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
                model = _load_resume(config, state, venv, device)
                if popped:
                    commit_ladder(run, ladder)  # before _drop_stale deletes their checkpoints
                _drop_stale(run, ladder)
                return model, ladder, state
            ladder.rungs.pop()
            popped = True
    shorter = find_shorter_run(config, run.parent)
    if shorter is not None:
        ladder = _extend(config, run, *shorter)
        state = run / "resume" / f"step-{ladder.rungs[-1].step}"
        return _load_resume(config, state, venv, device), ladder, state
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


def _load_resume(config: BehaviourConfig, state: Path, venv: Any, device: str) -> Any:
    """The SB3 model (and SAC's replay buffer) that :func:`_save_resume` wrote in ``state``."""
    model = _algorithm_class(config).load(state / "model.zip", env=venv, device=device)
    if config.algorithm != "ppo":
        model.load_replay_buffer(state / "replay_buffer.pkl")
    return model


def find_shorter_run(config: BehaviourConfig, cache_dir: Path) -> tuple[Path, Ladder] | None:
    """The finished run in ``cache_dir`` that ``config`` can extend, or None.

    That is a complete run whose settings are ``config``'s except a smaller budget (the same
    cache key once its budget is replaced by ``config.budget``) and whose last rung's training
    state survived; among several, the longest.
    """
    best: tuple[Path, Ladder] | None = None
    for other in cache_dir.glob(f"{config.canonical_env}-*"):
        ladder = load_ladder(other)
        if (ladder is None or not ladder.complete or not ladder.rungs
                or ladder.budget >= config.budget
                or not (other / "resume" / f"step-{ladder.rungs[-1].step}" / "model.zip").exists()):
            continue
        try:
            theirs = BehaviourConfig.from_dict(json.loads((other / "config.json").read_text()))
        except (OSError, ValueError, TypeError):
            continue  # unreadable or from an older spin: not ours to extend
        if dataclasses.replace(theirs, budget=config.budget).cache_key() != config.cache_key():
            continue
        if best is None or ladder.budget > best[1].budget:
            best = (other, ladder)
    return best


def _extend(config: BehaviourConfig, run: Path, source: Path, shorter: Ladder) -> Ladder:
    """Copy a shorter run's checkpoints and last training state into ``run``; its ladder,
    renamed to this run, not complete. The shorter run is left as it was."""
    last = f"step-{shorter.rungs[-1].step}"
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    shutil.rmtree(run / "resume", ignore_errors=True)
    shutil.copytree(source / "checkpoints", run / "checkpoints")
    shutil.copytree(source / "resume" / last, run / "resume" / last)
    # Its confirmation is dropped: the longer run's candidates are chosen among all its rungs.
    ladder = dataclasses.replace(shorter, cache_key=config.cache_key(), budget=config.budget,
                                 complete=False, extended_from=shorter.cache_key,
                                 confirm_episodes=0, medium_confirmed=False,
                                 rungs=[dataclasses.replace(r, confirm_returns=())
                                        for r in shorter.rungs])
    commit_ladder(run, ladder)
    return ladder


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
        return True
