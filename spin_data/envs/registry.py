"""The one environment registry: names -> discretised tasks, and their reference scores.

Accepted names:

- the benchmark's short names: ``cheetah`` (cheetah-run), ``finger`` (finger-spin), ``fish``
  (fish-swim), ``quadruped`` (quadruped-walk), ``humanoid`` (humanoid-stand), ``dog`` (dog-trot);
- any ``domain-task`` of the dm_control suite, e.g. ``walker-walk``;
- ``maze-N``: the Chandak et al. maze with N on/off actuators (N = 2..32); ``maze`` is ``maze-5``;
- ``merlion``: the MERLION paper's 12-actuator maze variant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

import gymnasium as gym
import numpy as np

from spin_data.envs import reference
from spin_data.envs.bins import GridKind
from spin_data.envs import maze
from spin_data.envs.maze import MAX_ACTUATORS, MIN_ACTUATORS
from spin_data.envs.reference import NoReferenceScore, ReferenceScore

#: The discretised benchmark's short names and the dm_control tasks they stand for.
DMC_SHORT_NAMES: dict[str, str] = {
    "cheetah": "cheetah-run",
    "finger": "finger-spin",
    "fish": "fish-swim",
    "quadruped": "quadruped-walk",
    "humanoid": "humanoid-stand",
    "dog": "dog-trot",
}
#: Actuator counts of the benchmark's maze (SPIN evaluates 5, 10 and 15).
MAZE_BENCHMARK_ACTUATORS: tuple[int, ...] = (3, 5, 7, 10, 12, 15)
MAZE_DEFAULT_ACTUATORS = 5
#: Bins per action dimension of a DMC task when none are given (a maze's are always 2: off/on).
DMC_DEFAULT_BINS = 3

_MAZE_NAME = re.compile(r"^maze(?:-(\d+))?$")


class UnknownEnvironment(ValueError):
    """The name matches no registered environment."""


@dataclass(frozen=True)
class EnvSpec:
    """What a registry name resolves to.

    Attributes:
        name: the name as given (e.g. ``cheetah``).
        canonical: the task's full name, the key of the reference-score table (``cheetah-run``,
            ``maze-5``, ``merlion``).
        family: ``"dmc"`` or ``"maze"``.
        default_bins: bins per dimension when none are given (3 for DMC, 2 = on/off for mazes).
    """

    name: str
    canonical: str
    family: Literal["dmc", "maze"]
    default_bins: int


def accepted_names() -> str:
    """One line listing what :func:`resolve` accepts (for error messages and help texts)."""
    return (
        ", ".join(DMC_SHORT_NAMES)
        + f", any dm_control domain-task (e.g. walker-walk), maze, maze-N (N = {MIN_ACTUATORS}..{MAX_ACTUATORS}), merlion"
    )


def resolve(name: str) -> EnvSpec:
    """Resolve a registry name (see the module docstring) to its :class:`EnvSpec`."""
    key = name.strip().lower()
    if key in DMC_SHORT_NAMES:
        return EnvSpec(name, DMC_SHORT_NAMES[key], "dmc", DMC_DEFAULT_BINS)
    if key == "merlion":
        return EnvSpec(name, "merlion", "maze", 2)
    match = _MAZE_NAME.match(key)
    if match:
        actuators = int(match.group(1)) if match.group(1) else MAZE_DEFAULT_ACTUATORS
        if not MIN_ACTUATORS <= actuators <= MAX_ACTUATORS:
            raise UnknownEnvironment(
                f"maze needs {MIN_ACTUATORS}..{MAX_ACTUATORS} actuators, got {actuators} ({name!r})"
            )
        return EnvSpec(name, f"maze-{actuators}", "maze", 2)
    from spin_data.envs import dmc  # imported here: resolving maze names needs no simulator

    try:
        dmc.split_task_name(key)
    except ValueError:
        raise UnknownEnvironment(
            f"unknown environment {name!r}: accepted {accepted_names()}"
        ) from None
    return EnvSpec(name, key, "dmc", DMC_DEFAULT_BINS)


def registered_envs() -> list[EnvSpec]:
    """The environments ``spin-data envs`` lists: the short names, the benchmark mazes, merlion."""
    names = list(DMC_SHORT_NAMES) + [f"maze-{n}" for n in MAZE_BENCHMARK_ACTUATORS] + ["merlion"]
    return [resolve(n) for n in names]


def make_env(
    name: str,
    bins: int | Sequence[int] | None = None,
    seed: int | None = None,
    *,
    grid: GridKind = "actuator",
    continuous: bool = False,
    render_mode: str | None = None,
) -> gym.Env:
    """Build a discretised environment by name.

    Args:
        name: a registry name (see :func:`accepted_names`).
        bins: bins per action dimension: one int for all, or a list of N ints (each >= 2).
            Defaults to 3 for DMC tasks; mazes accept only 2 (each actuator is off or on).
        seed: seed of the first ``reset()`` that is given none.
        grid: DMC only: ``"actuator"`` (each actuator's real bounds) or ``"unit"`` ([-1, 1],
            the benchmark's grid).
        continuous: return the continuous view (Box actions snapped to the bin grid), for
            continuous-action learners; the executed bins are in ``info["bin_indices"]``.
        render_mode: ``None`` or ``"rgb_array"``.

    Returns:
        A Gymnasium env with a ``MultiDiscrete`` action space (or ``Box`` if ``continuous``), a
        ``bin_grid``, ``obs_keys`` and ``max_episode_steps``.
    """
    spec = resolve(name)
    if spec.family == "dmc":
        from spin_data.envs.dmc import DMCDiscreteEnv

        domain, task = spec.canonical.split("-", 1)
        env: gym.Env = DMCDiscreteEnv(
            domain, task, bins=DMC_DEFAULT_BINS if bins is None else bins, grid=grid, seed=seed,
            render_mode=render_mode,
        )
    else:
        check_bins(name, bins)
        check_grid(name, grid)
        if spec.canonical == "merlion":
            config = maze.merlion_config()
        else:
            config = maze.maze_config(int(spec.canonical.split("-")[1]))
        env = maze.MazeEnv(config, seed=seed, render_mode=render_mode)
    if continuous:
        from spin_data.envs.continuous import SnappedContinuousEnv

        env = SnappedContinuousEnv(env)
    return env


def check_bins(env: str, bins: int | Sequence[int] | None) -> None:
    """Refuse bins that ``env`` cannot have: a maze's actuators are on/off, so its bins (one int
    or one per actuator) must be 2. None (the env's default) and any DMC bins >= 2 pass here.

    Raises:
        ValueError: a maze with bins other than 2 (the one wording every caller shows).
        UnknownEnvironment: ``env`` is no registry name.
    """
    if bins is None or resolve(env).family != "maze":
        return
    if isinstance(bins, (list, tuple, np.ndarray)):
        all_two = all(b == 2 for b in bins)
    else:
        all_two = bins == 2
    if not all_two:
        raise ValueError(f"maze actuators are on/off: bins must be 2, got {bins}")


def check_grid(env: str, grid: str | None) -> None:
    """Refuse a bin grid for a maze (its bins are off/on: only ``"actuator"``, or None for the
    default, applies). Any grid passes for DMC tasks here (their values are GRID_KINDS).

    Raises:
        ValueError: a maze with another grid (the one wording every caller shows).
        UnknownEnvironment: ``env`` is no registry name.
    """
    if grid not in (None, "actuator") and resolve(env).family == "maze":
        raise ValueError("grid applies to DMC tasks only; a maze's bins are off/on")


def reference_score(name: str, bins: int | None = None) -> ReferenceScore | None:
    """The published expert/random returns of a task (any registry name) at ``bins``, or None."""
    spec = resolve(name)
    return reference.lookup(spec.canonical, spec.default_bins if bins is None else bins)


def normalised_score(name: str, episode_return: float, bins: int | None = None) -> float:
    """``(R - random) / (expert - random)`` for a task (any registry name) at ``bins``.

    Raises:
        NoReferenceScore: no published score for this task and bin count (the message says which
            bin counts have one).
    """
    spec = resolve(name)
    n_bins = spec.default_bins if bins is None else bins
    score = reference.lookup(spec.canonical, n_bins)
    if score is None:
        known = reference.published_bins(spec.canonical)
        where = f"published for bins {', '.join(map(str, known))}" if known else "none published"
        raise NoReferenceScore(f"no reference score for {spec.canonical} at {n_bins} bins ({where})")
    return score.normalise(episode_return)
