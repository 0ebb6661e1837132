"""Potential-based reward shaping for the Maze (training only; never changes what is scored).

The Maze's only informative reward is +100 at a goal tucked behind an L-shaped wall, which an
untrained PPO policy almost never reaches from the start: the learning signal is missing, not
wrong. Shaping adds ``F(s, s') = gamma * phi(s') - phi(s)`` to every training reward, with
``phi(terminal) = 0``. Ng, Harada & Russell (1999) show that any such potential-based term leaves
the optimal policies of the original task unchanged, so the shaped task's expert is still an
expert of the true task. The potential used here is minus the geodesic (around-the-walls)
distance to the goal, so climbing it means "get closer to the goal along a feasible path".

Ladder evaluation and dataset collection always use the raw environment: shaping exists only
inside :func:`spin_data.behaviour.train.train_behaviour`'s training envs.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import gymnasium as gym
import numpy as np

from spin_data.envs.maze import MazeConfig


def geodesic_distance_field(config: MazeConfig, resolution: int = 100) -> np.ndarray:
    """Shortest around-the-walls distance to the terminal regions, on a grid over ``[0, 1]^2``.

    Args:
        config: the maze (walls and terminal regions).
        resolution: cells per unit length; the field has ``(resolution + 1)^2`` nodes, node
            ``(i, j)`` at ``(i / resolution, j / resolution)``.

    Returns:
        float64 ``(resolution + 1, resolution + 1)`` indexed ``[i_x, i_y]``, in arena units; ``inf``
        on blocked nodes (walls) and nodes that cannot reach a goal. Dijkstra over the 8-connected
        grid (diagonal moves need both orthogonal neighbours free, so paths never cut a corner).
    """
    n = resolution + 1
    h = 1.0 / resolution
    coords = np.arange(n) * h
    free = np.array([[not config.blocked(x, y) for y in coords] for x in coords])
    goals = [r for r in config.regions if r.terminal and r.reward > 0]
    if not goals:
        raise ValueError("maze has no rewarding terminal region to shape towards")
    dist = np.full((n, n), np.inf)
    heap: list[tuple[float, int, int]] = []
    for i, x in enumerate(coords):
        for j, y in enumerate(coords):
            if free[i, j] and any(r.contains(x, y) for r in goals):
                dist[i, j] = 0.0
                heap.append((0.0, i, j))
    heapq.heapify(heap)
    steps = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
    while heap:
        d, i, j = heapq.heappop(heap)
        if d > dist[i, j]:
            continue
        for di, dj in steps:
            a, b = i + di, j + dj
            if not (0 <= a < n and 0 <= b < n and free[a, b]):
                continue
            if di and dj and not (free[i + di, j] and free[i, j + dj]):
                continue
            nd = d + h * (math.sqrt(2.0) if di and dj else 1.0)
            if nd < dist[a, b]:
                dist[a, b] = nd
                heapq.heappush(heap, (nd, a, b))
    return dist


class GeodesicDistance:
    """``distance(positions (..., 2)) -> (...)`` geodesic distance to the goal, in arena units.

    A position's distance is the smallest ``field[node] + |position - node|`` over the four grid
    nodes around it (free nodes only), which is exact up to the grid's resolution and well
    defined right next to a wall, where the nearest node may be blocked.
    """

    def __init__(self, config: MazeConfig, resolution: int = 100) -> None:
        self.resolution = resolution
        self.field = geodesic_distance_field(config, resolution)
        finite = self.field[np.isfinite(self.field)]
        #: Largest finite distance (used to cap unreachable positions).
        self.max_distance = float(finite.max())

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(positions, dtype=np.float64), 0.0, 1.0)
        scaled = p * self.resolution
        lo = np.floor(scaled).astype(np.int64)
        best = np.full(p.shape[:-1], np.inf)
        for dx in (0, 1):
            for dy in (0, 1):
                i = np.clip(lo[..., 0] + dx, 0, self.resolution)
                j = np.clip(lo[..., 1] + dy, 0, self.resolution)
                node = np.stack([i, j], axis=-1) / self.resolution
                best = np.minimum(best, self.field[i, j] + np.linalg.norm(p - node, axis=-1))
        return np.minimum(best, self.max_distance)


class PotentialShaping(gym.Wrapper):
    """Add ``gamma * phi(s') - phi(s)`` to a maze's reward, ``phi = -scale * geodesic distance``.

    Args:
        env: a maze env (its observation starts with the position ``(x, y)``).
        gamma: the learner's discount (shaping is policy-invariant only with the same gamma).
        scale: potential per arena unit of distance; the default 50 makes the whole path from the
            start (about 1.7 units) worth about 85, comparable to the goal's +100.

    ``info["true_reward"]`` keeps the unshaped reward. Wrap *outside* SB3's ``Monitor`` so the
    episode returns it logs stay the true ones.
    """

    def __init__(self, env: gym.Env, gamma: float = 0.99, scale: float = 50.0,
                 resolution: int = 100) -> None:
        super().__init__(env)
        config: MazeConfig = env.get_wrapper_attr("config")
        self.gamma = float(gamma)
        self.scale = float(scale)
        self.distance = _distance_for(config, resolution)
        self._phi = 0.0

    def potential(self, obs: np.ndarray) -> float:
        """``phi(s) = -scale * geodesic distance from the observation's position to the goal``."""
        return -self.scale * float(self.distance(np.asarray(obs[:2], dtype=np.float64)))

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self._phi = self.potential(obs)
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        # phi(terminal) = 0 keeps the invariance for true terminations; a truncated episode's
        # last state is an ordinary state (PPO bootstraps through it), so it keeps its potential.
        phi_next = 0.0 if terminated else self.potential(obs)
        info = dict(info)
        info["true_reward"] = reward
        shaped = float(reward) + self.gamma * phi_next - self._phi
        self._phi = phi_next
        return obs, shaped, terminated, truncated, info


_FIELDS: dict[tuple[MazeConfig, int], GeodesicDistance] = {}


def _distance_for(config: MazeConfig, resolution: int) -> GeodesicDistance:
    # One field per maze and resolution per process: every vectorised env shares it.
    key = (config, resolution)
    if key not in _FIELDS:
        _FIELDS[key] = GeodesicDistance(config, resolution)
    return _FIELDS[key]
