"""Scoring behaviour policies: the task they are scored on and their true returns on it."""

from __future__ import annotations

from typing import Any

import numpy as np

from spin_data.behaviour.config import BehaviourConfig
from spin_data.collect import collect_episodes
from spin_data.envs import registry

#: Evaluation episodes reset with seeds EVAL_SEED_BASE + 10_000 * config.seed + e, far from the
#: training envs' seeds (config.seed + i), and identical at every rung (common random numbers).
EVAL_SEED_BASE = 1_000_000


def eval_seeds(config: BehaviourConfig) -> list[int]:
    """Reset seeds of the evaluation episodes of every rung."""
    return [EVAL_SEED_BASE + 10_000 * config.seed + e for e in range(config.eval_episodes)]


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
