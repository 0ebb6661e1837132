"""The local cache: a store materialised once into uncompressed, memory-mappable ``.npy`` files.

A cache entry is keyed by the store's content checksum, so a second run starts from the cache
at once and a changed store (a different checksum) is never served stale. An entry is only ever
filled from bytes that hash to that checksum (every array is checked as it is read,
:func:`verified_arrays`), so a corrupt copy of a store is refused, never cached, and never
poisons the entry of the intact store: an entry holds exactly the content its name says. Entries
are filled in a private temporary directory and renamed into place, so two processes filling the
same entry at once never see each other's half-written files: the first rename wins and the
other process uses the winner's entry.

Entry layout (``<cache root>/<checksum hex>/``)::

    rows.npy              (T + E, D + 2) float32  one packed row per step,
                                              [observation | reward | not_done], then each
                                              episode's final observation (reward 0, not_done 1;
                                              only ever read as a next observation)
    next_rows.npy         (T,) int64          row of each step's next observation
    actions.npy           (T, N) int64        bin indices, widened once here
    terminations.npy      (T,) bool
    truncations.npy       (T,) bool
    info.json             sizes, bin grid, observation mean/std, the store's metadata

Packing makes a minibatch two row gathers (the step, its next observation) plus one for the
actions, whichever placement samples it, and lets the device placement load the cache with one
copy per file.

``.npy`` files hold raw arrays and are loaded with ``allow_pickle=False``: nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spin_data.envs.bins import BinGrid
from spin_data.paths import cache_root
from spin_data.store import open_dataset
from spin_data.store.schema import ARRAY_PATHS, array_checksum, content_checksum

ARRAY_FILES = ("rows", "next_rows", "actions", "terminations", "truncations")
CACHE_FORMAT = 2


def default_cache_dir() -> Path:
    """``<cache root>/datasets``: :func:`spin_data.paths.cache_root` is ``$SPIN_CACHE_DIR``,
    default ``~/.cache/spin``, whose ``behaviour/`` holds spin_data's behaviour runs."""
    return cache_root() / "datasets"


@dataclass(frozen=True)
class CachedDataset:
    """A materialised store: paths of its arrays plus what the trainers need to know.

    Attributes:
        path: the entry directory.
        n_steps, n_episodes, obs_dim, n_actions: T, E, D, N.
        bin_grid: the dataset's bin grid.
        obs_mean, obs_std: float32 ``(D,)``, over every step's observation (computed once).
        content_checksum: the store's checksum (the cache key).
        metadata: the store's metadata.
        location: where the store was read from.
    """

    path: Path
    n_steps: int
    n_episodes: int
    obs_dim: int
    n_actions: int
    bin_grid: BinGrid
    obs_mean: np.ndarray
    obs_std: np.ndarray
    content_checksum: str
    metadata: dict[str, Any]
    location: str

    def load(self, name: str, mmap: bool = True) -> np.ndarray:
        """One array of the entry, memory-mapped read-only (or read into memory)."""
        if name not in ARRAY_FILES:
            raise KeyError(f"unknown cached array {name!r}: accepted {', '.join(ARRAY_FILES)}")
        return np.load(self.path / f"{name}.npy", mmap_mode="r" if mmap else None,
                       allow_pickle=False)

    def observations(self) -> np.ndarray:
        """Every step's observation, ``(T, D)`` float32 (a memory-mapped view)."""
        return self.load("rows")[: self.n_steps, : self.obs_dim]

    def rewards(self) -> np.ndarray:
        """Every step's reward, ``(T,)`` float32 (a memory-mapped view)."""
        return self.load("rows")[: self.n_steps, self.obs_dim]

    @property
    def nbytes(self) -> int:
        """Bytes of all cached arrays (what the device placement takes)."""
        return sum((self.path / f"{n}.npy").stat().st_size for n in ARRAY_FILES)

    @classmethod
    def from_entry(cls, path: Path) -> "CachedDataset":
        info = json.loads((path / "info.json").read_text())
        return cls(
            path=path, n_steps=info["n_steps"], n_episodes=info["n_episodes"],
            obs_dim=info["obs_dim"], n_actions=info["n_actions"],
            bin_grid=BinGrid.from_dict(info["bin_grid"]),
            obs_mean=np.asarray(info["obs_mean"], dtype=np.float32),
            obs_std=np.asarray(info["obs_std"], dtype=np.float32),
            content_checksum=info["content_checksum"], metadata=info["metadata"],
            location=info["location"],
        )


def _entry_name(content_checksum: str) -> str:
    # The cache format is part of the key: a new layout never reads an old entry.
    return f"v{CACHE_FORMAT}-" + content_checksum.split(":", 1)[-1][:40]


def _mean_std(obs: np.ndarray, block: int = 1 << 15) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of ``(T, D)`` float32 rows in one pass, accumulated in float64
    block by block (a million float32 rows lose digits otherwise, and ``np.std`` would hold a
    float64 copy of the whole array). Sums are of ``x - x[0]``, which keeps ``E[d^2] - E[d]^2``
    free of cancellation when a feature's mean is large against its spread."""
    T = max(1, obs.shape[0])
    shift = obs[0].astype(np.float64) if obs.shape[0] else np.zeros(obs.shape[1])
    total = np.zeros(obs.shape[1])
    squares = np.zeros(obs.shape[1])
    for start in range(0, obs.shape[0], block):
        d = obs[start : start + block].astype(np.float64)
        d -= shift
        total += d.sum(axis=0)
        squares += np.einsum("ij,ij->j", d, d)
    mean_d = total / T
    return shift + mean_d, np.sqrt(np.maximum(squares / T - mean_d**2, 0.0))


class CorruptStoreError(ValueError):
    """A store's bytes do not hash to the checksums it records (a lost chunk, a changed byte)."""


def verified_arrays(ds: Any) -> dict[str, np.ndarray]:
    """Every array of a store, each checked against the checksum the store records for it.

    The arrays are read anyway to fill the cache; hashing them as they arrive is what keeps a
    corrupt copy from being trained on or from entering the cache (zarr reads a missing chunk
    as zeros without complaint).

    Raises:
        CorruptStoreError: naming the store and the first array whose bytes differ.
    """
    if content_checksum(ds.checksums) != ds.content_checksum:
        raise CorruptStoreError(f"{ds.location}: its array checksums do not add up to its "
                                "content checksum; run spin-data verify")
    arrays = {}
    for path in ARRAY_PATHS:
        try:
            arrays[path] = ds.array(path)
        except Exception as err:  # a damaged chunk fails in its codec, with the codec's error
            raise CorruptStoreError(f"{ds.location}: array {path} cannot be read "
                                    f"({type(err).__name__}: {err}); run spin-data verify"
                                    ) from None
        if array_checksum(arrays[path]) != ds.checksums[path]:
            raise CorruptStoreError(
                f"{ds.location}: array {path} does not match its recorded checksum (a missing "
                "chunk reads as zeros, or its bytes changed); nothing was cached or trained "
                "on; run spin-data verify and make or fetch the store again")
    return arrays


def _fill(tmp: Path, location: str, storage_options: dict[str, Any] | None) -> None:
    """Read the store once, checking every array's checksum, and write the entry into ``tmp``."""
    ds = open_dataset(location, storage_options=storage_options)
    arrays = verified_arrays(ds)
    obs = arrays.pop("steps/observations")
    finals = arrays["episodes/final_observations"]
    terminations = arrays["steps/terminations"]
    ends = ds.episode_ends
    T, E, D = obs.shape[0], finals.shape[0], obs.shape[1]
    mean, std = _mean_std(obs)
    rows = np.lib.format.open_memmap(tmp / "rows.npy", mode="w+", dtype=np.float32,
                                     shape=(T + E, D + 2))
    rows[:T, :D] = obs
    del obs
    rows[T:, :D] = finals
    rows[:T, D] = arrays["steps/rewards"]
    rows[T:, D] = 0.0
    rows[:T, D + 1] = ~terminations
    rows[T:, D + 1] = 1.0
    rows.flush()
    del rows
    next_rows = np.arange(1, T + 1, dtype=np.int64)
    next_rows[ends - 1] = T + np.arange(E, dtype=np.int64)
    np.save(tmp / "next_rows.npy", next_rows)
    np.save(tmp / "actions.npy", arrays["steps/actions"].astype(np.int64))
    np.save(tmp / "terminations.npy", terminations)
    np.save(tmp / "truncations.npy", arrays["steps/truncations"])
    info = {
        "cache_format": CACHE_FORMAT,
        "n_steps": int(T), "n_episodes": int(E), "obs_dim": ds.obs_dim, "n_actions": ds.n_actions,
        "bin_grid": ds.bin_grid.to_dict(),
        "obs_mean": mean.astype(np.float32).tolist(), "obs_std": std.astype(np.float32).tolist(),
        "content_checksum": ds.content_checksum, "metadata": ds.metadata,
        "location": str(location),
    }
    (tmp / "info.json").write_text(json.dumps(info))


def materialise(
    location: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    storage_options: dict[str, Any] | None = None,
) -> CachedDataset:
    """The cache entry of a store, filling it on first use.

    Opening the store is cheap (metadata only); its content checksum names the entry, so an
    existing entry is reused without reading any array and a changed store gets a new entry.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    ds = open_dataset(location, storage_options=storage_options)
    entry = root / _entry_name(ds.content_checksum)
    if (entry / "info.json").exists():
        return CachedDataset.from_entry(entry)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".fill-{uuid.uuid4().hex[:8]}-", dir=root))
    try:
        _fill(tmp, os.fspath(location), storage_options)
        try:
            os.rename(tmp, entry)
        except OSError:
            if not (entry / "info.json").exists():  # not a lost race: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return CachedDataset.from_entry(entry)
