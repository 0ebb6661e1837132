"""Writing a dataset: episodes -> a staging area -> one atomic publish.

Two phases, so that nothing half-written is ever visible and an interrupted write loses nothing
but the episode in flight:

1. **Collect.** Each writer process owns one *part* of the staging area and appends whole
   episodes to raw, uncompressed per-array files, then commits the episode with one line in the
   part's journal. Appends never rewrite earlier bytes (appending episode by episode into a
   compressed zarr chunk rewrites the whole chunk every time: 100x slower). A writer re-opened
   with ``resume=True`` truncates its files to the last journalled episode and carries on.
2. **Publish.** :func:`~spin_data.store.publishing.publish` lays the parts end to end (part
   order, then episode order), builds the zarr store in whole shards from memory-mapped part
   files - several processes may build it, each owning disjoint shards, with bytes identical to a
   single process - records metadata and checksums, and moves the store to its location
   atomically (see :mod:`.location`).

Several processes can collect into one dataset by using different ``part`` numbers; the result
equals one writer that wrote part 0's episodes, then part 1's, and so on.

This module is the collect phase (:class:`DatasetWriter`); the staging area's files and lock
are :mod:`.staging`, the publish phase :mod:`.publishing`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from spin_data.envs.bins import BinGrid
from spin_data.store import schema
from spin_data.store.location import (Location, StoreLocationError, default_staging_dir, exists,
                                      parse_location)
from spin_data.store.publishing import publish
from spin_data.store.staging import (
    HEADER,
    JOURNAL,
    PART_FILES,
    DatasetWriteError,
    PartHeader,
    StagingExists,
    clear_staging,
    part_dir,
    read_journal,
    writer_lock,
)


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
        self.header = PartHeader(int(obs_dim), bin_grid)
        self._action_dtype = schema.action_dtype(bin_grid.counts)
        self._dir = part_dir(self.staging, self.part)
        journal, line_ends = read_journal(self._dir / JOURNAL)
        if self._dir.exists() and not resume:
            raise StagingExists(
                f"an interrupted write of {self.location} is at {self._dir} ({len(journal)} "
                f"complete episodes): pass resume=True to continue from its last complete episode, "
                f"or discard it with spin_data.store.discard({str(self.location)!r})"
            )
        self._dir.mkdir(parents=True, exist_ok=True)
        header_path = self._dir / HEADER
        if header_path.exists():
            old = PartHeader.from_json(json.loads(header_path.read_text()))
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
            clear_staging(staging)
            raise

