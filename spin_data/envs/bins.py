"""The one bin grid: how a continuous action dimension becomes a discrete sub-action.

Every discretised task in spin factorises its action into N sub-actions. Sub-action ``i`` picks one
of ``counts[i]`` bins; bin ``k`` of dimension ``i`` stands for the continuous value
``linspace(low[i], high[i], counts[i])[k]`` (endpoints included, as in the discretised DeepMind
Control benchmark of Beeson et al.). Everything that maps between bin indices and continuous
values - environments, behaviour policies, datasets - goes through :class:`BinGrid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

MIN_BINS = 2

#: How a DM Control task's grid spans each action dimension: ``"actuator"``, the actuator's real
#: control bounds (:meth:`BinGrid.from_bounds`), or ``"unit"``, the benchmark's ``[-1, 1]``
#: (:meth:`BinGrid.unit`). A maze's grid is always its actuators' off/on.
GridKind = Literal["actuator", "unit"]
GRID_KINDS: tuple[str, ...] = ("actuator", "unit")


class BinGridError(ValueError):
    """A bin grid was asked for something it cannot represent (bad counts, bounds or indices)."""


def resolve_counts(bins: int | Sequence[int], n_dims: int) -> tuple[int, ...]:
    """Expand ``bins`` (one int for every dimension, or one per dimension) to a tuple of length N.

    Raises:
        BinGridError: if a count is below 2, not an integer, or the list length is not ``n_dims``.
    """
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        counts = (int(bins),) * n_dims
    else:
        try:
            counts = tuple(bins)  # type: ignore[arg-type]
        except TypeError:
            raise BinGridError(f"bins must be an int or a list of ints, got {bins!r}") from None
        if len(counts) != n_dims:
            raise BinGridError(
                f"bins list has {len(counts)} entries but the task has {n_dims} action "
                f"dimensions; give one int for all or exactly {n_dims} ints"
            )
        if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in counts):
            raise BinGridError(f"bins must be integers, got {list(counts)!r}")
        counts = tuple(int(c) for c in counts)
    bad = [c for c in counts if c < MIN_BINS]
    if bad:
        raise BinGridError(f"bins must be >= {MIN_BINS} per dimension, got {bad[0]}")
    return counts


@dataclass(frozen=True, eq=False)
class BinGrid:
    """Per-dimension evenly spaced bins over ``[low[i], high[i]]``, endpoints included.

    Attributes:
        low: lower bound of each dimension, shape ``(N,)``, float64, in the actuator's units.
        high: upper bound of each dimension, shape ``(N,)``, float64.
        counts: number of bins of each dimension, length N, each >= 2.

    Index arrays are integer arrays whose last axis has length N (any leading batch shape);
    value arrays are float arrays of the same shape.
    """

    low: np.ndarray
    high: np.ndarray
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        low = np.asarray(self.low, dtype=np.float64).reshape(-1)
        high = np.asarray(self.high, dtype=np.float64).reshape(-1)
        counts = resolve_counts(self.counts, low.shape[0])
        if low.shape != high.shape:
            raise BinGridError(f"low has {low.shape[0]} dimensions but high has {high.shape[0]}")
        if low.shape[0] == 0:
            raise BinGridError("a bin grid needs at least one dimension")
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
            raise BinGridError(f"bounds must be finite with high > low, got low={low}, high={high}")
        low.setflags(write=False)
        high.setflags(write=False)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "counts", counts)
        # (N, max_bins) table of bin values, NaN-padded where a dimension has fewer bins.
        table = np.full((len(counts), max(counts)), np.nan)
        for i, n in enumerate(counts):
            table[i, :n] = np.linspace(low[i], high[i], n)
        table.setflags(write=False)
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_counts_array", np.asarray(counts, dtype=np.int64))

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def from_bounds(
        cls, low: Sequence[float], high: Sequence[float], bins: int | Sequence[int]
    ) -> "BinGrid":
        """Grid over the given per-dimension bounds (e.g. an actuator's real control range)."""
        low_arr = np.asarray(low, dtype=np.float64).reshape(-1)
        return cls(low_arr, np.asarray(high, dtype=np.float64), resolve_counts(bins, low_arr.size))

    @classmethod
    def unit(cls, n_dims: int, bins: int | Sequence[int]) -> "BinGrid":
        """The benchmark's grid: every dimension over [-1, 1] (3 bins -> {-1, 0, +1})."""
        return cls.from_bounds(-np.ones(n_dims), np.ones(n_dims), bins)

    # ----------------------------------------------------------------------------- properties
    @property
    def n_dims(self) -> int:
        """N, the number of sub-actions."""
        return len(self.counts)

    @property
    def joint_size(self) -> int:
        """Number of joint actions, ``prod(counts)`` (an exact Python int: may exceed 2**63)."""
        size = 1
        for n in self.counts:
            size *= n
        return size

    @property
    def values(self) -> list[np.ndarray]:
        """Bin values of each dimension: ``values[i]`` has shape ``(counts[i],)``."""
        return [self._table[i, :n].copy() for i, n in enumerate(self.counts)]  # type: ignore[attr-defined]

    @property
    def index_dtype(self) -> np.dtype:
        """Smallest unsigned integer dtype that holds every bin index."""
        return np.min_scalar_type(max(self.counts) - 1)

    # ----------------------------------------------------------------------------- mapping
    def check_indices(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """Validate bin indices (shape ``(..., N)``, integers in ``[0, counts[i])``) as int64.

        Raises:
            BinGridError: naming the wrong shape, dtype or the first out-of-range entry.
        """
        arr = np.asarray(indices)
        if arr.ndim == 0 or arr.shape[-1] != self.n_dims:
            raise BinGridError(
                f"action must have shape (..., {self.n_dims}) of bin indices, got shape {arr.shape}"
            )
        if arr.dtype.kind not in "iu":
            if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
                arr = arr.astype(np.int64)
            else:
                raise BinGridError(f"action must hold integer bin indices, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        bad = (arr < 0) | (arr >= self._counts_array)  # type: ignore[attr-defined]
        if bad.any():
            pos = tuple(int(p) for p in np.argwhere(bad)[0])
            dim = pos[-1]
            raise BinGridError(
                f"bin index {int(arr[pos])} out of range for dimension {dim}: "
                f"accepted 0..{self.counts[dim] - 1}"
            )
        return arr

    def to_values(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """Continuous values (float64, shape ``(..., N)``) of bin indices (shape ``(..., N)``)."""
        idx = self.check_indices(indices)
        return self._table[np.arange(self.n_dims), idx]  # type: ignore[attr-defined]

    def quantise(self, values: np.ndarray | Sequence[float]) -> np.ndarray:
        """Nearest bin index (int64, shape ``(..., N)``) of continuous values (shape ``(..., N)``).

        Values outside ``[low, high]`` go to the nearest end bin; an exact tie between two bins
        goes to the upper one. NaN is rejected.
        """
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim == 0 or arr.shape[-1] != self.n_dims:
            raise BinGridError(
                f"continuous action must have shape (..., {self.n_dims}), got shape {arr.shape}"
            )
        if np.isnan(arr).any():
            raise BinGridError("continuous action contains NaN")
        steps = self._counts_array - 1  # type: ignore[attr-defined]
        position = (arr - self.low) / (self.high - self.low) * steps
        return np.clip(np.floor(position + 0.5), 0, steps).astype(np.int64)

    def snap(self, values: np.ndarray | Sequence[float]) -> np.ndarray:
        """Continuous values moved to their nearest bin value (what the simulator really gets)."""
        return self.to_values(self.quantise(values))

    # ----------------------------------------------------------------------------- metadata
    def to_dict(self) -> dict:
        """JSON-ready description (counts, bounds and every bin value), for dataset metadata."""
        return {
            "counts": list(self.counts),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "values": [v.tolist() for v in self.values],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "BinGrid":
        """Inverse of :meth:`to_dict` (bin values are recomputed from bounds and counts)."""
        return cls.from_bounds(data["low"], data["high"], list(data["counts"]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BinGrid):
            return NotImplemented
        return (
            self.counts == other.counts
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )

    def __hash__(self) -> int:
        return hash((self.counts, self.low.tobytes(), self.high.tobytes()))

    def __repr__(self) -> str:
        if len(set(self.counts)) == 1:
            counts = str(self.counts[0])
        else:
            counts = str(list(self.counts))
        return f"BinGrid(n_dims={self.n_dims}, bins={counts}, joint_size={self.joint_size:.3g})"
