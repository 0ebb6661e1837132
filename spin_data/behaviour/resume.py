"""Exact resume of an off-policy behaviour run: every generator and the training envs' state.

SB3's ``model.zip`` and replay buffer hold the networks, optimisers and data, but a run resumed
from them alone is not the run that would have gone on: on load, SB3 reseeds numpy, torch and the
action space from the run's seed, sbx restarts its JAX key from it, and the training envs start
new episodes from fresh generators. So next to them each resume state records (``rng.json``):

- numpy's global generator (the replay buffer samples its batches from it), torch's CPU
  generator (SB3's torch learners sample actions and noise from it), the action space's
  generator (uniform warm-up actions) and sbx's JAX key (its update noise);
- for each training env, how many episodes it has finished and how many steps into the current
  one it is (:class:`EpisodeCounter`).

:func:`restore_training_state` puts the generators back and rebuilds the envs by replay: a fresh
env seeded as the run seeded it is reset once per finished episode (each reset draws the next
initial state from the env's own generator, as the uninterrupted run did), then stepped through
the current episode with the actions the replay buffer recorded for it. With that, a run killed
and resumed from its last rung writes the same checkpoints, byte for byte, as a straight run
(tested). It holds for the squashed-Gaussian learners (sac, tqc, crossq; all DMC runs). PPO runs
(the mazes, minutes long) resume from their last rung without it: their rollout buffer does not
keep the current episode's actions.

A resume state is ``resume/step-N/`` of the run directory (:func:`save_resume_state`,
:func:`load_resume_state`). The last rung's is kept when the run completes, so that a run of the
same settings with a larger budget *extends* it (:func:`find_shorter_run`, :func:`extend_run`:
copies its rungs and training state and goes on from its last rung) instead of starting over;
deleting ``resume/`` of a finished run reclaims its disk (the replay buffer: about
``buffer_size x 2 x obs_dim x 4`` bytes) and only gives up that extension.

The other way round, a run with a *smaller* budget is *cut* from a longer one, finished or
still training, that has already scored a rung at that budget (:func:`find_longer_run`,
:func:`cut_run`): a run's training does not depend on its budget (each rung's steps are one
``learn`` call that stops at the rung), so its first N steps are what a run of budget N trains.
The cut run copies the rungs up to N and their checkpoints and needs only its confirmation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from spin_data.behaviour import learners
from spin_data.behaviour.config import BehaviourConfig
from spin_data.behaviour.ladder import Ladder
from spin_data.behaviour.run_dir import commit_ladder, load_ladder

#: File of a resume state that holds the generators and env positions.
RNG_FILE = "rng.json"
RNG_FORMAT = 1


class EpisodeCounter(gym.Wrapper):
    """Counts an env's resets and the steps since the last one (what :func:`restore_training_state`
    replays); changes nothing else."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.resets = 0
        self.steps = 0

    def reset(self, **kwargs: Any) -> Any:
        self.resets += 1
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        self.steps += 1
        return self.env.step(action)


def _counters(venv: Any) -> list[EpisodeCounter] | None:
    """Each training env's counter, or None for a venv without them (the batched maze)."""
    envs = getattr(venv, "envs", None)
    if envs is None:
        return None
    found = []
    for env in envs:
        while not isinstance(env, EpisodeCounter):
            if not hasattr(env, "env"):
                return None
            env = env.env
        found.append(env)
    return found


def capture_training_state(model: Any, venv: Any) -> dict[str, Any] | None:
    """The generators and env positions of an off-policy run between two ``learn`` calls
    (JSON-ready), or None where exact resume does not apply (on-policy, or no counters)."""
    import torch

    counters = _counters(venv)
    if counters is None or not hasattr(model, "replay_buffer"):
        return None
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "format": RNG_FORMAT,
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state().tolist(),
        "action_space": model.action_space.np_random.bit_generator.state,
        "envs": [{"episodes": c.resets - 1, "steps": c.steps} for c in counters],
    }
    if hasattr(model, "key"):  # sbx: the JAX key its updates split their noise from
        state["jax_key"] = np.asarray(model.key).tolist()
    return state


def save_training_state(model: Any, venv: Any, folder: Path) -> None:
    """Write :func:`capture_training_state` to ``folder/rng.json`` (nothing when it is None)."""
    state = capture_training_state(model, venv)
    if state is not None:
        (folder / RNG_FILE).write_text(json.dumps(state))


def restore_training_state(model: Any, venv: Any, folder: Path) -> bool:
    """Put back the state :func:`save_training_state` wrote in ``folder``: generators, env
    episodes by replay, and the model's last observation. Call it just before training goes on
    (anything drawing from numpy or torch after it would shift the run).

    Returns:
        Whether an exact state was restored (False: none was saved, e.g. a run from an older
        spin or a PPO run; training then goes on from fresh episodes).
    """
    import torch

    path = folder / RNG_FILE
    counters = _counters(venv)
    if not path.exists() or counters is None:
        return False
    state = json.loads(path.read_text())
    if len(state["envs"]) != len(counters):
        return False
    if all(where["episodes"] >= 0 for where in state["envs"]):
        model._last_obs = _replay_envs(model, venv, state["envs"])
    # else: saved before the first reset (rung 0); training resets the envs as it would have.
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    model.action_space.np_random.bit_generator.state = state["action_space"]
    if "jax_key" in state:
        import jax.numpy as jnp

        model.key = jnp.asarray(state["jax_key"], dtype=jnp.uint32)
    return True


def _replay_envs(model: Any, venv: Any, positions: list[dict[str, int]]) -> np.ndarray:
    """Bring fresh training envs to where the run's were; returns their observations."""
    obs = venv.reset()  # applies the seeds the run was made with: the run's first reset
    buffer = model.replay_buffer
    for i, where in enumerate(positions):
        env = venv.envs[i]
        for _ in range(where["episodes"]):
            obs[i], _ = env.reset()
        # The current episode's actions, as the env received them (the buffer keeps them scaled).
        rows = (buffer.pos - where["steps"] + np.arange(where["steps"])) % buffer.buffer_size
        for scaled in buffer.actions[rows, i]:
            obs[i], *_ = env.step(model.policy.unscale_action(scaled))
    return obs


# ============================================================================= resume states
def save_resume_state(model: Any, config: BehaviourConfig, run: Path, step: int, venv: Any
                      ) -> None:
    """Write ``run/resume/step-<step>/``: SB3's model (and replay buffer, off-policy) and the
    exact training state (:func:`save_training_state`), replacing the folder atomically."""
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


def load_resume_state(config: BehaviourConfig, state: Path, venv: Any, device: str) -> Any:
    """The SB3 model (and SAC's replay buffer) that :func:`save_resume_state` wrote in ``state``."""
    algorithm = learners.algorithm_class(config.algorithm, config.library)
    model = algorithm.load(state / "model.zip", env=venv, device=device)
    if config.algorithm != "ppo":
        model.load_replay_buffer(state / "replay_buffer.pkl")
    return model


# ============================================================================= extending a run
def _same_settings_but_budget(other: Path, config: BehaviourConfig) -> bool:
    """Whether run folder ``other`` was configured as ``config`` but for its budget (False
    for an unreadable config, or one from an older spin)."""
    try:
        theirs = BehaviourConfig.from_dict(json.loads((other / "config.json").read_text()))
    except (OSError, ValueError, TypeError):
        return False
    return dataclasses.replace(theirs, budget=config.budget).cache_key() == config.cache_key()


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
        if not _same_settings_but_budget(other, config):
            continue
        if best is None or ladder.budget > best[1].budget:
            best = (other, ladder)
    return best


def find_longer_run(config: BehaviourConfig, cache_dir: Path) -> tuple[Path, Ladder] | None:
    """The run in ``cache_dir`` that ``config``'s run can be cut from, or None.

    That is a run, finished or not, whose settings are ``config``'s except a larger budget,
    that has scored a rung at exactly ``config.budget`` and still holds the checkpoints of the
    rungs up to it; among several, the first by folder name.
    """
    for other in sorted(cache_dir.glob(f"{config.canonical_env}-*")):
        ladder = load_ladder(other)
        if (ladder is None or ladder.budget <= config.budget
                or not any(r.step == config.budget for r in ladder.rungs)):
            continue
        if not _same_settings_but_budget(other, config):
            continue
        if all((other / r.checkpoint).is_file() for r in ladder.rungs if r.step <= config.budget):
            return other, ladder
    return None


def cut_run(config: BehaviourConfig, run: Path, source: Path, longer: Ladder) -> Ladder:
    """Copy a longer run's rungs up to ``config.budget`` and their checkpoints into ``run``;
    its ladder, renamed to this run and complete (not yet confirmed). The longer run is left as
    it was.

    Raises:
        ValueError: a copied checkpoint's sha256 is not the one its ladder records.
    """
    from spin_data.files import file_sha256, write_text_atomic

    rungs = [dataclasses.replace(r, confirm_returns=()) for r in longer.rungs
             if r.step <= config.budget]
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    shutil.rmtree(run / "resume", ignore_errors=True)
    (run / "checkpoints").mkdir(parents=True)
    for rung in rungs:
        shutil.copyfile(source / rung.checkpoint, run / rung.checkpoint)
        if file_sha256(run / rung.checkpoint) != rung.sha256:
            raise ValueError(f"{source / rung.checkpoint}: sha256 does not match its ladder's "
                             f"{rung.sha256}; not cutting a run from it")
    spec = json.loads((source / "policy.json").read_text())
    write_text_atomic(run / "policy.json", json.dumps(dict(spec, cache_key=config.cache_key()),
                                                     indent=2))
    ladder = dataclasses.replace(longer, cache_key=config.cache_key(), budget=config.budget,
                                 complete=True, extended_from=None, cut_from=longer.cache_key,
                                 confirm_episodes=0, medium_confirmed=False, rungs=rungs)
    commit_ladder(run, ladder)
    return ladder


def extend_run(config: BehaviourConfig, run: Path, source: Path, shorter: Ladder) -> Ladder:
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
