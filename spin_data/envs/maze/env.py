"""One maze behind the Gymnasium API (:class:`MazeEnv`): a :class:`BatchedMaze` of one env."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from spin_data.envs.maze.actuators import check_action
from spin_data.envs.maze.batched import BatchedMaze
from spin_data.envs.maze.config import MazeConfig


class MazeEnv(gym.Env):
    """One maze behind the Gymnasium API: a :class:`BatchedMaze` of one env, so the dynamics are
    written once (there, in numpy) and the single and batched forms cannot drift apart.

    Args:
        config: the maze (default: the benchmark's 5-actuator maze).
        seed: seed of the first :meth:`reset` when that call gives none.
        render_mode: ``None`` or ``"rgb_array"`` (a small top-down picture, no display needed).

    Spaces: ``action_space = MultiDiscrete([2] * n)`` (bin 0 = off, 1 = on); ``observation_space``
    is a float32 ``Box`` in ``[0, 1]`` of shape ``(obs_dim,)``: ``(x, y)`` then one visited flag per
    once-region (see :attr:`obs_keys`).

    Randomness: the maze's generator is ``self.np_random``; ``reset(seed=s)`` makes it
    ``np.random.default_rng(s)`` (Gymnasium's seeding is the same generator) and later resets
    without a seed continue it. The global numpy RNG is never used.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        config: MazeConfig | None = None,
        seed: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unknown render_mode {render_mode!r}: accepted None, 'rgb_array'")
        self.config = config if config is not None else MazeConfig()
        self.render_mode = render_mode
        self._maze = BatchedMaze(self.config, 1, autoreset=False)
        self.bin_grid = self._maze.bin_grid
        #: (name, size) of each block of the flat observation, in order.
        self.obs_keys = self._maze.obs_keys
        self.observation_space = self._maze.observation_space
        self.action_space = self._maze.single_action_space
        self.max_episode_steps = self.config.time_limit
        self._initial_seed = seed
        self._seeded = False
        self._needs_reset = True

    # ------------------------------------------------------------------------- API
    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        """Start an episode and draw all of its randomness.

        Args:
            seed: re-seeds the maze's generator (``default_rng(seed)``); None continues it.
            options: ``{"position": (x, y)}`` starts this episode there instead of
                ``config.start`` (it must be in the arena, outside walls and terminal regions).

        Returns:
            ``(obs, info)``: float32 ``(obs_dim,)`` and ``{"position", "steps"}``.
        """
        if seed is None and not self._seeded:
            seed = self._initial_seed
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
        self._seeded = True
        position = None
        if options and options.get("position") is not None:
            position = _checked_position(self.config, options["position"])
        # The batch of one draws from this env's own generator, so seeding stays Gymnasium's.
        self._maze.start_episode(0, self.np_random, position)
        self._needs_reset = False
        return self._observation(), self._info()

    def step(
        self, action: np.ndarray | Sequence[int]
    ) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Apply on/off indices ``action`` (shape ``(n,)``, each 0 or 1).

        Returns:
            obs (float32 ``(obs_dim,)``), reward, terminated (goal reached), truncated (time
            limit reached without termination), info (``position`` float64 ``(2,)``, ``steps``).

        Raises:
            BinGridError: wrong shape or a value other than 0/1.
            RuntimeError: the episode has ended or never started.
        """
        if self._needs_reset:
            raise RuntimeError("the maze episode has ended (or never started): call reset() first")
        indices = check_action(self.bin_grid, action, batch=False)
        obs, rewards, terminated, truncated, _ = self._maze.step_checked(indices[None])
        self._needs_reset = bool(terminated[0] or truncated[0])
        return obs[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), self._info()

    def render(self) -> np.ndarray | None:
        """A top-down RGB picture (uint8 ``(200, 200, 3)``) when ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return self._maze.render()[0]

    # ------------------------------------------------------------------------- helpers
    def _observation(self) -> np.ndarray:
        return self._maze.observations()[0]

    def _info(self) -> dict[str, Any]:
        info = self._maze.info()
        return {"position": info["position"][0], "steps": int(info["steps"][0])}


def _checked_position(cfg: MazeConfig, position: Sequence[float]) -> tuple[float, float]:
    pos = tuple(float(v) for v in position)
    if len(pos) != 2:
        raise ValueError(f"position must be (x, y), got {position!r}")
    problem = cfg.position_problem(*pos)
    if problem:
        raise ValueError(f"cannot start at {pos}: it is {problem}")
    return pos  # type: ignore[return-value]
