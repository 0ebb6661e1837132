"""The maze's dynamics: :class:`BatchedMaze`, ``B`` mazes of one config stepped together in numpy.

At every reset a maze draws the whole episode's randomness in one block, so randomness
consumption does not depend on what happens during the episode (see the package docstring).
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from spin_data.envs.bins import BinGrid, BinGridError
from spin_data.envs.maze.actuators import check_action, motion_of
from spin_data.envs.maze.config import MazeConfig, in_box_batch
from spin_data.envs.maze.drawing import draw


class BatchedMaze:
    """``B`` mazes of one config stepped together in numpy.

    Equal, step by step and bit for bit (observations, rewards, flags), to ``B`` single
    :class:`MazeEnv` s where env ``i`` is reset with seed ``s + i`` and then reset without a seed
    after each episode end: each env owns its generator and draws each episode's randomness block
    from it at its reset, exactly as the single form does.

    Args:
        config: the maze.
        num_envs: B.
        autoreset: reset ended envs inside :meth:`step` (their last observation goes to
            ``info["final_observation"]``). With ``autoreset=False`` an ended env stays put: it is
            not stepped any more (reward 0, both flags False, observation unchanged) until
            :meth:`reset`; ``info["active"]`` marks envs still running. That runs exactly B
            episodes, which is handy for evaluation.
    """

    def __init__(self, config: MazeConfig, num_envs: int, autoreset: bool = True) -> None:
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or (
            num_envs < 1
        ):
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.config = config
        self.num_envs = int(num_envs)
        self.autoreset = autoreset
        n = config.n_actuators
        self.bin_grid = BinGrid.from_bounds(np.zeros(n), np.ones(n), 2)
        k = len(config.once_regions)
        self.obs_keys: list[tuple[str, int]] = [("position", 2)] + ([("visited", k)] if k else [])
        self.observation_space = gym.spaces.Box(0.0, 1.0, (config.obs_dim,), np.float32)
        self.single_action_space = gym.spaces.MultiDiscrete(np.full(n, 2, dtype=np.int64))
        self.max_episode_steps = config.time_limit
        B = self.num_envs
        self._rngs: list[np.random.Generator] | None = None
        self._blocks = np.zeros((B, config.time_limit, config.substeps, 3))
        self._position = np.zeros((B, 2))
        self._visited = np.zeros((B, k), dtype=bool)
        self._steps = np.zeros(B, dtype=np.int64)
        self._active = np.zeros(B, dtype=bool)
        # Terminal regions stop a step's substeps, so the substep loop checks them.
        self._terminal_regions = [r for r in config.regions if r.terminal]

    def reset(self, seed: int | Sequence[int] | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode in every env.

        Args:
            seed: an int ``s`` seeds env ``i`` with ``s + i``; a list of B ints seeds them one by
                one; None continues each env's generator (fresh entropy on the very first reset).

        Returns:
            ``(obs float32 (B, obs_dim), info)``; info has ``position`` (B, 2) and ``steps`` (B,).
        """
        B = self.num_envs
        if seed is None:
            if self._rngs is None:
                self._rngs = [np.random.default_rng() for _ in range(B)]
        else:
            if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
                seeds = [int(seed) + i for i in range(B)]
            else:
                seeds = [int(s) for s in seed]
                if len(seeds) != B:
                    raise ValueError(f"reset needs one int or {B} seeds, got {len(seeds)}")
            self._rngs = [np.random.default_rng(s) for s in seeds]
        for i in range(B):
            self._reset_one(i)
        return self.observations(), self.info()

    def step(
        self, actions: np.ndarray | Sequence[Sequence[int]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every env with on/off indices ``actions`` (shape ``(B, n)``).

        Returns:
            obs float32 ``(B, obs_dim)``, rewards float64 ``(B,)``, terminated bool ``(B,)``,
            truncated bool ``(B,)``, info with ``position`` float64 ``(B, 2)``, ``steps`` ``(B,)``,
            ``active`` bool ``(B,)`` and, with autoreset, ``final_observation`` float32
            ``(B, obs_dim)`` (the ended episodes' last observations; other rows: current obs).
        """
        if self._rngs is None:
            raise RuntimeError("the batched maze was never reset: call reset() first")
        if not self.autoreset and not self._active.any():
            raise RuntimeError("every maze episode has ended: call reset() first")
        indices = check_action(self.bin_grid, actions, batch=True)
        if indices.shape[0] != self.num_envs:
            raise BinGridError(
                f"actions must have shape ({self.num_envs}, {self.config.n_actuators}), "
                f"got {indices.shape}"
            )
        return self.step_checked(indices)

    def step_checked(
        self, indices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """:meth:`step` on indices already validated (int ``(B, n)`` of 0/1, as
        :func:`~spin_data.envs.maze.actuators.check_action` returns them): the dynamics."""
        cfg = self.config
        live = self._active.copy()
        motion = motion_of(cfg, indices)  # (B, 2)
        move = cfg.step_length * motion
        rows = np.arange(self.num_envs)
        # Ended envs (autoreset=False) read a valid row and are masked out below.
        block = self._blocks[rows, np.minimum(self._steps, cfg.time_limit - 1)]  # (B, S, 3)
        x, y = self._position[:, 0].copy(), self._position[:, 1].copy()
        moving = live.copy()  # envs whose step has not been stopped yet
        for s in range(cfg.substeps):
            coin, noise_x, noise_y = block[:, s, 0], block[:, s, 1], block[:, s, 2]
            noisy = coin < cfg.noise_prob
            new_x = x + np.where(noisy, noise_x * cfg.noise_scale * cfg.step_length, move[:, 0])
            new_y = y + np.where(noisy, noise_y * cfg.noise_scale * cfg.step_length, move[:, 1])
            blocked = (new_x < 0.0) | (new_x > 1.0) | (new_y < 0.0) | (new_y > 1.0)
            for wall in cfg.walls:
                blocked |= in_box_batch(wall, new_x, new_y)
            moving &= ~blocked
            x = np.where(moving, new_x, x)
            y = np.where(moving, new_y, y)
            for region in self._terminal_regions:
                moving &= ~in_box_batch(region.box, x, y)
        self._position = np.stack([x, y], axis=1)
        self._steps += live

        rewards = np.where(live, cfg.step_reward, 0.0)
        terminated = np.zeros(self.num_envs, dtype=bool)
        once_index = 0
        for region in cfg.regions:
            inside = in_box_batch(region.box, x, y) & live
            if region.once:
                first = inside & ~self._visited[:, once_index]
                rewards = rewards + np.where(first, region.reward, 0.0)
                self._visited[:, once_index] |= inside
                once_index += 1
            else:
                rewards = rewards + np.where(inside, region.reward, 0.0)
            if region.terminal:
                terminated |= inside
        truncated = live & (self._steps == cfg.time_limit) & ~terminated
        ended = terminated | truncated
        self._active &= ~ended

        obs = self.observations()
        info: dict[str, Any] = {}
        if self.autoreset:
            info["final_observation"] = obs.copy()
            for i in np.flatnonzero(ended):
                self._reset_one(int(i))
            if ended.any():
                obs = self.observations()
        info.update(self.info())
        return obs, rewards, terminated, truncated, info

    def render(self) -> np.ndarray:
        """Top-down RGB pictures of every env, uint8 ``(B, 200, 200, 3)``."""
        return draw(self.config, self._position)

    # ------------------------------------------------------------------------- helpers
    def _reset_one(self, i: int) -> None:
        assert self._rngs is not None
        self.start_episode(i, self._rngs[i])

    def start_episode(self, i: int, rng: np.random.Generator,
                      position: tuple[float, float] | None = None) -> None:
        """Start env ``i``'s next episode with generator ``rng`` (kept for its later episodes),
        at ``position`` (already checked) or ``config.start``.

        The whole episode's randomness is one draw at the start, so how much of it an episode
        uses never changes what the next episode gets.
        """
        cfg = self.config
        if self._rngs is None:
            self._rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        self._rngs[i] = rng
        self._blocks[i] = rng.random((cfg.time_limit, cfg.substeps, 3))
        self._position[i] = cfg.start if position is None else position
        self._visited[i] = False
        self._steps[i] = 0
        self._active[i] = True

    def observations(self) -> np.ndarray:
        """Every env's current observation, float32 ``(B, obs_dim)``."""
        return np.concatenate([self._position, self._visited], axis=1).astype(np.float32)

    def info(self) -> dict[str, Any]:
        """Copies of every env's ``position`` (B, 2), ``steps`` (B,) and ``active`` (B,)."""
        return {
            "position": self._position.copy(),
            "steps": self._steps.copy(),
            "active": self._active.copy(),
        }
