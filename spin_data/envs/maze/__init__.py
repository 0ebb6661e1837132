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

Modules: :mod:`.config` (what a maze is: arena boxes, regions, :class:`MazeConfig`, the presets),
:mod:`.actuators` (on/off actions and their motions), :mod:`.batched` (:class:`BatchedMaze`, the
dynamics), :mod:`.env` (:class:`MazeEnv`, the Gymnasium API over a batch of one) and
:mod:`.drawing` (top-down pictures).
"""

from spin_data.envs.maze.actuators import actuator_motions, motion_of
from spin_data.envs.maze.batched import BatchedMaze
# GOAL, MAZE_WALLS, SECOND_REGION, Box and the actuator bounds: module attributes as before the
# split, outside __all__ as before.
from spin_data.envs.maze.config import (  # noqa: F401
    GOAL,
    MAX_ACTUATORS,
    MAZE_WALLS,
    MERLION_CONFIG,
    MIN_ACTUATORS,
    SECOND_REGION,
    Box,
    MazeConfig,
    Region,
    maze_config,
    merlion_config,
)
from spin_data.envs.maze.env import MazeEnv

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
