"""A maze as data: boxes of the arena, reward regions, :class:`MazeConfig` and its presets.

All lengths are in arena units (the arena is the unit square).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

#: Accepted actuator counts: 2**32 joint actions is already far beyond any dataset's reach.
MIN_ACTUATORS, MAX_ACTUATORS = 2, 32

Box = tuple[float, float, float, float]  # (x_lo, x_hi, y_lo, y_hi), closed intervals


def in_box(box: Box, x: float, y: float) -> bool:
    """Whether ``(x, y)`` lies in the closed box."""
    x_lo, x_hi, y_lo, y_hi = box
    return x_lo <= x <= x_hi and y_lo <= y <= y_hi


def in_box_batch(box: Box, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`in_box` of every point ``(x[i], y[i])`` (bool array of their shape)."""
    x_lo, x_hi, y_lo, y_hi = box
    return (x_lo <= x) & (x <= x_hi) & (y_lo <= y) & (y <= y_hi)


def check_box(box: Sequence[float], what: str) -> Box:
    if len(box) != 4:
        raise ValueError(f"{what} must be (x_lo, x_hi, y_lo, y_hi), got {tuple(box)!r}")
    x_lo, x_hi, y_lo, y_hi = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x_lo, x_hi, y_lo, y_hi)):
        raise ValueError(f"{what} must be finite, got {tuple(box)!r}")
    if not (x_lo <= x_hi and y_lo <= y_hi):
        raise ValueError(f"{what} needs x_lo <= x_hi and y_lo <= y_hi, got {tuple(box)!r}")
    return (x_lo, x_hi, y_lo, y_hi)


@dataclass(frozen=True)
class Region:
    """A rectangular region of the arena that rewards (or ends the episode) when the agent is in it.

    Attributes:
        name: a label, unique within a maze (e.g. ``"goal"``).
        box: ``(x_lo, x_hi, y_lo, y_hi)`` in arena units, closed intervals.
        reward: added to a step's reward when the step ends inside the region.
        terminal: ending a substep inside the region stops the step and ends the episode as a
            true termination.
        once: rewarded only on the first step that ends inside the region in an episode. Such a
            region adds a 0/1 "visited" flag to the observation, so the state stays Markov.
    """

    name: str
    box: Box
    reward: float = 0.0
    terminal: bool = False
    once: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", check_box(self.box, f"region {self.name!r} box"))
        object.__setattr__(self, "reward", float(self.reward))
        if not math.isfinite(self.reward):
            raise ValueError(f"region {self.name!r} reward must be finite, got {self.reward}")

    def contains(self, x: float, y: float) -> bool:
        """Whether the point ``(x, y)`` lies in the (closed) box."""
        return in_box(self.box, x, y)


#: The benchmark's L-shaped barrier: a horizontal bar and a vertical bar.
MAZE_WALLS: tuple[Box, ...] = ((0.0, 0.50, 0.25, 0.30), (0.50, 0.55, 0.25, 0.80))
#: The benchmark's goal: +100 and the episode ends.
GOAL = Region("goal", (0.25, 0.30, 0.45, 0.50), reward=100.0, terminal=True)
#: The original maze's second region, which gives nothing in the benchmark's variant.
SECOND_REGION = Region("second", (0.70, 0.75, 0.85, 0.90), reward=0.0)


@dataclass(frozen=True)
class MazeConfig:
    """Everything that defines a maze; the defaults are the benchmark's 5-actuator maze."""

    # Number of on/off actuators N (= sub-actions); 2**N joint actions.
    n_actuators: int = 5
    # Steps per episode before truncation.
    time_limit: int = 150
    # Substeps per step; each moves at most step_length.
    substeps: int = 4
    # Length of a full-motion substep, in arena units (motion has norm <= 1).
    step_length: float = 0.045
    # Probability that a substep's move is replaced by noise.
    noise_prob: float = 0.1
    # Noise move = U[0,1)^2 * noise_scale * step_length, always up-right; 1/1.415 as the original.
    noise_scale: float = 1.0 / 1.415
    # Reward added on every step (a time penalty).
    step_reward: float = -0.05
    # Initial position (x, y) of every episode.
    start: tuple[float, float] = (0.25, 0.10)
    # Impassable closed rectangles (x_lo, x_hi, y_lo, y_hi).
    walls: tuple[Box, ...] = MAZE_WALLS
    # Reward regions, in observation-flag order for the once-regions.
    regions: tuple[Region, ...] = field(default=(GOAL, SECOND_REGION))

    def __post_init__(self) -> None:
        n = self.n_actuators
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not (
            MIN_ACTUATORS <= n <= MAX_ACTUATORS
        ):
            raise ValueError(f"maze needs {MIN_ACTUATORS}..{MAX_ACTUATORS} actuators, got {n!r}")
        object.__setattr__(self, "n_actuators", int(n))
        for name in ("time_limit", "substeps"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("step_length", "noise_prob", "noise_scale", "step_reward"):
            object.__setattr__(self, name, float(getattr(self, name)))
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        if self.step_length <= 0:
            raise ValueError(f"step_length must be > 0, got {self.step_length}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ValueError(f"noise_prob must be in [0, 1], got {self.noise_prob}")
        if self.noise_scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {self.noise_scale}")
        walls = tuple(check_box(w, f"wall {i}") for i, w in enumerate(self.walls))
        object.__setattr__(self, "walls", walls)
        regions = tuple(self.regions)
        if not all(isinstance(r, Region) for r in regions):
            raise ValueError("regions must be Region instances")
        names = [r.name for r in regions]
        if len(set(names)) != len(names):
            raise ValueError(f"region names must be unique, got {names}")
        object.__setattr__(self, "regions", regions)
        start = tuple(float(v) for v in self.start)
        if len(start) != 2:
            raise ValueError(f"start must be (x, y), got {self.start!r}")
        object.__setattr__(self, "start", start)
        problem = self.position_problem(*start)
        if problem:
            raise ValueError(f"start {start} is {problem}")

    @property
    def once_regions(self) -> tuple[Region, ...]:
        """The regions rewarded once per episode, in the order of their observation flags."""
        return tuple(r for r in self.regions if r.once)

    @property
    def obs_dim(self) -> int:
        """Observation size: (x, y) plus one visited flag per once-region."""
        return 2 + len(self.once_regions)

    def blocked(self, x: float, y: float) -> bool:
        """Whether ``(x, y)`` is outside the arena or inside a wall (where no substep may end)."""
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            return True
        return any(in_box(w, x, y) for w in self.walls)

    def position_problem(self, x: float, y: float) -> str | None:
        """Why ``(x, y)`` cannot start an episode (None if it can)."""
        if not (math.isfinite(x) and math.isfinite(y)):
            return "not finite"
        if self.blocked(x, y):
            return "outside the unit square or inside a wall"
        for r in self.regions:
            if r.terminal and r.contains(x, y):
                return f"inside the terminal region {r.name!r}"
        return None


def maze_config(n_actuators: int = 5) -> MazeConfig:
    """The discretised benchmark's maze with ``n_actuators`` on/off actuators (2..32).

    The benchmark publishes reference scores for 3, 5, 7, 10, 12 and 15 actuators.
    """
    return MazeConfig(n_actuators=n_actuators)


#: The MERLION paper's variant (section A.4): 12 actuators, 60 steps, 10% noise, a +100 terminal
#: goal, a +10 rewarding region and a -20 penalising region, each rewarded once per episode.
#: MERLION does not publish coordinates: the rewarding region reuses the original maze's second
#: region and the penalising region's placement (inside the goal's pocket, next to the path down
#: to the goal) is spin's choice.
MERLION_CONFIG = MazeConfig(
    n_actuators=12,
    time_limit=60,
    noise_prob=0.1,
    regions=(
        GOAL,
        Region("reward", (0.70, 0.75, 0.85, 0.90), reward=10.0, once=True),
        Region("penalty", (0.40, 0.45, 0.60, 0.65), reward=-20.0, once=True),
    ),
)


def merlion_config() -> MazeConfig:
    """The MERLION maze preset (:data:`MERLION_CONFIG`); region placement is spin's choice."""
    return MERLION_CONFIG
