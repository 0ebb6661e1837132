"""Publishing a dataset: the staging area's parts -> one zarr store, moved into place atomically.

:func:`publish` lays the parts end to end (part order, then episode order), builds the zarr store
in whole shards from memory-mapped part files - several processes may build it, each owning
disjoint shards, with bytes identical to a single process - records metadata and checksums, and
moves the store to its location atomically (see :mod:`.location`).
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import getpass
import json
import multiprocessing
import os
import platform
import shutil
import warnings
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import zarr
from zarr.storage import LocalStore

from spin_data.store import schema
from spin_data.store.location import (StoreLocationError, default_staging_dir, exists,
                                      parse_location, publish_directory)
from spin_data.store.staging import (HEADER, JOURNAL, PART_FILES, WRITER_LOCK, DatasetWriteError,
                                     PartHeader, read_journal)

#: Packages whose versions every dataset records.
RECORDED_PACKAGES = ("spin", "numpy", "zarr", "numcodecs", "dm_control", "mujoco", "gymnasium",
                     "stable_baselines3", "torch")


@dataclass(frozen=True)
class _Parts:
    """The staging area's parts laid end to end: where each part's rows start."""

    dirs: tuple[str, ...]
    step_offsets: tuple[int, ...]  # cumulative steps before each part, plus the total
    header: dict

    @property
    def n_steps(self) -> int:
        return self.step_offsets[-1]


def _gather_steps(parts: _Parts, path: str, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` of a per-step array, read from the parts' raw files."""
    header = PartHeader.from_json(parts.header)
    spec = next(s for s in schema.ARRAYS if s.path == path)
    dtype = schema.array_dtype(spec, header.bin_grid.counts)
    width = schema.array_shape(spec, 1, header.obs_dim, header.bin_grid.n_dims)[1:]
    pieces = []
    for k, part_dir in enumerate(parts.dirs):
        lo, hi = parts.step_offsets[k], parts.step_offsets[k + 1]
        a, b = max(start, lo), min(stop, hi)
        if a >= b:
            continue
        mm = np.memmap(Path(part_dir) / PART_FILES[path], dtype=dtype, mode="r",
                       shape=(hi - lo, *width))
        pieces.append(np.array(mm[a - lo : b - lo]))
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def _write_step_block(build: str, parts: _Parts, block: int) -> dict[str, bytes]:
    """Write rows of block ``block`` (whole shards) of every per-step array; return digests.

    Runs in a worker process when publishing with several workers: each worker owns whole
    shards, which is what makes concurrent zarr writes safe without locks.
    """
    start = block * schema.CHECKSUM_BLOCK_ROWS
    stop = min(start + schema.CHECKSUM_BLOCK_ROWS, parts.n_steps)
    group = zarr.open_group(LocalStore(build), mode="r+")
    digests = {}
    for path in schema.STEP_ARRAYS:
        data = _gather_steps(parts, path, start, stop)
        group[path][start:stop] = data
        digests[path] = schema.block_digest(data)
    return digests


def installed_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Version of each installed distribution in ``names``; None for one not installed here
    (sbx and jax, say, on a base install that collects from shipped policies)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _package_versions() -> dict[str, str | None]:
    return {"python": platform.python_version(), **installed_versions(RECORDED_PACKAGES)}


def _load_parts(staging: Path) -> tuple[_Parts, dict[str, np.ndarray], int]:
    part_dirs = sorted((staging / "parts").glob("part-*")) if (staging / "parts").exists() else []
    if not part_dirs:
        raise DatasetWriteError(f"nothing to publish: no collected episodes in {staging}")
    headers = [json.loads((d / HEADER).read_text()) for d in part_dirs]
    for d, h in zip(part_dirs, headers):
        if PartHeader.from_json(h) != PartHeader.from_json(headers[0]):
            raise DatasetWriteError(f"{d} was collected for another observation size or bin grid")
    journals = [read_journal(d / JOURNAL)[0] for d in part_dirs]
    entries = [e for journal in journals for e in journal]
    if not entries:
        raise DatasetWriteError(f"nothing to publish: no complete episode in {staging}")
    steps = np.cumsum([0] + [sum(e["steps"] for e in j) for j in journals])
    parts = _Parts(tuple(map(str, part_dirs)), tuple(int(s) for s in steps), headers[0])
    header = PartHeader.from_json(headers[0])
    lengths = np.array([e["steps"] for e in entries], dtype=np.int64)
    finals = []
    for d, journal in zip(part_dirs, journals):
        raw = np.fromfile(d / PART_FILES["episodes/final_observations"], dtype=np.float32)
        finals.append(raw[: len(journal) * header.obs_dim].reshape(len(journal), header.obs_dim))
    episodes = {
        "episodes/ends": np.cumsum(lengths),
        "episodes/lengths": lengths,
        "episodes/returns": np.array([e["return"] for e in entries], dtype=np.float64),
        "episodes/sources": np.array([schema.SOURCES.index(e["source"]) for e in entries],
                                     dtype=np.uint8),
        "episodes/seeds": np.array([e["seed"] for e in entries], dtype=np.int64),
        "episodes/final_observations": np.concatenate(finals),
    }
    terminated = int(sum(bool(e["terminated"]) for e in entries))
    return parts, episodes, terminated


def publish(
    location: str | os.PathLike,
    metadata: dict[str, Any],
    *,
    workers: int = 1,
    staging_dir: str | os.PathLike | None = None,
    storage_options: dict[str, Any] | None = None,
    review: Callable[[dict[str, Any]], list[str]] | None = None,
) -> str:
    """Build the store from every collected part and publish it atomically.

    Args:
        location: the destination given to the writers.
        metadata: how the data was made (dataset id, environment, quality, recipe, behaviour
            provenance, reference scores, seeds, creator...). spin adds the bin grid, totals,
            return statistics per source, creation time, package versions and checksums.
        workers: processes building shards in parallel (each owns whole shards).
        review: called with the computed return statistics per source before the store is
            published; the sentences it returns are appended to the metadata's ``warnings``
            (how a dataset maker records a problem only the collected data shows).

    Returns:
        The location string, ready for :func:`spin_data.open_dataset`.

    Raises:
        StoreLocationError: a store already exists at the location (nothing is replaced).
        DatasetWriteError: nothing was collected, or parts disagree.
    """
    loc = parse_location(location)
    if exists(loc, storage_options=storage_options):
        raise StoreLocationError(f"{loc}: a store already exists there; datasets are immutable")
    if "dataset_id" not in metadata:
        raise DatasetWriteError("metadata needs a 'dataset_id'")
    staging = Path(staging_dir) if staging_dir else default_staging_dir(loc)
    parts, episodes, n_terminated = _load_parts(staging)
    header = PartHeader.from_json(parts.header)
    T, E = parts.n_steps, len(episodes["episodes/lengths"])
    build = staging / "store"
    group = _create_arrays(build, header, T, E)
    block_digests = _write_step_arrays(build, parts, workers)
    checksums = _write_episode_arrays(group, header, episodes, T, E, block_digests)
    computed = _computed_metadata(header, T, E, n_terminated, episodes)
    md = {"dataset_version": 1, "creator": {"name": getpass.getuser()}, **metadata, **computed}
    if review is not None:
        md["warnings"] = [*md.get("warnings", []), *review(computed["returns"])]
    _seal(build, group, md, checksums)
    publish_directory(build, loc, storage_options=storage_options)
    _clear_published(staging)
    return loc.original


# ============================================================================= publish's steps
def _create_arrays(build: Path, header: PartHeader, T: int, E: int) -> zarr.Group:
    """A fresh zarr group at ``build`` with every array of the schema created (empty) and the
    store marked incomplete."""
    grid, D, N = header.bin_grid, header.obs_dim, header.bin_grid.n_dims
    if build.exists():
        shutil.rmtree(build)  # left over from a publish that was interrupted
    group = zarr.open_group(LocalStore(str(build)), mode="w", zarr_format=3)
    group.attrs["spin"] = {"format": schema.FORMAT_NAME, "schema_version": schema.SCHEMA_VERSION,
                           "complete": False}
    for spec in schema.ARRAYS:
        rows = T if spec.per == "step" else E
        shape = schema.array_shape(spec, rows, D, N)
        dtype = schema.array_dtype(spec, grid.counts)
        chunks, shards = schema.layout(spec, shape, dtype)
        group.create_array(spec.path, shape=shape, dtype=dtype, chunks=chunks, shards=shards,
                           compressors=[schema.compressor(dtype)], fill_value=0,
                           dimension_names=schema.dimension_names(spec),
                           attributes={"description": spec.doc})
    return group


def _write_step_arrays(build: Path, parts: _Parts, workers: int) -> list[dict[str, bytes]]:
    """Fill every per-step array block by block (several processes with ``workers`` > 1, each
    owning whole shards); returns each block's digests per array, in block order."""
    n_blocks = -(-parts.n_steps // schema.CHECKSUM_BLOCK_ROWS)
    if workers > 1 and n_blocks > 1:
        # spawn, not fork: zarr's event-loop thread does not survive a fork.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(workers, n_blocks), mp_context=ctx) as ex:
            return list(ex.map(_write_step_block, [str(build)] * n_blocks,
                               [parts] * n_blocks, range(n_blocks)))
    return [_write_step_block(str(build), parts, b) for b in range(n_blocks)]


def _write_episode_arrays(group: zarr.Group, header: PartHeader, episodes: dict[str, np.ndarray],
                          T: int, E: int, block_digests: list[dict[str, bytes]]
                          ) -> dict[str, str]:
    """Write the per-episode arrays; returns every array's checksum in schema order (a per-step
    array's combined from its blocks' digests)."""
    grid, D, N = header.bin_grid, header.obs_dim, header.bin_grid.n_dims
    checksums: dict[str, str] = {}
    for spec in schema.ARRAYS:
        dtype = schema.array_dtype(spec, grid.counts)
        shape = schema.array_shape(spec, T if spec.per == "step" else E, D, N)
        if spec.per == "step":
            checksums[spec.path] = schema.combine_digests(
                shape, dtype, [d[spec.path] for d in block_digests])
        else:
            data = episodes[spec.path].astype(dtype)
            group[spec.path][:] = data
            checksums[spec.path] = schema.array_checksum(data)
    return checksums


def _computed_metadata(header: PartHeader, T: int, E: int, n_terminated: int,
                       episodes: dict[str, np.ndarray]) -> dict[str, Any]:
    """What spin records beside the caller's metadata: grid, sizes, totals, return statistics
    per source, creation time and package versions."""
    grid = header.bin_grid
    return {
        "schema_version": schema.SCHEMA_VERSION,
        "bin_grid": grid.to_dict(),
        "observation_dim": header.obs_dim,
        "action_space": {"type": "MultiDiscrete", "nvec": list(grid.counts),
                         "dtype": str(schema.action_dtype(grid.counts))},
        "totals": {"steps": int(T), "episodes": int(E), "terminated_episodes": n_terminated,
                   "truncated_episodes": int(E) - n_terminated},
        "returns": schema.return_statistics(episodes["episodes/returns"],
                                            episodes["episodes/sources"]),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _package_versions(),
    }


def _seal(build: Path, group: zarr.Group, md: dict[str, Any], checksums: dict[str, str]) -> None:
    """Record metadata and checksums, mark the store complete and consolidate its metadata."""
    content = schema.content_checksum(checksums)
    group.attrs.update({
        "metadata": md,
        "checksums": checksums,
        "content_checksum": content,
        "spin": {"format": schema.FORMAT_NAME, "schema_version": schema.SCHEMA_VERSION,
                 "complete": True},
    })
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not in the v3 spec yet; it is an optional
        # extra that saves a remote reader one request per array, and plain readers ignore it.
        warnings.simplefilter("ignore", UserWarning)
        zarr.consolidate_metadata(LocalStore(str(build)), zarr_format=3)


def _clear_published(staging: Path) -> None:
    """Once the store is out: drop the parts and the lock file, and the staging area if empty."""
    shutil.rmtree(staging / "parts", ignore_errors=True)
    (staging / WRITER_LOCK).unlink(missing_ok=True)  # the store is out: nothing left to guard
    try:
        staging.rmdir()
    except OSError:
        pass
