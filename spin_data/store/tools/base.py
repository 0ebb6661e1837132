"""Shared by the dataset tools: their error type and reading a store's arrays."""

from __future__ import annotations

import os

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
