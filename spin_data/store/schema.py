"""The one schema of a spin dataset store, used by both the writer and the reader.

A store is a zarr v3 group (zarr-python 3.1) readable with nothing but zarr-python::

    <root>/zarr.json                 group; attributes: "spin" (format, schema version, complete),
                                     "metadata" (how the data was made), "checksums" (sha256 of
                                     every array's content)
    steps/observations   (T, D) float32   observation before each step
    steps/actions        (T, N) uint8/16  executed bin indices (smallest unsigned int that fits)
    steps/rewards        (T,)   float32
    steps/terminations   (T,)   bool      true terminal (no bootstrapping) at an episode's last step
    steps/truncations    (T,)   bool      time limit (bootstrapping goes on) at an episode's last step
    episodes/ends        (E,)   int64     cumulative: episode e holds steps [ends[e-1], ends[e])
    episodes/lengths     (E,)   int64
    episodes/returns     (E,)   float64   undiscounted sum of the episode's rewards
    episodes/sources     (E,)   uint8     code into SOURCES (random / medium / expert / other)
    episodes/seeds       (E,)   int64     the reset seed of the episode
    episodes/final_observations (E, D) float32  observation after each episode's last step

Next observations are never stored twice: for step t inside an episode it is
``observations[t + 1]``; for an episode's last step it is ``final_observations[e]``.

Per-step arrays are chunked along time in chunks of 4 MiB or more (a power of two of rows)
inside shards of :data:`SHARD_ROWS` rows, so a million-step store is a handful of files per array,
and compressed with Blosc-zstd and bit shuffle (measured against the alternatives in
``benchmarks/store_codecs.py``). Nothing is pickled and no array
has an object dtype.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from zarr.codecs import BloscCodec, BloscShuffle

FORMAT_NAME = "spin-dataset"
#: Bumped on any change a reader of the previous version could misread.
SCHEMA_VERSION = 1

#: Rows per shard of every per-step array; every writer owns whole shards.
SHARD_ROWS = 1 << 18
#: Smallest chunk payload along time (4 MiB: fewer, larger chunks decode faster whole-array).
MIN_CHUNK_BYTES = 1 << 22
#: Rows per shard of per-episode arrays (a million-step store has ~1000-10000 episodes).
EPISODE_SHARD_ROWS = 1 << 16

#: Episode provenance codes stored in ``episodes/sources``.
SOURCES: tuple[str, ...] = ("random", "medium", "expert", "other")


def return_statistics(returns: np.ndarray, sources: np.ndarray) -> dict[str, dict]:
    """mean/std/min/max/episodes of returns, per source and over ``all``: what a store's
    ``metadata["returns"]`` holds, from its ``episodes/returns`` and ``episodes/sources``."""
    stats = {}
    groups = {"all": np.ones_like(sources, dtype=bool)}
    groups.update({name: sources == code for code, name in enumerate(SOURCES)})
    for name, mask in groups.items():
        if mask.any():
            r = returns[mask]
            stats[name] = {"episodes": int(mask.sum()), "mean": float(r.mean()),
                           "std": float(r.std()), "min": float(r.min()), "max": float(r.max())}
    return stats


@dataclass(frozen=True)
class ArraySpec:
    """One array of the store: its path, dtype (None = decided per dataset) and row meaning."""

    path: str
    dtype: str | None
    per: str  # "step" or "episode"
    width: str | None = None  # "obs" or "act": the trailing dimension, or None for 1-D
    doc: str = ""


ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("steps/observations", "float32", "step", "obs", "observation before each step"),
    ArraySpec("steps/actions", None, "step", "act", "executed bin indices"),
    ArraySpec("steps/rewards", "float32", "step", None, "reward of each step"),
    ArraySpec("steps/terminations", "bool", "step", None, "true terminal at this step"),
    ArraySpec("steps/truncations", "bool", "step", None, "time limit at this step"),
    ArraySpec("episodes/ends", "int64", "episode", None, "cumulative end row of each episode"),
    ArraySpec("episodes/lengths", "int64", "episode", None, "steps in each episode"),
    ArraySpec("episodes/returns", "float64", "episode", None, "undiscounted return"),
    ArraySpec("episodes/sources", "uint8", "episode", None, "index into SOURCES"),
    ArraySpec("episodes/seeds", "int64", "episode", None, "reset seed"),
    ArraySpec("episodes/final_observations", "float32", "episode", "obs",
              "observation after the episode's last step"),
)
ARRAY_PATHS: tuple[str, ...] = tuple(spec.path for spec in ARRAYS)
STEP_ARRAYS: tuple[str, ...] = tuple(spec.path for spec in ARRAYS if spec.per == "step")
EPISODE_ARRAYS: tuple[str, ...] = tuple(spec.path for spec in ARRAYS if spec.per == "episode")


def action_dtype(counts: tuple[int, ...] | list[int]) -> np.dtype:
    """Smallest unsigned integer dtype holding every bin index of the grid."""
    return np.dtype(np.min_scalar_type(max(counts) - 1))


def array_dtype(spec: ArraySpec, counts: tuple[int, ...] | list[int]) -> np.dtype:
    """The dtype of ``spec`` in a dataset whose bin grid has these counts."""
    return action_dtype(counts) if spec.dtype is None else np.dtype(spec.dtype)


def array_shape(spec: ArraySpec, rows: int, obs_dim: int, n_actions: int) -> tuple[int, ...]:
    """The shape of ``spec`` with ``rows`` rows (steps or episodes)."""
    if spec.width == "obs":
        return (rows, obs_dim)
    if spec.width == "act":
        return (rows, n_actions)
    return (rows,)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def layout(spec: ArraySpec, shape: tuple[int, ...], dtype: np.dtype) -> tuple[tuple, tuple]:
    """(chunks, shards) of an array: chunks of >= MIN_CHUNK_BYTES along time in fixed-row shards.

    Shards never exceed the data (rounded up to whole chunks), so a small store stays small.
    """
    row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
    shard_rows = SHARD_ROWS if spec.per == "step" else EPISODE_SHARD_ROWS
    chunk_rows = min(shard_rows, _pow2_at_least(-(-MIN_CHUNK_BYTES // row_bytes)))
    rows = max(1, shape[0])
    chunk_rows = min(chunk_rows, _pow2_at_least(rows))
    shard_rows = min(shard_rows, -(-rows // chunk_rows) * chunk_rows)
    rest = tuple(shape[1:])
    return (chunk_rows, *rest), (shard_rows, *rest)


def compressor(dtype: np.dtype) -> BloscCodec:
    """Blosc-zstd (level 3) with bit shuffle, for every array.

    Measured (``benchmarks/store_codecs.py``): observations compress about 1.1x with any codec
    and bit-shuffled zstd decodes them as fast as lz4 (within run-to-run noise) at a slightly
    better ratio; bin indices compress 4.3x (best of the candidates) and flags 2000x.
    """
    return BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle)


def dimension_names(spec: ArraySpec) -> tuple[str, ...]:
    """Names of each axis (kept in zarr metadata for plain-zarr readers)."""
    first = "step" if spec.per == "step" else "episode"
    if spec.width == "obs":
        return (first, "observation")
    if spec.width == "act":
        return (first, "sub_action")
    return (first,)


# ----------------------------------------------------------------------------- content checksums
#: Arrays are hashed in blocks of this many rows, so shards can be hashed in parallel.
CHECKSUM_BLOCK_ROWS = SHARD_ROWS


def block_digest(block: np.ndarray) -> bytes:
    """sha256 of one block's values: C order, little-endian (the same bytes on every machine)."""
    arr = np.ascontiguousarray(block)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and np.little_endian is False):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return hashlib.sha256(arr.view(np.uint8).reshape(-1).data).digest()


def combine_digests(shape: tuple[int, ...], dtype: np.dtype, digests: list[bytes]) -> str:
    """An array's checksum from its block digests (in row order), its shape and dtype."""
    h = hashlib.sha256(f"{np.dtype(dtype).str}|{tuple(int(s) for s in shape)}|".encode())
    for d in digests:
        h.update(d)
    return "sha256:" + h.hexdigest()


def array_checksum(array: np.ndarray) -> str:
    """Checksum of a whole in-memory array (blocks of :data:`CHECKSUM_BLOCK_ROWS` rows)."""
    rows = array.shape[0]
    digests = [block_digest(array[i : i + CHECKSUM_BLOCK_ROWS])
               for i in range(0, rows, CHECKSUM_BLOCK_ROWS)]
    return combine_digests(array.shape, array.dtype, digests)


def content_checksum(checksums: dict[str, str]) -> str:
    """One checksum of the whole dataset's content: its arrays' checksums in schema order."""
    h = hashlib.sha256()
    for path in ARRAY_PATHS:
        h.update(f"{path}={checksums[path]}\n".encode())
    return "sha256:" + h.hexdigest()
