"""Gymnasium ids for spin's tasks: ``gymnasium.make("spin/cheetah-run-3bins-v0")``.

Other libraries (Minari's ``recover_environment``, CORL, d3rlpy, torchrl, RLlib) build their
evaluation envs by id. Importing :mod:`spin_data` (or anything under it) registers, in the
``spin`` namespace, one id per task and bin count of the benchmark's catalogue:

- ``spin/<dm_control task>-<bins>bins-v0`` for each DM Control task of the benchmark at every bin
  count it publishes a reference score for (``cheetah-run-3bins``, ``dog-trot-10bins``, ...),
  on the benchmark's bin grid ([-1, 1] per actuator, ``grid="unit"``, as the catalogue's
  recipes use);
- ``spin/maze-<N>-2bins-v0`` for the benchmark's mazes (N = 3, 5, 7, 10, 12, 15) and
  ``spin/merlion-2bins-v0``.

The id names the same env as a dataset id of the catalogue (``<task>-<bins>bins-<quality>``).
Other settings pass through ``gymnasium.make`` as keyword arguments of
:func:`spin_data.envs.make_env` (``gymnasium.make("spin/cheetah-run-3bins-v0", grid="actuator")``;
any other bin count: ``bins=5``). Without importing spin first, the module prefix works too:
``gymnasium.make("spin_data.envs:spin/maze-5-2bins-v0")``.

Each registration carries the task's episode length as ``max_episode_steps`` (DMC 1,000, mazes
150), which Minari and other libraries read from the spec. The env ends its episodes at that
step itself, so gymnasium's ``TimeLimit`` only repeats the truncation at the same step.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from spin_data.envs import maze, reference
from spin_data.envs.registry import DMC_SHORT_NAMES, MAZE_BENCHMARK_ACTUATORS, make_env

#: Gymnasium namespace of spin's ids.
NAMESPACE = "spin"
#: Version suffix of every id (bumped if a task's dynamics, bins or rewards ever change).
VERSION = 0
#: Episode length of every DM Control task (dm_control's 20 s at its control rate).
DMC_EPISODE_STEPS = 1000
#: Where gymnasium finds the constructor (a string, so that env specs serialise).
ENTRY_POINT = "spin_data.envs.gym_ids:make"


def gym_id(task: str, bins: int) -> str:
    """The Gymnasium id of a canonical task at ``bins`` bins: ``spin/<task>-<bins>bins-v0``."""
    return f"{NAMESPACE}/{task}-{bins}bins-v{VERSION}"


def make(task: str, bins: int, grid: str = "actuator", **kwargs: Any) -> gym.Env:
    """Gymnasium's constructor for the ids: :func:`~spin_data.envs.make_env` with the id's
    task, bins and grid, plus any keyword arguments given to ``gymnasium.make``."""
    return make_env(task, bins=bins, grid=grid, **kwargs)


def catalogue() -> dict[str, dict[str, Any]]:
    """``{id: registration}`` of every id spin registers (see the module docstring)."""
    ids: dict[str, dict[str, Any]] = {}
    for task in DMC_SHORT_NAMES.values():
        for bins in reference.published_bins(task):
            ids[gym_id(task, bins)] = {"kwargs": {"task": task, "bins": bins, "grid": "unit"},
                                       "max_episode_steps": DMC_EPISODE_STEPS}
    mazes = {f"maze-{n}": maze.maze_config(n) for n in MAZE_BENCHMARK_ACTUATORS}
    mazes["merlion"] = maze.merlion_config()
    for task, config in mazes.items():
        ids[gym_id(task, 2)] = {"kwargs": {"task": task, "bins": 2},
                                "max_episode_steps": config.time_limit}
    return ids


def register_all() -> list[str]:
    """Register every id of :func:`catalogue` with gymnasium (again: no-op); returns the ids."""
    ids = catalogue()
    for env_id, entry in ids.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=ENTRY_POINT, kwargs=entry["kwargs"],
                         max_episode_steps=entry["max_episode_steps"])
    return list(ids)
