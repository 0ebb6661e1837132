"""DeepMind Control Suite tasks with factorised discrete actions, behind the Gymnasium API.

Each actuator of a dm_control task becomes one sub-action whose value is a bin index of the task's
:class:`~spin_data.envs.bins.BinGrid`. By default the grid spans each actuator's real control
range from the task's action spec (``grid="actuator"``); ``grid="unit"`` uses [-1, 1] for every
dimension, which reproduces the discretised benchmark exactly (it differs only where an actuator's
range is not [-1, 1], e.g. quadruped, whose out-of-range values MuJoCo clips).

Observations are the values of dm_control's observation dict flattened and concatenated in the
dict's order (the task's own, stable order), as float32; :attr:`DMCDiscreteEnv.obs_keys` names
each block. The suite's time limit (1000 control steps for every benchmark task) ends an episode
as a *truncation*; an episode ending with discount 0 (a true terminal, which no benchmark task
produces) is a *termination*.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

# Stepping needs no display; rendering works headless with EGL. Respect a user's own choice.
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from dm_control import suite  # noqa: E402
from dm_control.rl import control  # noqa: E402

from spin_data.envs.bins import GRID_KINDS, BinGrid, GridKind  # noqa: E402


def _not_settotalmass_notice(record: logging.LogRecord) -> bool:
    # mujoco 3.17 logs a deprecation of the 'settotalmass' compiler attribute each time it
    # compiles dm_control's own cheetah.xml: nothing a user can act on, printed on every env.
    return "'settotalmass' is deprecated" not in record.getMessage()


logging.getLogger("absl").addFilter(_not_settotalmass_notice)



def suite_tasks() -> list[str]:
    """Every ``domain-task`` name of the dm_control suite, e.g. ``walker-walk``."""
    return [f"{domain}-{task}" for domain, task in suite.ALL_TASKS]


def split_task_name(name: str) -> tuple[str, str]:
    """``"ball_in_cup-catch"`` -> ``("ball_in_cup", "catch")``; raises ValueError if unknown."""
    domain, sep, task = name.partition("-")
    if not sep or (domain, task) not in suite.ALL_TASKS:
        raise ValueError(f"unknown dm_control task {name!r}: expected domain-task, e.g. walker-walk")
    return domain, task


def flatten_observation(observation: Mapping[str, Any]) -> np.ndarray:
    """Concatenate an observation dict's values, in the dict's order, into one float32 vector."""
    return np.concatenate(
        [np.asarray(v, dtype=np.float32).reshape(-1) for v in observation.values()]
    )


def make_bin_grid(
    action_spec: Any, bins: int | Sequence[int], grid: GridKind = "actuator"
) -> BinGrid:
    """The bin grid of a dm_control action spec (``BoundedArray`` of shape ``(N,)``)."""
    n_dims = int(np.prod(action_spec.shape))
    if grid == "unit":
        return BinGrid.unit(n_dims, bins)
    if grid == "actuator":
        return BinGrid.from_bounds(action_spec.minimum, action_spec.maximum, bins)
    raise ValueError(f"unknown grid {grid!r}: accepted {', '.join(GRID_KINDS)}")


class DMCDiscreteEnv(gym.Env):
    """A dm_control task with a ``MultiDiscrete`` action space of bin indices.

    Args:
        domain, task: the suite task, e.g. ``("cheetah", "run")``.
        bins: bins per actuator, one int for all or one per actuator (each >= 2).
        grid: ``"actuator"`` (each actuator's real bounds) or ``"unit"`` (the benchmark's [-1, 1]).
        seed: seed of the first :meth:`reset` when that call gives none.
        render_mode: ``None`` or ``"rgb_array"`` (needs a working ``MUJOCO_GL`` backend).
        environment: an already built dm_control ``control.Environment`` to wrap instead of
            loading ``domain-task`` from the suite (``domain``/``task`` then only name it).

    Spaces: ``action_space = MultiDiscrete(bin_grid.counts)``; ``observation_space`` is an
    unbounded float32 ``Box`` of shape ``(obs_dim,)``.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        domain: str,
        task: str,
        bins: int | Sequence[int] = 3,
        grid: GridKind = "actuator",
        seed: int | None = None,
        render_mode: str | None = None,
        environment: control.Environment | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unknown render_mode {render_mode!r}: accepted None, 'rgb_array'")
        self.domain, self.task = domain, task
        self.render_mode = render_mode
        # ``environment`` lets a caller bring its own dm_control task (e.g. a custom termination);
        # otherwise the suite's task is loaded.
        if environment is None:
            environment = suite.load(domain, task, task_kwargs={"random": seed})
        self._env = environment
        self._initial_seed = seed
        self.bin_grid = make_bin_grid(self._env.action_spec(), bins, grid)
        self.grid_kind: GridKind = grid
        obs_spec = self._env.observation_spec()
        #: (name, size) of each block of the flat observation, in order.
        self.obs_keys: tuple[tuple[str, int], ...] = tuple(
            (key, int(np.prod(spec.shape))) for key, spec in obs_spec.items()
        )
        obs_dim = sum(size for _, size in self.obs_keys)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.MultiDiscrete(np.asarray(self.bin_grid.counts, np.int64))
        # dm_control keeps its step limit private; it is time_limit / control_timestep.
        self.max_episode_steps = int(self._env._step_limit)
        self.control_timestep = float(self._env.control_timestep())
        self._needs_reset = True
        self._seeded = False

    @property
    def name(self) -> str:
        """``domain-task``, e.g. ``cheetah-run``."""
        return f"{self.domain}-{self.task}"

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        """Start an episode; ``seed`` re-seeds the task's initial-state randomness."""
        if seed is None and not self._seeded:
            seed = self._initial_seed
        super().reset(seed=seed)
        if seed is not None:
            # dm_control draws initial states from the task's RandomState; replacing it is how
            # a Gymnasium-style reseed reaches the simulator without rebuilding the physics.
            self._env.task._random = np.random.RandomState(seed)
            self.action_space.seed(seed)
            self._seeded = True
        time_step = self._env.reset()
        self._needs_reset = False
        return flatten_observation(time_step.observation), {}

    def step(self, action: np.ndarray | Sequence[int]) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Apply bin indices ``action`` (shape ``(N,)``); returns obs, reward, terminated,
        truncated, info (``info["bin_indices"]``: the executed indices, int64 ``(N,)``)."""
        if self._needs_reset:
            raise RuntimeError("the episode has ended (or never started): call reset() first")
        indices = self.bin_grid.check_indices(action)
        if indices.ndim != 1:
            raise ValueError(
                f"step() takes one action of shape ({self.bin_grid.n_dims},), got {indices.shape}"
            )
        time_step = self._env.step(self.bin_grid.to_values(indices))
        reward = float(time_step.reward) if time_step.reward is not None else 0.0
        terminated = bool(time_step.last() and time_step.discount == 0.0)
        truncated = bool(time_step.last() and not terminated)
        self._needs_reset = terminated or truncated
        info = {"bin_indices": indices, "discount": float(time_step.discount)}
        return flatten_observation(time_step.observation), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """An RGB frame (uint8 ``(240, 320, 3)``) from camera 0 when ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return self._env.physics.render(height=240, width=320, camera_id=0)

    def close(self) -> None:
        self._env.close()
