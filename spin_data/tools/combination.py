"""``spin-data combine``: several published stores of one task into a new store."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from spin_data.store import schema
from spin_data.store.reader import Dataset
from spin_data.tools.base import (
    ToolError,
    default_dataset_id,
    open_any,
    read_array,
)
from spin_data.store.writer import DatasetWriter, single_writer


# ============================================================================= combine
def _quality(ds: Dataset) -> str | None:
    """The dataset's quality: its metadata's, else its episodes' source if they all share one."""
    quality = ds.metadata.get("quality")
    if quality:
        return str(quality)
    sources = np.unique(read_array(ds, "episodes/sources"))
    return schema.SOURCES[int(sources[0])] if len(sources) == 1 else None


def combined_quality(qualities: Sequence[str | None]) -> str:
    """Inputs that are all ``medium`` or ``expert``, with both present -> ``medium-expert``;
    anything else -> ``mixed`` (the benchmark names no other combination of whole datasets)."""
    return "medium-expert" if set(qualities) == {"medium", "expert"} else "mixed"


#: Metadata keys a combined dataset takes from its first input (computed keys are recomputed).
INHERITED_KEYS = ("env", "observation_keys")


def combine(
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    dataset_id: str | None = None,
    workers: int = 1,
) -> str:
    """Publish a new dataset holding every episode of ``sources``, in input order.

    E.g. a medium store + an expert store -> a medium-expert store. Each episode keeps its
    source code and reset seed; arrays are read once per input (whole) and sliced per episode.
    Every array read is checked against its recorded checksum first, so a damaged input is
    refused instead of being re-published under fresh checksums. The inputs are only read.

    Metadata: ``dataset_id`` (default: ``out``'s name), ``quality`` (:func:`combined_quality`),
    ``env`` / ``observation_keys`` / any ``reference*`` keys from the first input, and
    ``combined_from``: one ``{location, dataset_id, content_checksum, quality, behaviour}``
    per input.

    Args:
        sources: two or more store locations with the same env, observation size and bin grid.
        out: where to publish (must not exist); staging goes beside it.
        workers: processes building shards while publishing.

    Returns:
        ``out`` as a location string.

    Raises:
        ToolError: fewer than two inputs, inputs that disagree (naming both), a damaged input.
        StoreLocationError: a store already exists at ``out``.
        StagingExists: an interrupted write of ``out`` is in its staging area.
    """
    if len(sources) < 2:
        raise ToolError(f"combine needs at least two stores, got {len(sources)}")
    datasets = [open_any(s) for s in sources]
    first = datasets[0]
    for ds in datasets[1:]:
        pair = f"cannot combine {first.location} and {ds.location}"
        if ds.obs_dim != first.obs_dim:
            raise ToolError(f"{pair}: observation dims differ ({first.obs_dim} vs {ds.obs_dim})")
        if ds.bin_grid != first.bin_grid:
            raise ToolError(f"{pair}: bin grids differ ({first.bin_grid!r} with counts "
                            f"{list(first.bin_grid.counts)} vs {ds.bin_grid!r} with counts "
                            f"{list(ds.bin_grid.counts)}, or different bounds)")
        if ds.metadata.get("env") != first.metadata.get("env"):
            raise ToolError(f"{pair}: environments differ ({first.metadata.get('env')} vs "
                            f"{ds.metadata.get('env')})")

    qualities = [_quality(ds) for ds in datasets]
    metadata: dict[str, Any] = {
        "dataset_id": dataset_id or default_dataset_id(os.fspath(out)),
        **{k: first.metadata[k] for k in INHERITED_KEYS if k in first.metadata},
        **{k: v for k, v in first.metadata.items() if k.startswith("reference")},
        "quality": combined_quality(qualities),
        "combined_from": [
            {"location": str(ds.location), "dataset_id": ds.metadata.get("dataset_id"),
             "content_checksum": ds.content_checksum, "quality": q,
             "behaviour": ds.metadata.get("behaviour")}
            for ds, q in zip(datasets, qualities)
        ],
    }

    # A combine is not resumable (it restarts from its inputs): a failed one leaves nothing.
    with single_writer(out, obs_dim=first.obs_dim, bin_grid=first.bin_grid) as writer:
        for ds in datasets:
            _copy_episodes(ds, writer)
        return writer.publish(metadata, workers=workers)


def _checked(ds: Dataset, path: str) -> np.ndarray:
    """A whole array, refused unless it hashes to its recorded checksum."""
    data = read_array(ds, path)
    if schema.array_checksum(data) != ds.checksums.get(path):
        raise ToolError(f"{ds.location}: array {path} does not match its recorded checksum "
                        f"(damaged store); run `spin-data verify {ds.location}`")
    return data


def _copy_episodes(ds: Dataset, writer: DatasetWriter) -> None:
    """Append every episode of ``ds`` to ``writer`` from whole arrays read once."""
    a = {path: _checked(ds, path) for path in schema.ARRAY_PATHS if path != "episodes/returns"}
    ends = a["episodes/ends"]
    starts = np.concatenate([[0], ends[:-1]])
    for i, (start, stop) in enumerate(zip(starts.tolist(), ends.tolist())):
        last = stop - 1
        writer.add_episode(
            np.concatenate([a["steps/observations"][start:stop],
                            a["episodes/final_observations"][i : i + 1]]),
            a["steps/actions"][start:stop],
            a["steps/rewards"][start:stop],
            terminated=bool(a["steps/terminations"][last]),
            truncated=bool(a["steps/truncations"][last]),
            source=schema.SOURCES[int(a["episodes/sources"][i])],
            seed=int(a["episodes/seeds"][i]),
        )


