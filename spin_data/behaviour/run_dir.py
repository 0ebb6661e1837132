"""A behaviour run's directory: where it lives, its committed ladder, and its single-writer lock.

Run directory ``<cache>/behaviour/<canonical env>-<cache key>/`` (``<cache>`` is
:func:`spin_data.paths.cache_root`: ``$SPIN_CACHE_DIR``, default ``~/.cache/spin``)::

    config.json            the resolved BehaviourConfig
    policy.json            how to rebuild the policy network (no pickle; see policy.py)
    ladder.json            the rungs so far and whether the run is complete (the commit point)
    ladder.csv             the same rungs as a table
    checkpoints/step-N.safetensors
                           policy state_dict at N training env steps (see policy.py)
    resume/step-N/         SB3's own model.zip (+ replay_buffer.pkl for SAC) at the last rung,
                           and rng.json: generators and env positions (see resume.py)

``resume/`` is SB3's native format, which is a pickle: spin only ever reads back files it wrote
itself in this directory, uses them for nothing but continuing a run, and never ships them.
Checkpoints are what other code loads.

A rung is committed in this order: checkpoint, resume state, then ``ladder.json`` replaced
atomically (:func:`commit_ladder`). A run killed at any point therefore restarts from its last
committed rung; work after it is redone. One process at a time trains a run
(:func:`run_lock`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from spin_data.behaviour.config import BehaviourConfig
from spin_data.behaviour.ladder import Ladder
from spin_data.files import exclusive_lock, write_text_atomic
from spin_data.paths import cache_root


class RunLocked(RuntimeError):
    """Another process is training the same run (same cache entry) right now."""


def default_cache_dir() -> Path:
    """``<cache root>/behaviour``: :func:`spin_data.paths.cache_root` is ``$SPIN_CACHE_DIR``,
    default ``~/.cache/spin``."""
    return cache_root() / "behaviour"


def run_directory(config: BehaviourConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``config``'s run lives: ``<cache_dir>/<canonical env>-<cache key>``.

    ``cache_dir`` defaults to :func:`default_cache_dir`.
    """
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / f"{config.canonical_env}-{config.cache_key()}"


def commit_ladder(run: Path, ladder: Ladder) -> None:
    """Write a run's ``ladder.csv`` (and, once complete, ``ladder.png``), then ``ladder.json``
    atomically: the commit point a reader or a resumed run trusts."""
    write_text_atomic(run / "ladder.csv", ladder.to_csv())
    if ladder.complete:  # a picture of the finished run (learning curve, expert / medium marked)
        ladder.plot(str(run / "ladder.png"))
    write_text_atomic(run / "ladder.json", ladder.to_json())  # last: the commit point


def run_lock(run: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``run``'s lock for the block: one process trains a run at a time.

    Raises:
        RunLocked: another process holds it.
    """
    return exclusive_lock(run / ".lock",
                          lambda: RunLocked(f"{run}: another process is training this run"))


def load_ladder(run: str | os.PathLike) -> Ladder | None:
    """The committed ladder of a run directory, or None if it has none yet."""
    path = Path(run) / "ladder.json"
    return Ladder.from_json(path.read_text()) if path.exists() else None


def drop_stale(run: Path, ladder: Ladder) -> None:
    """Delete resume states and checkpoints that the committed ladder does not reference."""
    keep_resume = f"step-{ladder.rungs[-1].step}" if ladder.rungs else None
    for entry in (run / "resume").glob("*") if (run / "resume").exists() else ():
        if entry.name != keep_resume:
            shutil.rmtree(entry, ignore_errors=True)
    referenced = {r.checkpoint for r in ladder.rungs}
    for ckpt in (run / "checkpoints").glob("*"):
        if f"checkpoints/{ckpt.name}" not in referenced:
            ckpt.unlink()
