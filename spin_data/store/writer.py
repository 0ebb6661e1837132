"""Writing a dataset: episodes -> a staging area -> one atomic publish.

Two phases, so that nothing half-written is ever visible and an interrupted write loses nothing
but the episode in flight:

1. **Collect.** Each writer process owns one *part* of the staging area and appends whole
   episodes to raw, uncompressed per-array files, then commits the episode with one line in the
   part's journal. Appends never rewrite earlier bytes (appending episode by episode into a
   compressed zarr chunk rewrites the whole chunk every time: 100x slower). A writer re-opened
   with ``resume=True`` truncates its files to the last journalled episode and carries on.
2. **Publish.** :func:`publish` lays the parts end to end (part order, then episode order), builds
   the zarr store in whole shards from memory-mapped part files - several processes may build it,
   each owning disjoint shards, with bytes identical to a single process - records metadata and
   checksums, and moves the store to its location atomically (see :mod:`.location`).

Several processes can collect into one dataset by using different ``part`` numbers; the result
equals one writer that wrote part 0's episodes, then part 1's, and so on.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as _dt
import getpass
import json
import multiprocessing
import os
import platform
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import zarr
from zarr.storage import LocalStore

from spin_data.envs.bins import BinGrid
from spin_data.files import exclusive_lock
from spin_data.store import schema
from spin_data.store.location import (
    Location,
    StoreLocationError,
    default_staging_dir,
    exists,
    parse_location,
    publish_directory,
)

#: Raw part file of each array collected per step or per episode.
PART_FILES: dict[str, str] = {
    "steps/observations": "observations.bin",
    "steps/actions": "actions.bin",
    "steps/rewards": "rewards.bin",
    "steps/terminations": "terminations.bin",
    "steps/truncations": "truncations.bin",
    "episodes/final_observations": "final_observations.bin",
}
JOURNAL = "journal.jsonl"
HEADER = "header.json"

#: Packages whose versions every dataset records.
RECORDED_PACKAGES = ("spin", "numpy", "zarr", "numcodecs", "dm_control", "mujoco", "gymnasium",
                     "stable_baselines3", "torch")


class StagingExists(RuntimeError):
    """An interrupted write of the same dataset is in the staging area."""


class DatasetWriteError(ValueError):
    """An episode or a publish request that does not fit the dataset."""


class WriterBusy(RuntimeError):
    """Another live process is writing the same dataset (it holds the staging area's lock)."""


#: The lock file of a staging area: held by the one process writing that dataset.
WRITER_LOCK = ".writer.lock"


@contextlib.contextmanager
def writer_lock(location: str | os.PathLike, *,
                staging_dir: str | os.PathLike | None = None) -> Iterator[Path]:
    """Own the staging area of ``location`` for the block: one writing process per dataset.

    An flock on ``<staging>/.writer.lock`` (released by the OS if the process dies, so a
    killed run's staging area is free to resume or discard); the holder's pid is written in it
    so that a refused process can name it. Yields the staging directory.

    Raises:
        WriterBusy: another live process holds it.
    """
    loc = parse_location(location)
    staging = Path(staging_dir) if staging_dir else default_staging_dir(loc)
    staging.mkdir(parents=True, exist_ok=True)
    lock = staging / WRITER_LOCK

    def busy() -> WriterBusy:
        try:
            pid = lock.read_text().strip() or "?"
        except OSError:
            pid = "?"
        return WriterBusy(f"{loc.original}: another process (pid {pid}) is writing this dataset "
                          "right now; wait for it to finish or write elsewhere")

    with exclusive_lock(lock, busy):
        lock.write_text(f"{os.getpid()}\n")
        try:
            yield staging
        finally:  # a write that stopped before collecting anything leaves no staging area
            if staging.exists() and set(os.listdir(staging)) <= {WRITER_LOCK}:
                lock.unlink(missing_ok=True)
                staging.rmdir()


def _part_dir(staging: Path, part: int) -> Path:
    return staging / "parts" / f"part-{part:05d}"


@dataclass(frozen=True)
class _PartHeader:
    obs_dim: int
    bin_grid: BinGrid

    def to_json(self) -> dict:
        return {"schema_version": schema.SCHEMA_VERSION, "obs_dim": self.obs_dim,
                "bin_grid": self.bin_grid.to_dict()}

    @classmethod
    def from_json(cls, data: dict) -> "_PartHeader":
        return cls(int(data["obs_dim"]), BinGrid.from_dict(data["bin_grid"]))


def _read_journal(path: Path) -> tuple[list[dict], list[int]]:
    """Committed episodes of a part and the byte offset where each one's journal line ends; a
    torn last line (the process stopped mid-write) is not committed."""
    entries: list[dict] = []
    ends: list[int] = []
    if not path.exists():
        return entries, ends
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            entries.append(json.loads(raw))
            ends.append((ends[-1] if ends else 0) + len(raw))
    return entries, ends


class DatasetWriter:
    """Collects whole episodes for one dataset (one part of its staging area).

    Args:
        location: where the dataset will be published (path, ``file://``, ``.zip``, ``s3://``...).
        obs_dim: D, the flat observation size.
        bin_grid: the task's bin grid (fixes N and the action dtype).
        part: this writer's part number; concurrent writer processes must use different parts.
        resume: continue an interrupted part (from its last complete episode) instead of refusing.
        staging_dir: where to collect (default: beside a local destination, else a cache dir).

    Raises:
        StagingExists: the part holds an interrupted write and ``resume`` is False.
        StoreLocationError: a store is already published at ``location``.
    """

    def __init__(
        self,
        location: str | os.PathLike,
        *,
        obs_dim: int,
        bin_grid: BinGrid,
        part: int = 0,
        resume: bool = False,
        staging_dir: str | os.PathLike | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.location: Location = parse_location(location)
        if exists(self.location, storage_options=storage_options):
            raise StoreLocationError(
                f"{self.location}: a store already exists there; datasets are immutable"
            )
        if int(obs_dim) < 1:
            raise DatasetWriteError(f"obs_dim must be >= 1, got {obs_dim}")
        self.staging = Path(staging_dir) if staging_dir else default_staging_dir(self.location)
        self.part = int(part)
        self.header = _PartHeader(int(obs_dim), bin_grid)
        self._action_dtype = schema.action_dtype(bin_grid.counts)
        self._dir = _part_dir(self.staging, self.part)
        journal, line_ends = _read_journal(self._dir / JOURNAL)
        if self._dir.exists() and not resume:
            raise StagingExists(
                f"an interrupted write of {self.location} is at {self._dir} ({len(journal)} "
                f"complete episodes): pass resume=True to continue from its last complete episode, "
                f"or discard it with spin_data.store.discard({str(self.location)!r})"
            )
        self._dir.mkdir(parents=True, exist_ok=True)
        header_path = self._dir / HEADER
        if header_path.exists():
            old = _PartHeader.from_json(json.loads(header_path.read_text()))
            if old != self.header:
                raise DatasetWriteError(
                    f"cannot resume {self._dir}: it was started with obs_dim={old.obs_dim}, "
                    f"{old.bin_grid!r}; this writer has obs_dim={obs_dim}, {bin_grid!r}"
                )
        else:
            header_path.write_text(json.dumps(self.header.to_json()))
        self.n_episodes = len(journal)
        self.n_steps = sum(int(e["steps"]) for e in journal)
        #: Steps of each committed episode of this part, in order.
        self.episode_steps: list[int] = [int(e["steps"]) for e in journal]
        self._journal_line_ends = line_ends
        self._truncate_to_journal()
        self._files = {path: open(self._dir / name, "ab") for path, name in PART_FILES.items()}
        self._journal = open(self._dir / JOURNAL, "ab")
        self._journal.truncate(line_ends[-1] if line_ends else 0)

    def _row_bytes(self, path: str) -> int:
        spec = next(s for s in schema.ARRAYS if s.path == path)
        shape = schema.array_shape(spec, 1, self.header.obs_dim, self.header.bin_grid.n_dims)
        return int(np.prod(shape)) * schema.array_dtype(spec, self.header.bin_grid.counts).itemsize

    def _truncate_to_journal(self) -> None:
        """Drop bytes of an episode that was being written when the process stopped."""
        for path, name in PART_FILES.items():
            rows = self.n_episodes if path.startswith("episodes/") else self.n_steps
            file = self._dir / name
            file.touch()
            if file.stat().st_size < rows * self._row_bytes(path):
                raise DatasetWriteError(f"{file} is shorter than its journal: the part is damaged")
            os.truncate(file, rows * self._row_bytes(path))

    def add_episode(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        *,
        terminated: bool,
        truncated: bool,
        source: str,
        seed: int,
    ) -> None:
        """Append one complete episode and commit it.

        Args:
            observations: ``(L + 1, D)``: the reset observation, then one per step (the last is
                the observation after the final step).
            actions: ``(L, N)`` executed bin indices.
            rewards: ``(L,)``.
            terminated: the episode ended in a true terminal (no bootstrapping from its end).
            truncated: the episode ended at a time limit (exactly one of the two must be True).
            source: one of ``random``, ``medium``, ``expert``, ``other``.
            seed: the reset seed of the episode.
        """
        obs = np.asarray(observations, dtype=np.float32)
        rew = np.asarray(rewards, dtype=np.float32)
        length = rew.shape[0] if rew.ndim == 1 else -1
        D = self.header.obs_dim
        if length < 1:
            raise DatasetWriteError(f"rewards must have shape (L,) with L >= 1, got {rew.shape}")
        if obs.shape != (length + 1, D):
            raise DatasetWriteError(
                f"observations must have shape (L + 1, D) = ({length + 1}, {D}), got {obs.shape}"
            )
        acts = self.header.bin_grid.check_indices(actions)
        if acts.shape != (length, self.header.bin_grid.n_dims):
            raise DatasetWriteError(
                f"actions must have shape (L, N) = ({length}, {self.header.bin_grid.n_dims}), "
                f"got {acts.shape}"
            )
        if not (np.isfinite(obs).all() and np.isfinite(rew).all()):
            raise DatasetWriteError("observations and rewards must be finite (no NaN or inf)")
        if bool(terminated) == bool(truncated):
            raise DatasetWriteError(
                "an episode must end in exactly one of a termination or a truncation, got "
                f"terminated={terminated}, truncated={truncated}"
            )
        if source not in schema.SOURCES:
            raise DatasetWriteError(f"unknown source {source!r}: accepted {', '.join(schema.SOURCES)}")
        ends = np.zeros(length, dtype=bool)
        ends[-1] = True
        blocks = {
            "steps/observations": obs[:-1],
            "steps/actions": acts.astype(self._action_dtype),
            "steps/rewards": rew,
            "steps/terminations": ends & bool(terminated),
            "steps/truncations": ends & bool(truncated),
            "episodes/final_observations": obs[-1:],
        }
        for path, block in blocks.items():
            self._files[path].write(np.ascontiguousarray(block).tobytes())
            self._files[path].flush()
        entry = {"steps": int(length), "return": float(rew.astype(np.float64).sum()),
                 "source": source, "seed": int(seed), "terminated": bool(terminated)}
        line = (json.dumps(entry) + "\n").encode()
        self._journal.write(line)
        self._journal.flush()  # the commit point of the episode
        self.n_episodes += 1
        self.n_steps += length
        self.episode_steps.append(int(length))
        self._journal_line_ends.append(self._journal.tell())

    def keep_episodes(self, n: int) -> None:
        """Drop this part's episodes after the first ``n`` (e.g. past a dataset's target size)."""
        if not 0 <= n <= self.n_episodes:
            raise DatasetWriteError(f"cannot keep {n} of {self.n_episodes} episodes")
        for fh in [*self._files.values(), self._journal]:
            fh.flush()
        self._journal.truncate(int(self._journal_line_ends[n - 1]) if n else 0)
        self.n_episodes = n
        self.episode_steps = self.episode_steps[:n]
        self._journal_line_ends = self._journal_line_ends[:n]
        self.n_steps = sum(self.episode_steps)
        self._truncate_to_journal()

    def close(self) -> None:
        """Flush and close the part's files (the part stays in staging until published)."""
        for fh in [*self._files.values(), self._journal]:
            if not fh.closed:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def publish(self, metadata: dict[str, Any], *, workers: int = 1,
                storage_options: dict[str, Any] | None = None) -> str:
        """Close this writer and publish every part of the staging area (see :func:`publish`)."""
        self.close()
        return publish(self.location.original, metadata, workers=workers,
                       staging_dir=self.staging, storage_options=storage_options)


# ============================================================================= publishing
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
    header = _PartHeader.from_json(parts.header)
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


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def return_statistics(returns: np.ndarray, sources: np.ndarray) -> dict[str, dict]:
    """mean/std/min/max/episodes of returns, per source and over ``all``."""
    stats = {}
    groups = {"all": np.ones_like(sources, dtype=bool)}
    groups.update({name: sources == code for code, name in enumerate(schema.SOURCES)})
    for name, mask in groups.items():
        if mask.any():
            r = returns[mask]
            stats[name] = {"episodes": int(mask.sum()), "mean": float(r.mean()),
                           "std": float(r.std()), "min": float(r.min()), "max": float(r.max())}
    return stats


def _load_parts(staging: Path) -> tuple[_Parts, dict[str, np.ndarray], int]:
    part_dirs = sorted((staging / "parts").glob("part-*")) if (staging / "parts").exists() else []
    if not part_dirs:
        raise DatasetWriteError(f"nothing to publish: no collected episodes in {staging}")
    headers = [json.loads((d / HEADER).read_text()) for d in part_dirs]
    for d, h in zip(part_dirs, headers):
        if _PartHeader.from_json(h) != _PartHeader.from_json(headers[0]):
            raise DatasetWriteError(f"{d} was collected for another observation size or bin grid")
    journals = [_read_journal(d / JOURNAL)[0] for d in part_dirs]
    entries = [e for journal in journals for e in journal]
    if not entries:
        raise DatasetWriteError(f"nothing to publish: no complete episode in {staging}")
    steps = np.cumsum([0] + [sum(e["steps"] for e in j) for j in journals])
    parts = _Parts(tuple(map(str, part_dirs)), tuple(int(s) for s in steps), headers[0])
    header = _PartHeader.from_json(headers[0])
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
    header = _PartHeader.from_json(parts.header)
    grid, D, N = header.bin_grid, header.obs_dim, header.bin_grid.n_dims
    T, E = parts.n_steps, len(episodes["episodes/lengths"])

    build = staging / "store"
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

    n_blocks = -(-T // schema.CHECKSUM_BLOCK_ROWS)
    if workers > 1 and n_blocks > 1:
        # spawn, not fork: zarr's event-loop thread does not survive a fork.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(workers, n_blocks), mp_context=ctx) as ex:
            block_digests = list(ex.map(_write_step_block, [str(build)] * n_blocks,
                                        [parts] * n_blocks, range(n_blocks)))
    else:
        block_digests = [_write_step_block(str(build), parts, b) for b in range(n_blocks)]

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

    sources = episodes["episodes/sources"]
    computed = {
        "schema_version": schema.SCHEMA_VERSION,
        "bin_grid": grid.to_dict(),
        "observation_dim": D,
        "action_space": {"type": "MultiDiscrete", "nvec": list(grid.counts),
                         "dtype": str(schema.action_dtype(grid.counts))},
        "totals": {"steps": int(T), "episodes": int(E), "terminated_episodes": n_terminated,
                   "truncated_episodes": int(E) - n_terminated},
        "returns": return_statistics(episodes["episodes/returns"], sources),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _package_versions(),
    }
    md = {"dataset_version": 1, "creator": {"name": getpass.getuser()}, **metadata, **computed}
    if review is not None:
        md["warnings"] = [*md.get("warnings", []), *review(computed["returns"])]
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
    publish_directory(build, loc, storage_options=storage_options)
    shutil.rmtree(staging / "parts", ignore_errors=True)
    (staging / WRITER_LOCK).unlink(missing_ok=True)  # the store is out: nothing left to guard
    try:
        staging.rmdir()
    except OSError:
        pass
    return loc.original


def discard(location: str | os.PathLike, *, staging_dir: str | os.PathLike | None = None) -> bool:
    """Delete an interrupted write of ``location`` (its staging area); True if there was one.

    Raises:
        WriterBusy: the write is not interrupted: a live process is still writing it.
    """
    staging = Path(staging_dir) if staging_dir else default_staging_dir(parse_location(location))
    if not staging.exists():
        return False
    with writer_lock(location, staging_dir=staging) as held:
        _clear_staging(held)
    return True


def _clear_staging(staging: Path) -> None:
    """Delete a held staging area's contents (its lock file stays until the lock is released)."""
    for entry in staging.iterdir():
        if entry.name == WRITER_LOCK:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextlib.contextmanager
def single_writer(location: str | os.PathLike, *, obs_dim: int, bin_grid: BinGrid
                  ) -> Iterator["DatasetWriter"]:
    """A :class:`DatasetWriter` that owns ``location``'s staging area for the block
    (:func:`writer_lock`), for one-shot writes (combine, import) that restart from their inputs:
    if the block fails, its staging area is dropped rather than left to block the next try."""
    with writer_lock(location) as staging:
        writer = DatasetWriter(location, obs_dim=obs_dim, bin_grid=bin_grid)
        try:
            yield writer
        except BaseException:
            writer.close()
            _clear_staging(staging)
            raise

