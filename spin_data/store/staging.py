"""The staging area of a dataset being written: part files, journals, and the one-writer lock.

A store is collected into ``<staging>/parts/part-NNNNN/`` (one folder per writer process: a
``header.json``, one raw file per array, a ``journal.jsonl`` committing each episode) before
:func:`spin_data.store.publish` builds it. The staging area is beside a local destination, else
in a cache (:func:`spin_data.store.location.default_staging_dir`); one process at a time owns it
(:func:`writer_lock`), and :func:`discard` drops an interrupted write.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spin_data.envs.bins import BinGrid
from spin_data.files import exclusive_lock
from spin_data.store import schema
from spin_data.store.location import default_staging_dir, parse_location

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



def part_dir(staging: Path, part: int) -> Path:
    """The folder of part ``part`` in ``staging``."""
    return staging / "parts" / f"part-{part:05d}"


@dataclass(frozen=True)
class PartHeader:
    """What every part of one dataset must share (its ``header.json``)."""

    obs_dim: int
    bin_grid: BinGrid

    def to_json(self) -> dict:
        return {"schema_version": schema.SCHEMA_VERSION, "obs_dim": self.obs_dim,
                "bin_grid": self.bin_grid.to_dict()}

    @classmethod
    def from_json(cls, data: dict) -> "PartHeader":
        return cls(int(data["obs_dim"]), BinGrid.from_dict(data["bin_grid"]))


def read_journal(path: Path) -> tuple[list[dict], list[int]]:
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


def discard(location: str | os.PathLike, *, staging_dir: str | os.PathLike | None = None) -> bool:
    """Delete an interrupted write of ``location`` (its staging area); True if there was one.

    Raises:
        WriterBusy: the write is not interrupted: a live process is still writing it.
    """
    staging = Path(staging_dir) if staging_dir else default_staging_dir(parse_location(location))
    if not staging.exists():
        return False
    with writer_lock(location, staging_dir=staging) as held:
        clear_staging(held)
    return True


def clear_staging(staging: Path) -> None:
    """Delete a held staging area's contents (its lock file stays until the lock is released)."""
    for entry in staging.iterdir():
        if entry.name == WRITER_LOCK:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
