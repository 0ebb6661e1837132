"""How long a behaviour run will take on this machine, from a short measured warm-up.

``spin-data train-behaviour`` and ``spin-data generate`` print this before they start training,
so that nobody starts a multi-day run by accident: the learner's real update rate is measured
for a few seconds on a throw-away copy of the run (same learner, networks, batch and envs,
learning from the first step), one evaluation episode is timed, and the run's remaining steps
and rungs are projected from both.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from spin_data.behaviour import learners
from spin_data.behaviour.config import BehaviourConfig

#: Runs projected past this many seconds get advice on what would be faster.
LONG_RUN_S = 3600.0
#: sbx over SB3 with the same hyperparameters, one CPU core (benchmarks/behaviour.py, README).
SBX_SPEEDUP_TEXT = "1.7x SB3's steps/s on a CPU core (benchmarks/behaviour.py)"


@dataclass(frozen=True)
class TrainingEstimate:
    """A projected run: ``steps_left`` env steps at ``steps_per_s`` plus ``rungs_left`` rung
    evaluations of ``eval_s`` seconds each; ``total_s`` is the sum, in seconds."""

    config: BehaviourConfig
    steps_left: int
    steps_per_s: float
    rungs_left: int
    eval_s: float
    device: str

    @property
    def total_s(self) -> float:
        return self.steps_left / self.steps_per_s + self.rungs_left * self.eval_s

    def describe(self) -> str:
        """One paragraph: what the run does and how long it should take here."""
        c = self.config
        changed = ", ".join(f"{k}={json.dumps(v)}" for k, v in c.changed_hyperparameters().items())
        return (f"behaviour: {c.algorithm} ({c.library}, {self.device}) on {c.canonical_env} at "
                f"{c.bins} bins, {c.grid} grid{', ' + changed if changed else ''} "
                f"(cache key {c.cache_key()}): "
                f"{self.steps_left:,} env steps left of {c.budget:,}, a rung every "
                f"{c.eval_every:,} steps ({c.eval_episodes} evaluation episodes each). Measured "
                f"here: {self.steps_per_s:,.0f} steps/s, {self.eval_s:.1f} s per evaluation -> "
                f"about {format_duration(self.total_s)}.")

    def advice(self) -> str | None:
        """What would be faster, when the run is projected past :data:`LONG_RUN_S`; else None."""
        if self.total_s <= LONG_RUN_S:
            return None
        c = self.config
        head = f"warning: this run is projected at {format_duration(self.total_s)} on this machine."
        if c.algorithm == "ppo":
            return head + " PPO suits the mazes; for DMC tasks use --algorithm sac."
        if c.library == "sb3" and c.algorithm in ("sac", "tqc"):
            how = ("--library sbx" if learners.sbx_installed()
                   else "pip install -e '.[sbx]' then --library sbx")
            return (f"{head} {c.algorithm} in sbx (JAX) is faster: {SBX_SPEEDUP_TEXT} "
                    f"({how}); on a GPU, sbx with jax[cuda12].")
        if self.device == "cpu":
            return (f"{head} A GPU is the faster device for it (sbx with jax[cuda12]; not "
                    "measured here); or lower --budget and check the ladder's expert.")
        return head


def format_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``3 h 05 min``, ``2.5 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        hours, rest = divmod(int(seconds), 3600)
        return f"{hours} h {rest // 60:02d} min"
    return f"{seconds / 86400:.1f} days"


def estimate_training(config: BehaviourConfig, *, steps_done: int = 0, rungs_done: int = 0,
                      device: str = "auto", measure_s: float = 3.0) -> TrainingEstimate:
    """Measure this machine's update rate for ``config`` and project the rest of the run.

    Args:
        config: the run.
        steps_done / rungs_done: what a resumed run has already done.
        device: as :func:`spin_data.behaviour.train_behaviour` takes it.
        measure_s: seconds of timed training after the (untimed) compile / warm-up phase.
    """
    from spin_data.behaviour.evaluation import bin_grid_of, evaluate_returns
    from spin_data.behaviour.train import _new_model, make_training_env, resolve_device
    from spin_data.collect import UniformRandomPolicy

    with learners.one_thread():  # measured as the run will train: one thread
        device = resolve_device(config, device)
        # A throw-away copy that learns from its first step, with a small replay buffer.
        probe = BehaviourConfig.from_dict({**config.to_dict(), "hyperparameters": {
            **config.hyperparameters, **({} if config.algorithm == "ppo" else
                                         {"learning_starts": 0, "buffer_size": 10_000})}})
        venv = make_training_env(probe)
        try:
            model = _new_model(probe, venv, device)
            chunk = _chunk(probe)
            model.learn(chunk, progress_bar=False)  # compile (JAX) and warm caches: untimed
            steps, start = 0, time.perf_counter()
            while time.perf_counter() - start < measure_s:
                model.learn(chunk, reset_num_timesteps=False, progress_bar=False)
                steps += chunk
            rate = steps / (time.perf_counter() - start)
        finally:
            venv.close()
        one = BehaviourConfig.from_dict({**config.to_dict(), "eval_episodes": 1})
        start = time.perf_counter()
        evaluate_returns(one, UniformRandomPolicy(bin_grid_of(config)))
        # A uniform-random episode times the simulator; the policy's forward pass adds about as
        # much again for small MLPs, hence the factor 2 (an upper bound: rungs batch 8 episodes).
        eval_s = 2.0 * (time.perf_counter() - start) * config.eval_episodes
        rungs_total = -(-config.budget // config.eval_every) + 1
    return TrainingEstimate(config=config, steps_left=max(0, config.budget - steps_done),
                            steps_per_s=rate, rungs_left=max(0, rungs_total - rungs_done),
                            eval_s=eval_s, device=device)


def _chunk(config: BehaviourConfig) -> int:
    """Env steps per timed learn() call: one PPO rollout, else 256 (x n_envs) steps."""
    if config.algorithm == "ppo":
        return int(config.hyperparameters["n_steps"]) * config.n_envs
    return 256 * config.n_envs
