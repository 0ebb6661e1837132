"""Held-out splits by whole episodes (steps of one episode never straddle train and validation)."""

from __future__ import annotations

import numpy as np

from spin_train.data.cache import CachedDataset


def episode_ends(cached: CachedDataset) -> np.ndarray:
    """``(E,)`` int64: one past the last step of each episode, in store order."""
    last = cached.load("terminations") | cached.load("truncations")
    return np.flatnonzero(last).astype(np.int64) + 1


def split_episodes(
    cached: CachedDataset, val_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Step indices ``(train, validation)``: a seeded random ``val_fraction`` of the episodes
    (at least one, and at least one left for training) is held out.

    Splitting by episode keeps validation honest: consecutive steps of one trajectory are
    nearly identical, so a split by step would leak the training data into validation.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    ends = episode_ends(cached)
    n_episodes = len(ends)
    if n_episodes < 2:
        raise ValueError(f"a held-out split needs at least 2 episodes, the dataset has "
                         f"{n_episodes}")
    n_val = min(max(1, round(val_fraction * n_episodes)), n_episodes - 1)
    held_out = np.zeros(n_episodes, dtype=bool)
    held_out[np.random.default_rng(seed).choice(n_episodes, n_val, replace=False)] = True
    starts = np.concatenate([[0], ends[:-1]])
    lengths = ends - starts
    episode_of_step = np.repeat(np.arange(n_episodes), lengths)
    steps = np.arange(int(ends[-1]), dtype=np.int64)
    val = held_out[episode_of_step]
    return steps[~val], steps[val]
