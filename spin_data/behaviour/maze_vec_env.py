"""The Maze as one stable-baselines3 ``VecEnv``: all training envs stepped in one numpy call.

SB3's ``DummyVecEnv`` steps ``n_envs`` :class:`~spin_data.envs.maze.MazeEnv` s one after the other,
each a :class:`~spin_data.envs.maze.BatchedMaze` of one; this steps one ``BatchedMaze`` of
``n_envs`` instead. The envs, their seeds (env ``i``: ``seed + i``), the potential-based shaping
and SB3's conventions (``terminal_observation``, ``TimeLimit.truncated``, Monitor's ``episode``
record of true returns) are the same, so a PPO run is the same run, only faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from spin_data.behaviour.shaping import _distance_for
from spin_data.envs.maze import BatchedMaze, MazeConfig


class BatchedMazeVecEnv(VecEnv):
    """``n_envs`` mazes of ``config`` behind SB3's ``VecEnv`` API (autoreset, as SB3 expects).

    Args:
        config: the maze.
        n_envs: environments stepped together.
        shaping: ``None`` (true rewards) or ``{"gamma": g, "scale": c}``: add
            ``g * phi(s') - phi(s)``, ``phi = -c * geodesic distance to the goal``, exactly as
            :class:`spin_data.behaviour.shaping.PotentialShaping` does per env.
    """

    def __init__(self, config: MazeConfig, n_envs: int,
                 shaping: dict[str, float] | None = None) -> None:
        self.maze = BatchedMaze(config, n_envs, autoreset=True)
        super().__init__(n_envs, self.maze.observation_space, self.maze.single_action_space)
        self.shaping = shaping
        self._distance = _distance_for(config, 100) if shaping else None
        self._phi = np.zeros(n_envs)
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(n_envs)
        self._lengths = np.zeros(n_envs, dtype=np.int64)

    # ------------------------------------------------------------------------- VecEnv API
    def reset(self) -> np.ndarray:
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        if seeds is not None and any(s is None for s in seeds):
            raise ValueError("seed every env or none")
        obs, _ = self.maze.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        self._phi = self._potential(obs)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        assert self._actions is not None, "step_async first"
        obs, rewards, terminated, truncated, info = self.maze.step(self._actions)
        final = info["final_observation"]
        done = terminated | truncated
        self._returns += rewards
        self._lengths += 1
        shaped = rewards.astype(np.float64)
        if self.shaping:
            # phi(terminal) = 0; a truncated episode's last state keeps its potential.
            phi_next = np.where(terminated, 0.0, self._potential(final))
            shaped = rewards + self.shaping["gamma"] * phi_next - self._phi
            # Envs that were reset start their next episode from the new start's potential.
            self._phi = np.where(done, self._potential(obs), phi_next)
        infos: list[dict[str, Any]] = []
        for i in range(self.num_envs):
            item: dict[str, Any] = {"TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
            if self.shaping:
                item["true_reward"] = float(rewards[i])
            if done[i]:
                item["terminal_observation"] = final[i]
                item["episode"] = {"r": round(float(self._returns[i]), 6),
                                   "l": int(self._lengths[i]), "t": 0.0}
                self._returns[i], self._lengths[i] = 0.0, 0
            infos.append(item)
        return obs, shaped.astype(np.float32), done, infos

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = None if attr_name == "render_mode" else getattr(self.maze, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.maze, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        raise NotImplementedError("the batched maze has no per-env methods")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper],
                       indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    # ------------------------------------------------------------------------- helpers
    def _potential(self, obs: np.ndarray) -> np.ndarray:
        if not self.shaping:
            return np.zeros(self.num_envs)
        assert self._distance is not None
        return -self.shaping["scale"] * self._distance(np.asarray(obs[:, :2], dtype=np.float64))

    def _get_indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)
