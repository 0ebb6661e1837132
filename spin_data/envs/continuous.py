"""A continuous-action view of a discretised task, for continuous-action learners (e.g. SAC).

The view's actions are continuous values inside the grid's bounds; each one is snapped to its
nearest bin before the physics step, so a policy trained through the view is judged on exactly
the discrete action it executes. The executed bin indices are reported in
``info["bin_indices"]`` - those are what a dataset records.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from spin_data.envs.bins import BinGrid, BinGridError


class SnappedContinuousEnv(gym.Wrapper):
    """Wrap a discretised env (one with a ``bin_grid`` and a ``MultiDiscrete`` action space).

    ``action_space`` is ``Box(bin_grid.low, bin_grid.high)`` (float32, shape ``(N,)``).
    ``step(a)`` snaps ``a`` to the nearest bins, steps the wrapped env with those indices, and
    adds ``info["bin_indices"]`` (int64 ``(N,)``) and ``info["executed_action"]`` (the bins'
    continuous values, float64 ``(N,)``).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        grid: BinGrid = env.get_wrapper_attr("bin_grid")
        self.bin_grid = grid
        self.action_space = gym.spaces.Box(
            grid.low.astype(np.float32), grid.high.astype(np.float32), dtype=np.float32
        )

    def step(self, action: np.ndarray | Sequence[float]) -> tuple[Any, float, bool, bool, dict]:
        values = np.asarray(action, dtype=np.float64)
        if values.shape != (self.bin_grid.n_dims,):
            raise BinGridError(
                f"continuous action must have shape ({self.bin_grid.n_dims},), got {values.shape}"
            )
        indices = self.bin_grid.quantise(values)
        obs, reward, terminated, truncated, info = self.env.step(indices)
        info = dict(info)
        info["bin_indices"] = indices
        info["executed_action"] = self.bin_grid.to_values(indices)
        return obs, reward, terminated, truncated, info
