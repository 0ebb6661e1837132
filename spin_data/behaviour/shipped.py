"""Behaviour policies shipped with the catalogue, so its datasets can be made without training.

A shipped run lives in ``<catalog>/ladders/<task>-<bins>bins-<algorithm>-<library>/`` (the
catalogue is ``datasets/``, see :func:`spin_data.recipe.catalog_dir`)::

    config.json, policy.json     as in the run directory (see run_dir.py)
    ladder.json, ladder.csv      every rung's scores; checkpoint names and sha256 in safetensors
    ladder.png                   the learning curve
    checkpoints/step-N.safetensors   only the rungs datasets use (expert, medium): a few hundred kB

``spin-data generate`` collects from a shipped run when the recipe's behaviour run has the same
:meth:`~spin_data.behaviour.BehaviourConfig.cache_key` (same task, grid, learner, budget, seed,
hyperparameters), and trains only when none matches or ``--retrain`` is given. Each shipped
checkpoint is checked against the sha256 its ladder records before anything is collected from
it. The hashes are of safetensors bytes, which depend on the weights alone, so a run trained
again on another machine can be compared rung by rung (:func:`ship_run` re-derives them from a
run trained before checkpoints were safetensors).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

from spin_data.behaviour.config import BehaviourConfig
from spin_data.behaviour.ladder import Ladder, Rung
from spin_data.behaviour.policy import (CHECKPOINT_SUFFIX, checkpoint_name, load_weights,
                                        state_bytes)
from spin_data.behaviour.run_dir import commit_ladder, load_ladder
from spin_data.files import file_sha256, replace_atomically

#: The rung files every shipped run keeps besides its checkpoints.
RUN_FILES = ("config.json", "policy.json")


class ShippedCheckpointError(ValueError):
    """A shipped checkpoint's bytes are not the ones its ladder records."""


def ladders_dir() -> Path:
    """Where shipped runs live: ``<catalog>/ladders``."""
    from spin_data.recipe import catalog_dir

    return catalog_dir() / "ladders"


def shipped_name(config: BehaviourConfig) -> str:
    """The folder name a run is shipped under (``cheetah-run-3bins-sac-sbx``)."""
    return f"{config.canonical_env}-{config.bins}bins-{config.algorithm}-{config.library}"


def find_shipped(config: BehaviourConfig, root: str | os.PathLike | None = None
                 ) -> tuple[Path, Ladder] | None:
    """The shipped run of ``config`` (same cache key, complete and confirmed): its folder and
    ladder, or None."""
    base = Path(root) if root is not None else ladders_dir()
    key = config.cache_key()
    for path in sorted(base.glob("*/ladder.json")):
        try:
            ladder = Ladder.from_json(path.read_text())
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a ladder this spin reads: not a match
        if ladder.cache_key == key and ladder.complete and ladder.medium_confirmed:
            return path.parent, ladder
    return None


def shipped_checkpoint(run: Path, rung: Rung) -> Path | None:
    """The checked file of ``rung`` in a shipped run, or None when the run does not ship it.

    Raises:
        ShippedCheckpointError: the file's sha256 differs from the ladder's (both named).
    """
    path = run / rung.checkpoint
    if not path.is_file():
        return None
    found = file_sha256(path)
    if found != rung.sha256:
        raise ShippedCheckpointError(
            f"{path}: sha256 {found} does not match its ladder's {rung.sha256}; refusing to "
            "collect from it (restore it with git checkout, or pass --retrain)")
    return path


def ship_run(run: str | os.PathLike, dest: str | os.PathLike,
             medium_fractions: tuple[float, ...] = (0.45,)) -> Ladder:
    """Copy a finished run into a shipped folder: its records, and as safetensors the
    checkpoints of its expert and of its medium at each of ``medium_fractions``.

    Every rung's sha256 is re-derived from its weights in safetensors (the run's checkpoints may
    be ``.pt`` files of an older spin); rungs whose weights are not shipped keep their hash, so a
    second machine's run can be compared with all of them.

    Raises:
        ValueError: the run is not finished and confirmed, a rung's weights are missing, or
            ``dest`` holds another run.
    """
    run, dest = Path(run), Path(dest)
    ladder = load_ladder(run)
    if ladder is None or not (ladder.complete and ladder.medium_confirmed):
        raise ValueError(f"{run}: not a finished, confirmed behaviour run (train it first)")
    other = load_ladder(dest)
    if other is not None and other.cache_key != ladder.cache_key:
        raise ValueError(f"{dest} holds another run (cache key {other.cache_key}, this one "
                         f"{ladder.cache_key}): ship to another folder")
    keep = {ladder.expert().step} | {ladder.medium(f).step for f in medium_fractions}
    rungs = []
    for rung in ladder.rungs:
        source = run / rung.checkpoint
        name = checkpoint_name(rung.step)
        if source.is_file():
            data = state_bytes(load_weights(source))
            sha = hashlib.sha256(data).hexdigest()
        elif rung.checkpoint.endswith(CHECKPOINT_SUFFIX) and rung.step not in keep:
            data, sha = None, rung.sha256  # already a safetensors hash
        else:
            raise ValueError(f"{source}: missing; the run's weights are needed to ship it")
        if rung.step in keep:
            replace_atomically(dest / name, lambda tmp, data=data: tmp.write_bytes(data))
        rungs.append(dataclasses.replace(rung, checkpoint=name, sha256=sha))
    for stale in (dest / "checkpoints").glob("*") if (dest / "checkpoints").exists() else ():
        if int(stale.stem.split("-")[-1]) not in keep:
            stale.unlink()
    for name in RUN_FILES:
        shutil.copyfile(run / name, dest / name)
    shipped = dataclasses.replace(ladder, rungs=rungs)
    commit_ladder(dest, shipped)
    return shipped

