"""Rolling out policies in discretised environments into whole episodes.

An episode is what the store's writer takes: the reset observation and one observation per step
(``L + 1`` rows), the executed bin indices, the rewards, and how it ended. Later collection code
(vectorised rollouts of behaviour policies) builds on the same :class:`RolloutEpisode`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from spin_data.envs.bins import BinGrid

Policy = Callable[[np.ndarray], np.ndarray]


class RolloutEpisode(NamedTuple):
    """One full episode.

    Fields: observations ``(L + 1, D)`` float32, actions ``(L, N)`` int64 bin indices, rewards
    ``(L,)`` float32, terminated, truncated, and the reset seed.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    seed: int | None


def uniform_random_policy(bin_grid: BinGrid, rng: np.random.Generator) -> Policy:
    """A policy drawing every sub-action's bin uniformly (the benchmark's "random")."""
    counts = np.asarray(bin_grid.counts)
    return lambda _obs: rng.integers(0, counts)


def run_episode(
    env: Any, policy: Policy, *, seed: int | None = None, options: dict | None = None
) -> RolloutEpisode:
    """Run ``policy`` (observation -> bin indices ``(N,)``) in ``env`` until the episode ends."""
    obs, _ = env.reset(seed=seed, options=options)
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(policy(obs), dtype=np.int64)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    return RolloutEpisode(np.stack(observations).astype(np.float32), np.stack(actions),
                          np.asarray(rewards, dtype=np.float32), bool(terminated),
                          bool(truncated), seed)
