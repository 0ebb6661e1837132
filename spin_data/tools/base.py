"""Shared by the dataset tools: their error type, reading a store's arrays, and the task that
imported data belongs to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from spin_data.store.location import parse_location
from spin_data.store.reader import Dataset, open_dataset


class ToolError(ValueError):
    """A tool cannot do what was asked (inputs disagree, corrupted input, bad pickle...)."""


def open_any(location: str | os.PathLike | Dataset) -> Dataset:
    """An opened dataset (a :class:`Dataset` passes through)."""
    if isinstance(location, Dataset):
        return location
    return open_dataset(location)


def read_array(ds: Dataset, path: str, rows: slice | None = None) -> np.ndarray:
    """Rows of one array (all by default); a corrupted chunk becomes a :class:`ToolError`."""
    try:
        arr = ds.group[path]
        return arr[...] if rows is None else arr[rows]
    except Exception as err:  # zarr/numcodecs raise assorted types for damaged chunks
        raise ToolError(
            f"{ds.location}: array {path} unreadable (corrupted chunk?): "
            f"{type(err).__name__}: {err}; run `spin-data verify {ds.location}`"
        ) from None


def default_dataset_id(out: str) -> str:
    """A dataset id from the output location's last path component (``.zip`` dropped)."""
    name = os.path.basename(parse_location(out).target.rstrip("/"))
    return name[:-4] if name.endswith(".zip") else name


@dataclass(frozen=True)
class ImportedTask:
    """What an import needs to know of the spin task its data belongs to (read from a freshly
    built env, so it is what ``make_env(name, **kwargs)`` gives).

    Attributes:
        name: the registry name as given; canonical: the task's full name.
        kwargs: ``make_env`` arguments: ``bins``, and ``grid`` for DMC tasks.
        obs_dim, bin_grid, max_episode_steps: the env's.
        obs_keys: ``[[name, size], ...]`` as the store records them.
        reference_scores: the published scores as the store records them, or None.
    """

    name: str
    canonical: str
    kwargs: dict[str, Any]
    obs_dim: int
    bin_grid: Any
    max_episode_steps: int
    obs_keys: list[list[Any]]
    reference_scores: dict[str, Any] | None


def imported_task(env_name: str, bins: int | None, grid: str | None) -> ImportedTask:
    """The :class:`ImportedTask` of ``env_name`` at ``bins`` (default: the env's) and, for DMC
    tasks, ``grid`` (default ``unit``, the benchmark's)."""
    from spin_data.envs import registry

    spec = registry.resolve(env_name)
    kwargs: dict[str, Any] = {"bins": spec.default_bins if bins is None else bins}
    if spec.family == "dmc":
        kwargs["grid"] = grid or "unit"
    env = registry.make_env(env_name, **kwargs)
    try:
        obs_dim = int(env.observation_space.shape[0])
        bin_grid = env.get_wrapper_attr("bin_grid")
        max_steps = int(env.get_wrapper_attr("max_episode_steps"))
        obs_keys = [[str(k), int(n)] for k, n in env.get_wrapper_attr("obs_keys")]
    finally:
        env.close()
    ref = registry.reference_score(env_name, kwargs["bins"])
    scores = None if ref is None else {"expert": ref.expert, "random": ref.random,
                                       "source": ref.source}
    return ImportedTask(env_name, spec.canonical, kwargs, obs_dim, bin_grid, max_steps, obs_keys,
                        scores)
