"""``spin-data export --format npz``: a store as one numpy ``.npz`` file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from spin_data.tools.base import ToolError, open_any, read_array


# ============================================================================= export
def export_npz(location: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write a dataset as one D4RL-style ``.npz`` of plain numeric arrays.

    Keys (T steps, E episodes, D obs dim, N sub-actions): ``observations`` (T, D) float32,
    ``actions`` (T, N) int64 bin indices, ``rewards`` (T,) float32, ``next_observations`` (T, D)
    float32, ``terminals`` (T,) bool (= terminations), ``timeouts`` (T,) bool (= truncations),
    ``episode_ends`` (E,) int64 (cumulative, exclusive), ``episode_sources`` (E,) uint8 (codes
    into ``SOURCES``), ``episode_seeds`` (E,) int64. No object arrays: loads with
    ``np.load(path, allow_pickle=False)``.

    The file is written beside ``out_path`` and linked into place, so a reader never sees half a
    file and an existing file is never replaced.

    Raises:
        ToolError: ``out_path`` exists, or the store cannot be read.
    """
    out = Path(out_path)
    if out.exists():
        raise ToolError(f"{out}: already exists; exports never replace a file")
    ds = open_any(location)
    obs = read_array(ds, "steps/observations")
    try:
        next_obs = ds.next_observations(obs)
    except Exception as err:  # final_observations or ends damaged
        raise ToolError(f"{ds.location}: cannot form next observations ({type(err).__name__}: "
                        f"{err}); run `spin-data verify {ds.location}`") from None
    arrays = {
        "observations": obs,
        "actions": read_array(ds, "steps/actions").astype(np.int64),
        "rewards": read_array(ds, "steps/rewards"),
        "next_observations": next_obs,
        "terminals": read_array(ds, "steps/terminations"),
        "timeouts": read_array(ds, "steps/truncations"),
        "episode_ends": read_array(ds, "episodes/ends").astype(np.int64),
        "episode_sources": read_array(ds, "episodes/sources").astype(np.uint8),
        "episode_seeds": read_array(ds, "episodes/seeds").astype(np.int64),
    }
    for key, value in arrays.items():
        assert value.dtype.kind in "biuf", (key, value.dtype)  # never an object array
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:  # a file object: savez appends no ".npz" suffix
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, out)  # fails rather than replace a file created meanwhile
        except FileExistsError:
            raise ToolError(f"{out}: already exists; exports never replace a file") from None
    finally:
        os.unlink(tmp)
    return out


# ============================================================================= import
