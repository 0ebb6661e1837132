"""Reading a dataset: :func:`open_dataset` -> :class:`Dataset` (metadata, episodes, arrays)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import zarr

from spin_data.envs.bins import BinGrid
from spin_data.store import schema
from spin_data.store.location import Location, StoreLocationError, open_store, parse_location


class DatasetOpenError(ValueError):
    """The location holds no readable spin dataset (not a store, incomplete, unknown version)."""


@dataclass(frozen=True)
class Episode:
    """One episode as numpy arrays.

    Attributes:
        observations: ``(L + 1, D)`` float32: the reset observation, then one per step.
        actions: ``(L, N)`` bin indices (the store's unsigned dtype).
        rewards: ``(L,)`` float32.
        terminations, truncations: ``(L,)`` bool, only ever True at the last step.
        source: ``random``, ``medium``, ``expert`` or ``other``.
        seed: the episode's reset seed.
        episode_return: undiscounted return (float64, as recorded).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    source: str
    seed: int
    episode_return: float

    def __len__(self) -> int:
        return int(self.rewards.shape[0])


class Dataset:
    """An opened spin dataset. Arrays are read on access (whole arrays as numpy)."""

    def __init__(self, group: zarr.Group, location: Location) -> None:
        self.group = group
        self.location = location
        attrs = dict(group.attrs)
        self.metadata: dict[str, Any] = attrs["metadata"]
        self.checksums: dict[str, str] = attrs["checksums"]
        self.content_checksum: str = attrs["content_checksum"]
        self.schema_version: int = int(attrs["spin"]["schema_version"])
        self.bin_grid = BinGrid.from_dict(self.metadata["bin_grid"])
        self._episode_cache: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------------------- sizes
    @property
    def n_steps(self) -> int:
        return int(self.group["steps/rewards"].shape[0])

    @property
    def n_episodes(self) -> int:
        return int(self.group["episodes/ends"].shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.group["steps/observations"].shape[1])

    @property
    def n_actions(self) -> int:
        """N, the number of sub-actions."""
        return int(self.group["steps/actions"].shape[1])

    def __len__(self) -> int:
        return self.n_episodes

    # ----------------------------------------------------------------------------- arrays
    def array(self, path: str) -> np.ndarray:
        """A whole array by its schema path (e.g. ``"steps/observations"``) as numpy."""
        if path not in schema.ARRAY_PATHS:
            raise KeyError(f"unknown array {path!r}: accepted {', '.join(schema.ARRAY_PATHS)}")
        return self.group[path][...]

    def _episodes(self, path: str) -> np.ndarray:
        if path not in self._episode_cache:
            self._episode_cache[path] = self.array(path)
        return self._episode_cache[path]

    @property
    def episode_ends(self) -> np.ndarray:
        """Cumulative end row of each episode, int64 ``(E,)``."""
        return self._episodes("episodes/ends")

    @property
    def episode_starts(self) -> np.ndarray:
        """First row of each episode, int64 ``(E,)``."""
        ends = self.episode_ends
        return np.concatenate([[0], ends[:-1]]).astype(np.int64)

    def next_observations(self, observations: np.ndarray | None = None) -> np.ndarray:
        """Observation after every step, float32 ``(T, D)``: the next row inside an episode,
        the episode's final observation at its last step."""
        obs = self.array("steps/observations") if observations is None else observations
        nxt = np.empty_like(obs)
        nxt[:-1] = obs[1:]
        nxt[self.episode_ends - 1] = self._episodes("episodes/final_observations")
        return nxt

    def transitions(self) -> dict[str, np.ndarray]:
        """Every transition as whole arrays: observations, actions, rewards, next_observations,
        terminations, truncations (each ``(T, ...)``)."""
        obs = self.array("steps/observations")
        return {
            "observations": obs,
            "actions": self.array("steps/actions"),
            "rewards": self.array("steps/rewards"),
            "next_observations": self.next_observations(obs),
            "terminations": self.array("steps/terminations"),
            "truncations": self.array("steps/truncations"),
        }

    # ----------------------------------------------------------------------------- episodes
    def episode(self, index: int) -> Episode:
        """Episode ``index`` (negative indices count from the end)."""
        E = self.n_episodes
        if not -E <= index < E:
            raise IndexError(f"episode {index} out of range: the dataset has {E} episodes")
        index %= E
        start, stop = int(self.episode_starts[index]), int(self.episode_ends[index])
        g = self.group
        obs = np.concatenate([g["steps/observations"][start:stop],
                              g["episodes/final_observations"][index : index + 1]])
        return Episode(
            observations=obs,
            actions=g["steps/actions"][start:stop],
            rewards=g["steps/rewards"][start:stop],
            terminations=g["steps/terminations"][start:stop],
            truncations=g["steps/truncations"][start:stop],
            source=schema.SOURCES[int(self._episodes("episodes/sources")[index])],
            seed=int(self._episodes("episodes/seeds")[index]),
            episode_return=float(self._episodes("episodes/returns")[index]),
        )

    def episodes(self) -> Iterator[Episode]:
        for i in range(self.n_episodes):
            yield self.episode(i)

    def __repr__(self) -> str:
        return (f"Dataset({self.metadata.get('dataset_id')!r}, steps={self.n_steps}, "
                f"episodes={self.n_episodes}, location={str(self.location)!r})")


def open_dataset(
    location: str | os.PathLike, *, storage_options: dict[str, Any] | None = None
) -> Dataset:
    """Open a published spin dataset by path or URL (directory, ``file://``, ``.zip``, ``s3://``).

    Raises:
        DatasetOpenError: not a spin store, an incomplete (interrupted) store, or a schema version
            newer than this spin reads; the message names the store.
        StoreLocationError: nothing at the location, a missing bucket or bad credentials.
    """
    loc = parse_location(location)
    store = open_store(loc, storage_options=storage_options)
    try:
        group = zarr.open_group(store, mode="r", zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError, ValueError) as err:
        raise DatasetOpenError(f"{loc}: not a spin dataset (no zarr v3 group: {err})") from None
    except StoreLocationError:
        raise
    spin = dict(group.attrs).get("spin")
    if not isinstance(spin, dict) or spin.get("format") != schema.FORMAT_NAME:
        raise DatasetOpenError(f"{loc}: not a spin dataset (its root has no spin attributes)")
    version = spin.get("schema_version")
    if not isinstance(version, int) or version > schema.SCHEMA_VERSION:
        raise DatasetOpenError(
            f"{loc}: written with schema version {version}, newer than this spin reads "
            f"({schema.SCHEMA_VERSION}); upgrade spin"
        )
    if not spin.get("complete"):
        raise DatasetOpenError(
            f"{loc}: incomplete store (its write was interrupted before publishing); "
            "resume or discard the write and publish again"
        )
    attrs = dict(group.attrs)
    lacking = [k for k in ("metadata", "checksums", "content_checksum") if k not in attrs]
    if not lacking and "bin_grid" not in (attrs["metadata"] or {}):
        lacking = ["metadata.bin_grid"]
    if lacking:
        raise DatasetOpenError(f"{loc}: damaged store: root attributes lack {', '.join(lacking)}")
    missing = [p for p in schema.ARRAY_PATHS if p not in group]
    if missing:
        raise DatasetOpenError(f"{loc}: damaged store: missing arrays {', '.join(missing)}")
    return Dataset(group, loc)
