"""``spin-data import``: the benchmark's pickled transitions into a spin store (through
:mod:`~spin_data.tools.restricted_pickle`).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from spin_data.envs.bins import BinGrid, GridKind
from spin_data.store import schema
from spin_data.files import file_sha256
from spin_data.tools.base import ToolError, default_dataset_id, imported_task
from spin_data.tools.restricted_pickle import (
    PICKLE_REFUSAL,
    PickleNotAllowed,
    RestrictedUnpickler,
)
from spin_data.store.writer import single_writer

#: How a pickle's actions are read: ``"indices"`` (bin indices), ``"values"`` (continuous values,
#: snapped to the bins) or ``"auto"`` (integer arrays are indices, float arrays values).
ActionEncoding = Literal["auto", "indices", "values"]
ACTION_ENCODINGS: tuple[str, ...] = ("auto", "indices", "values")


@dataclass(frozen=True)
class ImportedEpisodes:
    """Benchmark transitions split into episodes (T transitions, E episodes).

    Attributes:
        observations: ``(T, D)`` float32 ``s`` of each transition.
        actions: ``(T, N)`` int64 bin indices.
        rewards: ``(T,)`` float32.
        final_observations: ``(E, D)`` float32 ``s'`` of each episode's last transition.
        ends: ``(E,)`` int64 cumulative (exclusive) end row of each episode.
        terminated: ``(E,)`` bool; an episode not terminated is truncated.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    final_observations: np.ndarray
    ends: np.ndarray
    terminated: np.ndarray


def split_benchmark_transitions(
    transitions: Sequence[tuple],
    *,
    obs_dim: int,
    bin_grid: BinGrid,
    time_limit: int,
    actions: ActionEncoding = "auto",
    source_name: str = "pickle",
) -> ImportedEpisodes:
    """Turn the benchmark's ``(s, a, r, s', done)`` tuples into episodes.

    Episode boundaries: after a tuple whose ``done`` is true, and wherever ``s'`` of one tuple is
    not bit-for-bit the ``s`` of the next (a reset the file did not flag), and after the last tuple.

    Termination vs truncation (the format's one ``done`` flag does not say which): an episode that
    ends with ``done`` after exactly ``time_limit`` steps is a truncation (it hit the time limit;
    bootstrapping goes on), one that ends with ``done`` earlier is a termination. An episode that
    ends without ``done`` (unflagged reset, or the end of the file) was cut, not terminated: a
    truncation. Known ambiguity of the format: a true terminal on exactly the last allowed step
    (e.g. a maze goal reached on step 150) is recorded as a truncation.

    Actions (``actions="auto"``): integer arrays are bin indices, float arrays are continuous
    values that must be exactly bin values of ``bin_grid`` (compared in the file's own float
    dtype) and are quantised to indices.

    Raises:
        ToolError: wrong shapes, non-bin action values, non-finite data, an episode longer than
            ``time_limit``.
    """
    if not isinstance(transitions, (list, tuple)) or not transitions:
        raise ToolError(f"{source_name}: expected a non-empty list of (s, a, r, s', done) tuples, "
                        f"got {type(transitions).__name__}")
    try:
        cols = list(zip(*transitions, strict=True))
    except (TypeError, ValueError):
        raise ToolError(f"{source_name}: every entry must be an (s, a, r, s', done) tuple") from None
    if len(cols) != 5:
        raise ToolError(f"{source_name}: entries have {len(cols)} fields, expected 5 "
                        "(s, a, r, s', done)")
    try:
        s = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in cols[0]])
        s_next = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in cols[3]])
        raw_actions = np.stack([np.asarray(x).reshape(-1) for x in cols[1]])
        rewards = np.array([np.asarray(x, dtype=np.float64).reshape(()) for x in cols[2]])
        done = np.array([bool(np.asarray(x).reshape(())) for x in cols[4]])
    except (TypeError, ValueError) as err:
        raise ToolError(f"{source_name}: malformed transitions ({err})") from None
    T = len(transitions)
    if s.shape != (T, obs_dim) or s_next.shape != (T, obs_dim):
        raise ToolError(f"{source_name}: observations have {s.shape[1]} values, the environment "
                        f"has {obs_dim}")
    if not (np.isfinite(s).all() and np.isfinite(s_next).all() and np.isfinite(rewards).all()):
        raise ToolError(f"{source_name}: observations and rewards must be finite")
    if raw_actions.shape[1] != bin_grid.n_dims:
        raise ToolError(f"{source_name}: actions have {raw_actions.shape[1]} values, the "
                        f"environment has {bin_grid.n_dims} sub-actions")

    if raw_actions.dtype.kind == "b":  # on/off flags written as booleans
        raw_actions = raw_actions.astype(np.int64)
    mode = actions
    if mode == "auto":
        mode = "indices" if raw_actions.dtype.kind in "iub" else "values"
    if mode == "indices":
        try:
            indices = bin_grid.check_indices(raw_actions)
        except ValueError as err:
            raise ToolError(f"{source_name}: {err}") from None
    else:
        if raw_actions.dtype.kind not in "iuf":
            raise ToolError(f"{source_name}: continuous actions must be numbers, got "
                            f"{raw_actions.dtype}")
        values = raw_actions.astype(np.float64)
        if not np.isfinite(values).all():
            raise ToolError(f"{source_name}: actions must be finite")
        indices = bin_grid.quantise(values)
        # Exact bin values only: anything else means the file was made on another grid.
        dtype = raw_actions.dtype if raw_actions.dtype.kind == "f" else np.float64
        off = raw_actions != bin_grid.to_values(indices).astype(dtype)
        if off.any():
            row, dim = (int(v) for v in np.argwhere(off)[0])
            bin_values = [round(float(v), 6) for v in bin_grid.values[dim]]
            raise ToolError(
                f"{source_name}: action value {float(raw_actions[row, dim])} (transition {row}, "
                f"dimension {dim}) is not a bin value of the grid ({bin_values} in that "
                f"dimension); wrong --env, --bins or --grid?"
            )

    # Boundary after row t: done, or an unflagged reset (s' != next s), or the last row.
    cut = done.copy()
    cut[:-1] |= np.any(s_next[:-1] != s[1:], axis=1)
    cut[-1] = True
    ends = np.flatnonzero(cut) + 1
    lengths = np.diff(ends, prepend=0)
    if (lengths > time_limit).any():
        e = int(np.argmax(lengths > time_limit))
        raise ToolError(f"{source_name}: episode {e} has {int(lengths[e])} steps, more than the "
                        f"environment's time limit {time_limit}; wrong --env?")
    terminated = done[ends - 1] & (lengths < time_limit)
    return ImportedEpisodes(
        observations=s.astype(np.float32),
        actions=indices,
        rewards=rewards.astype(np.float32),
        final_observations=s_next[ends - 1].astype(np.float32),
        ends=ends.astype(np.int64),
        terminated=terminated,
    )


def import_benchmark_pickle(
    pickle_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    env_name: str,
    bins: int | None = None,
    allow_pickle: bool = False,
    source: str = "other",
    grid: GridKind = "unit",
    actions: ActionEncoding = "auto",
    dataset_id: str | None = None,
    workers: int = 1,
) -> str:
    """Import one of the discretised benchmark's pickles (a list of ``(s, a, r, s', done)``).

    Unpickling runs code named by the file, so nothing is read unless ``allow_pickle`` is True,
    and even then :class:`RestrictedUnpickler` rebuilds only numpy arrays/scalars and plain
    values. Episodes are split and classified by :func:`split_benchmark_transitions` (a ``done``
    after exactly the env's ``max_episode_steps`` is a truncation, earlier a termination).

    Args:
        env_name, bins: the environment (``spin_data.envs.make_env``) the data was collected on;
            it fixes D, the bin grid, observation keys and the time limit.
        grid: DMC only: the benchmark's pickles were made on the ``unit`` ([-1, 1]) grid.
        source: the episodes' source code (``random``/``medium``/``expert``/``other``).
        actions: how to read actions (see :func:`split_benchmark_transitions`).
        dataset_id: default ``out``'s name. Seeds are unknown: every episode records seed -1.

    Metadata: dataset_id, env ``{name, kwargs}``, observation_keys, quality ``imported``,
    ``imported_from {path, sha256}``, the import rules, and ``reference_scores`` when published.

    Raises:
        PickleNotAllowed: ``allow_pickle`` is False.
        ToolError: the file is missing, refused by the restricted unpickler, or malformed.
    """
    if not allow_pickle:
        raise PickleNotAllowed(f"{pickle_path}: refused: {PICKLE_REFUSAL}")
    path = Path(pickle_path)
    if not path.is_file():
        raise ToolError(f"{path}: no such file")
    if source not in schema.SOURCES:
        raise ToolError(f"unknown source {source!r}: accepted {', '.join(schema.SOURCES)}")
    task = imported_task(env_name, bins, grid)
    obs_dim, bin_grid, time_limit = task.obs_dim, task.bin_grid, task.max_episode_steps

    digest = file_sha256(path)
    with open(path, "rb") as fh:
        try:
            transitions = RestrictedUnpickler(fh, source=str(path)).load()
        except pickle.UnpicklingError as err:
            raise ToolError(str(err) if str(err).startswith(str(path)) else
                            f"{path}: not a readable pickle ({err})") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
            raise ToolError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None
    data = split_benchmark_transitions(transitions, obs_dim=obs_dim, bin_grid=bin_grid,
                                       time_limit=time_limit, actions=actions,
                                       source_name=str(path))
    metadata: dict[str, Any] = {
        "dataset_id": dataset_id or default_dataset_id(os.fspath(out)),
        "env": {"name": env_name, "kwargs": task.kwargs},
        "observation_keys": task.obs_keys,
        "quality": "imported",
        "imported_from": {
            "path": str(path.resolve()),
            "sha256": digest,
            "format": "benchmark pickle: list of (s, a, r, s', done)",
            "rules": ("episode ends: done, or s' != next s, or end of file; a done after exactly "
                      f"the time limit ({time_limit} steps) is a truncation, earlier a "
                      "termination; an end without done is a truncation; seeds unknown (-1)"),
        },
    }
    if task.reference_scores is not None:
        metadata["reference_scores"] = task.reference_scores

    # An import restarts from its file: a failed one leaves nothing.
    with single_writer(out, obs_dim=obs_dim, bin_grid=bin_grid) as writer:
        starts = np.concatenate([[0], data.ends[:-1]])
        for e, (start, stop) in enumerate(zip(starts.tolist(), data.ends.tolist())):
            writer.add_episode(
                np.concatenate([data.observations[start:stop], data.final_observations[e : e + 1]]),
                data.actions[start:stop], data.rewards[start:stop],
                terminated=bool(data.terminated[e]), truncated=not bool(data.terminated[e]),
                source=source, seed=-1,
            )
        return writer.publish(metadata, workers=workers)


