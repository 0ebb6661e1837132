"""The Maze of Chandak et al. (2019), as used by the discretised benchmark and SPIN (Appendix E).

A point agent moves in the unit square ``[0, 1]^2`` around an L-shaped wall towards a goal. It has
``n`` actuators pointing at angles ``2*pi*j/n``; each sub-action switches one actuator off (bin 0)
or on (bin 1), so the action space is ``MultiDiscrete([2] * n)`` with ``2**n`` joint actions. The
move of an action is the sum of its active unit vectors, scaled so that the largest possible move
has norm 1 (see :func:`actuator_motions`).

One environment step is ``substeps`` (4) substeps of ``step_length * motion`` (0.045 length units
at most). On each substep, with probability ``noise_prob`` (0.1) the move is replaced by a random
up-right move ``U[0,1)^2 * noise_scale * step_length``. A substep that would leave the arena or
enter a wall stops the remaining substeps (no sliding, no penalty); entering a terminal region
stops them too. The reward is ``step_reward`` (-0.05) per step plus the rewards of the regions the
agent ends the step in; the goal (+100) ends the episode as a *termination*, the 150-step limit as
a *truncation*. Reaching the goal at step ``k`` therefore returns ``100 - 0.05 k``.

Deliberate differences from the original code (all documented choices, not accidents):

- The original's 150th step neither moves nor rewards, so an episode that never reaches the goal
  returns -7.45 there. Here all 150 steps are real steps: such an episode returns
  ``150 * -0.05 = -7.5`` (0.05% of the normalised score range).
- The original draws from the global numpy RNG and reports one ``done`` flag for goal and time
  limit. Here every maze owns a ``np.random.Generator`` and separates termination from truncation.
- At every reset a maze draws the whole episode's randomness in one block,
  ``rng.random((time_limit, substeps, 3))`` (column 0: noise coin, columns 1-2: noise vector), and
  step ``t`` uses ``block[t]``. Randomness consumption thus does not depend on what happens during
  the episode, which is what lets :class:`BatchedMaze` equal ``B`` single :class:`MazeEnv` s bit
  for bit.

The module follows dm_control's suite style: a maze is data (:class:`MazeConfig`, with presets
:func:`maze_config` and :func:`merlion_config`) plus a readable single-env reference
implementation (:class:`MazeEnv`) and a vectorised one (:class:`BatchedMaze`). All lengths are in
arena units (the arena is the unit square).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from spin_data.envs.bins import BinGrid, BinGridError

__all__ = [
    "Region",
    "MazeConfig",
    "maze_config",
    "merlion_config",
    "MERLION_CONFIG",
    "MazeEnv",
    "BatchedMaze",
    "actuator_motions",
    "motion_of",
]

#: Accepted actuator counts: 2**32 joint actions is already far beyond any dataset's reach.
MIN_ACTUATORS, MAX_ACTUATORS = 2, 32

Box = tuple[float, float, float, float]  # (x_lo, x_hi, y_lo, y_hi), closed intervals


def _in_box(box: Box, x: float, y: float) -> bool:
    x_lo, x_hi, y_lo, y_hi = box
    return x_lo <= x <= x_hi and y_lo <= y <= y_hi


def _in_box_batch(box: Box, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x_lo, x_hi, y_lo, y_hi = box
    return (x_lo <= x) & (x <= x_hi) & (y_lo <= y) & (y <= y_hi)


def _check_box(box: Sequence[float], what: str) -> Box:
    if len(box) != 4:
        raise ValueError(f"{what} must be (x_lo, x_hi, y_lo, y_hi), got {tuple(box)!r}")
    x_lo, x_hi, y_lo, y_hi = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x_lo, x_hi, y_lo, y_hi)):
        raise ValueError(f"{what} must be finite, got {tuple(box)!r}")
    if not (x_lo <= x_hi and y_lo <= y_hi):
        raise ValueError(f"{what} needs x_lo <= x_hi and y_lo <= y_hi, got {tuple(box)!r}")
    return (x_lo, x_hi, y_lo, y_hi)


# ============================================================================= configuration
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
        object.__setattr__(self, "box", _check_box(self.box, f"region {self.name!r} box"))
        object.__setattr__(self, "reward", float(self.reward))
        if not math.isfinite(self.reward):
            raise ValueError(f"region {self.name!r} reward must be finite, got {self.reward}")

    def contains(self, x: float, y: float) -> bool:
        """Whether the point ``(x, y)`` lies in the (closed) box."""
        return _in_box(self.box, x, y)


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
        walls = tuple(_check_box(w, f"wall {i}") for i, w in enumerate(self.walls))
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
        return any(_in_box(w, x, y) for w in self.walls)

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


# ============================================================================= actuator geometry
def _max_subset_norm(vectors: np.ndarray) -> float:
    """Largest ``|sum of a subset of vectors|`` over all ``2**n`` subsets, in O(n^2) work.

    Why a sweep suffices: let S be a maximising subset with sum s. Adding a vector u not in S
    gives ``|s|^2 + 2 u.s + |u|^2``, removing one in S gives ``|s|^2 - 2 u.s + |u|^2``; neither may
    exceed ``|s|^2``, so ``u.s <= -|u|^2/2 < 0`` outside S and ``u.s >= |u|^2/2 > 0`` inside.
    Hence ``S = {u : u.d > 0}`` for ``d = s``, and d lies strictly inside an arc between two
    consecutive "critical" directions (perpendiculars of the vectors), on which that set is
    constant. Evaluating one direction per arc (its midpoint) therefore visits S.
    """
    angles = np.arctan2(vectors[:, 1], vectors[:, 0])
    critical = np.sort(np.mod(np.concatenate([angles + np.pi / 2, angles - np.pi / 2]), 2 * np.pi))
    following = np.append(critical[1:], critical[0] + 2 * np.pi)
    mids = (critical + following) / 2
    directions = np.stack([np.cos(mids), np.sin(mids)], axis=1)  # (2n, 2)
    subsets = (vectors @ directions.T > 0).T.astype(np.float64)  # (2n, n): one candidate per arc
    sums = subsets @ vectors
    return float(np.max(np.hypot(sums[:, 0], sums[:, 1])))


@functools.lru_cache(maxsize=None)
def actuator_motions(n: int) -> tuple[np.ndarray, float]:
    """Unit vectors of ``n`` actuators and the largest motion norm of any on/off combination.

    Actuator ``j`` points at angle ``2*pi*j/n``; its vector is rounded to 3 decimals (as in the
    original). Returns ``(vectors, max_norm)``: vectors float64 ``(n, 2)`` (read-only) and the
    largest ``|sum of active vectors|`` over all ``2**n`` combinations, found without enumerating
    them (see :func:`_max_subset_norm`). An action's motion is its active vectors' sum divided by
    ``max_norm``, so the biggest move has norm 1.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not (
        MIN_ACTUATORS <= n <= MAX_ACTUATORS
    ):
        raise ValueError(f"maze needs {MIN_ACTUATORS}..{MAX_ACTUATORS} actuators, got {n!r}")
    angles = 2 * np.pi * np.arange(n) / n
    vectors = np.round(np.stack([np.cos(angles), np.sin(angles)], axis=1), 3) + 0.0  # no -0.0
    vectors.setflags(write=False)
    return vectors, _max_subset_norm(vectors)


def motion_of(config: MazeConfig | int, action: np.ndarray | Sequence[int]) -> np.ndarray:
    """Normalised motion (float64 ``(..., 2)``, norm <= 1) of on/off action(s) ``(..., n)``.

    The sum runs actuator by actuator with ``where`` rather than a matrix product: a BLAS product
    may sum in a batch-size-dependent order, and the single and batched mazes must agree to the
    bit. ``action`` must already be valid 0/1 indices.
    """
    n = config.n_actuators if isinstance(config, MazeConfig) else int(config)
    vectors, max_norm = actuator_motions(n)
    on = np.asarray(action) != 0
    total = np.zeros(on.shape[:-1] + (2,))
    for j in range(n):
        total += np.where(on[..., j, None], vectors[j], 0.0)
    return total / max_norm


# ============================================================================= single maze
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
        indices = _check_action(self.bin_grid, action, batch=False)
        obs, rewards, terminated, truncated, _ = self._maze._step_checked(indices[None])
        self._needs_reset = bool(terminated[0] or truncated[0])
        return obs[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), self._info()

    def render(self) -> np.ndarray | None:
        """A top-down RGB picture (uint8 ``(200, 200, 3)``) when ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return self._maze.render()[0]

    # ------------------------------------------------------------------------- helpers
    def _observation(self) -> np.ndarray:
        return self._maze._observation()[0]

    def _info(self) -> dict[str, Any]:
        return {"position": self._maze._position[0].copy(), "steps": int(self._maze._steps[0])}


def _checked_position(cfg: MazeConfig, position: Sequence[float]) -> tuple[float, float]:
    pos = tuple(float(v) for v in position)
    if len(pos) != 2:
        raise ValueError(f"position must be (x, y), got {position!r}")
    problem = cfg.position_problem(*pos)
    if problem:
        raise ValueError(f"cannot start at {pos}: it is {problem}")
    return pos  # type: ignore[return-value]


def _check_action(grid: BinGrid, action: Any, batch: bool) -> np.ndarray:
    arr = np.asarray(action)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)  # on/off masks are a natural way to write maze actions
    indices = grid.check_indices(arr)
    want = 2 if batch else 1
    if indices.ndim != want:
        shape = "(B, n)" if batch else "(n,)"
        raise BinGridError(
            f"action must have shape {shape} with n = {grid.n_dims}, got shape {indices.shape}"
        )
    return indices


def _draw(cfg: MazeConfig, positions: np.ndarray, size: int = 200) -> np.ndarray:
    """Pictures (uint8 ``(P, size, size, 3)``) of the maze with the agent at each position."""
    centres = (np.arange(size) + 0.5) / size
    gx, gy = np.meshgrid(centres, centres[::-1])  # row 0 is the top (y = 1)
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    for region in cfg.regions:
        colour = (60, 180, 75) if region.terminal else (
            (70, 130, 230) if region.reward > 0 else (230, 80, 80) if region.reward < 0
            else (200, 200, 200))
        image[_in_box_batch(region.box, gx, gy)] = colour
    for wall in cfg.walls:
        image[_in_box_batch(wall, gx, gy)] = (30, 30, 30)
    frames = np.repeat(image[None], len(positions), axis=0)
    for frame, (x, y) in zip(frames, positions):
        frame[(gx - x) ** 2 + (gy - y) ** 2 <= 0.015**2] = (240, 130, 0)
    return frames


# ============================================================================= batched maze
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
        return self._observation(), self._info()

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
        indices = _check_action(self.bin_grid, actions, batch=True)
        if indices.shape[0] != self.num_envs:
            raise BinGridError(
                f"actions must have shape ({self.num_envs}, {self.config.n_actuators}), "
                f"got {indices.shape}"
            )
        return self._step_checked(indices)

    def _step_checked(
        self, indices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """:meth:`step` on indices already validated ((B, n) of 0/1): the dynamics."""
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
                blocked |= _in_box_batch(wall, new_x, new_y)
            moving &= ~blocked
            x = np.where(moving, new_x, x)
            y = np.where(moving, new_y, y)
            for region in self._terminal_regions:
                moving &= ~_in_box_batch(region.box, x, y)
        self._position = np.stack([x, y], axis=1)
        self._steps += live

        rewards = np.where(live, cfg.step_reward, 0.0)
        terminated = np.zeros(self.num_envs, dtype=bool)
        once_index = 0
        for region in cfg.regions:
            inside = _in_box_batch(region.box, x, y) & live
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

        obs = self._observation()
        info: dict[str, Any] = {}
        if self.autoreset:
            info["final_observation"] = obs.copy()
            for i in np.flatnonzero(ended):
                self._reset_one(int(i))
            if ended.any():
                obs = self._observation()
        info.update(self._info())
        return obs, rewards, terminated, truncated, info

    def render(self) -> np.ndarray:
        """Top-down RGB pictures of every env, uint8 ``(B, 200, 200, 3)``."""
        return _draw(self.config, self._position)

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

    def _observation(self) -> np.ndarray:
        return np.concatenate([self._position, self._visited], axis=1).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {
            "position": self._position.copy(),
            "steps": self._steps.copy(),
            "active": self._active.copy(),
        }
