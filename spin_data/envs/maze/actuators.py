"""The maze's on/off actuators: the motion of an action, and checking actions.

Actuator ``j`` of ``n`` points at angle ``2*pi*j/n``; an action switches each one off (bin 0) or
on (bin 1), and its motion is the sum of the active unit vectors, scaled so that the largest
possible move has norm 1.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from spin_data.envs.bins import BinGrid, BinGridError
from spin_data.envs.maze.config import MAX_ACTUATORS, MIN_ACTUATORS, MazeConfig


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


def check_action(grid: BinGrid, action: Any, batch: bool) -> np.ndarray:
    """On/off indices (int ``(n,)``, or ``(B, n)`` with ``batch``) of ``action``, which may also
    be a bool mask.

    Raises:
        BinGridError: wrong shape or a value other than 0/1.
    """
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
