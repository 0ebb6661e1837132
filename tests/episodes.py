"""Real episodes for the tests: uniform-random policies in real environments."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from spin_data.collect import RolloutEpisode, run_episode, uniform_random_policy
from spin_data.envs import make_env

#: Just below the maze's goal: uniform-random episodes starting here often terminate.
NEAR_GOAL = (0.27, 0.40)


def random_episode(env, seed: int, *, policy_seed: int | None = None,
                   start: tuple[float, float] | None = None) -> RolloutEpisode:
    """One full uniform-random episode (policy seeded with ``10_000 + seed`` by default)."""
    rng = np.random.default_rng(10_000 + seed if policy_seed is None else policy_seed)
    options = {"position": start} if start is not None else None
    return run_episode(env, uniform_random_policy(env.bin_grid, rng), seed=seed, options=options)


def maze_episodes(seeds: Iterable[int], *, near_goal: bool = False) -> list[RolloutEpisode]:
    """maze-5 episodes; with ``near_goal`` even seeds start below the goal, so the set mixes
    terminations and truncations."""
    env = make_env("maze-5")
    return [random_episode(env, s, start=NEAR_GOAL if near_goal and s % 2 == 0 else None)
            for s in seeds]


def assert_same_transitions(ds, episodes) -> None:
    """A store's per-step arrays and episode ends are exactly these episodes', in order."""
    steps = ds.transitions()
    np.testing.assert_array_equal(steps["observations"],
                                  np.concatenate([e[0][:-1] for e in episodes]))
    np.testing.assert_array_equal(steps["next_observations"],
                                  np.concatenate([e[0][1:] for e in episodes]))
    np.testing.assert_array_equal(steps["actions"], np.concatenate([e[1] for e in episodes]))
    np.testing.assert_array_equal(steps["rewards"],
                                  np.concatenate([e[2] for e in episodes]).astype(np.float32))
    assert ds.array("episodes/ends").tolist() == np.cumsum([len(e[2]) for e in episodes]).tolist()
    assert int(steps["terminations"].sum()) == sum(e[3] for e in episodes)
    assert int(steps["truncations"].sum()) == sum(e[4] for e in episodes)
