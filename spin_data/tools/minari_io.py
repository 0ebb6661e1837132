"""``spin-data export --format minari`` and ``spin-data import --format minari``: Minari datasets.

Minari (Farama) is the common format of offline RL datasets. An exported spin store becomes a
Minari dataset in Minari's HDF5 format (its arrow format would write one directory per episode:
29k for maze-5 medium-expert) with

- id ``spin/<task>-<bins>bins/<quality>-v0`` (``spin/maze-5-2bins/medium-expert-v0``): Minari's
  ``namespace/env/dataset-version``, the env part being the task's Gymnasium id without the
  version (:mod:`spin_data.envs.gym_ids`);
- ``Box`` observations (float32, D) and ``MultiDiscrete`` actions (the bin indices; int64, as
  Minari stores integer actions), terminations and truncations separate, the reset seed of each
  episode as Minari's episode seed (none where spin recorded -1 = unknown) and its source
  (``random``/``medium``/``expert``/``other``) as the episode's ``spin_source`` attribute;
- the env spec and eval env spec of the task's Gymnasium id, so ``recover_environment`` builds it;
- ``ref_min_score`` / ``ref_max_score``: the benchmark's published random / expert returns
  (absent where none are published);
- ``spin``: the store's own metadata, bin grid and content checksum, which import restores.

Import reads a Minari dataset (a directory, or an id in ``MINARI_DATASETS_PATH`` /
``~/.minari/datasets``; never downloaded) into a spin store. A dataset exported by spin comes
back with the same arrays and content checksum. Others need ``env_name`` (and bins, grid) to say
which spin task they are; ``MultiDiscrete`` actions must fit its bins, and ``Box`` (continuous)
actions are refused unless ``quantise=True``, which snaps them to the nearest bins - lossy.

Needs the optional extra ``.[minari]`` (``minari[hdf5]``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from spin_data.envs import registry
from spin_data.envs.bins import BinGrid
from spin_data.envs.gym_ids import ENTRY_POINT, NAMESPACE, VERSION
from spin_data.store import schema
from spin_data.tools.base import (ToolError, default_dataset_id, imported_task, open_any,
                                        read_array)
from spin_data.store.writer import single_writer

#: Minari's on-disk format spin writes (see the module docstring).
MINARI_DATA_FORMAT = "hdf5"
#: Episode attribute holding spin's source name.
SOURCE_ATTRIBUTE = "spin_source"


def _minari() -> Any:
    try:
        import minari
    except ImportError:
        raise ToolError("Minari is not installed: pip install 'spin[minari]' "
                        "(minari[hdf5])") from None
    return minari


def minari_id(task: str, bins: int | str, quality: str) -> str:
    """``spin/<task>-<bins>bins/<quality>-v0``."""
    return f"{NAMESPACE}/{task}-{bins}bins/{quality}-v{VERSION}"


@contextlib.contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Minari reads its datasets directory from ``MINARI_DATASETS_PATH`` at each call."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def _env_spec(env: dict[str, Any], counts: tuple[int, ...]) -> Any:
    """The Gymnasium spec of a store's env: its catalogue id where the store's settings are the
    id's, else an unregistered spec with the same entry point and the store's settings."""
    import gymnasium as gym

    spec = registry.resolve(env["name"])
    kwargs = {"task": spec.canonical, **env.get("kwargs", {})}
    kwargs.setdefault("bins", list(counts) if len(set(counts)) > 1 else counts[0])
    bins = kwargs["bins"] if isinstance(kwargs["bins"], int) else "x".join(map(str, counts))
    env_id = f"{NAMESPACE}/{spec.canonical}-{bins}bins-v{VERSION}"
    if env_id in gym.registry and gym.registry[env_id].kwargs == kwargs:
        return gym.registry[env_id]
    return gym.envs.registration.EnvSpec(id=env_id, entry_point=ENTRY_POINT, kwargs=kwargs,
                                         max_episode_steps=env.get("max_episode_steps"))


def export_minari(location: str | os.PathLike, root: str | os.PathLike,
                  dataset_id: str | None = None) -> str:
    """Write a store as a Minari dataset under the datasets directory ``root``.

    Load it with ``MINARI_DATASETS_PATH=<root>`` and ``minari.load_dataset(<id>)``. The dataset
    is built in a temporary directory inside ``root`` and renamed into place, so a reader never
    sees half of it and an existing dataset is never replaced.

    Args:
        location: the spin store.
        root: Minari datasets directory (created if missing).
        dataset_id: default :func:`minari_id` of the store's task, bins and quality.

    Returns:
        The Minari dataset id.

    Raises:
        ToolError: Minari missing, the id exists under ``root``, or the store cannot be read.
    """
    import gymnasium as gym

    minari = _minari()
    ds = open_any(location)
    md = ds.metadata
    counts = tuple(int(c) for c in ds.bin_grid.counts)
    env = md.get("env") or {}
    if "name" not in env:
        raise ToolError(f"{ds.location}: its metadata names no environment; cannot export")
    task = registry.resolve(env["name"]).canonical
    bins = counts[0] if len(set(counts)) == 1 else "x".join(map(str, counts))
    target_id = dataset_id or minari_id(task, bins, str(md.get("quality", "imported")))
    root = Path(root).absolute()  # minari joins a relative root onto itself
    final = root / target_id
    if final.exists():
        raise ToolError(f"{final}: a Minari dataset {target_id} exists there; exports never "
                        "replace one")
    obs = read_array(ds, "steps/observations")
    actions = read_array(ds, "steps/actions").astype(np.int64)
    rewards = read_array(ds, "steps/rewards")
    terminations = read_array(ds, "steps/terminations")
    truncations = read_array(ds, "steps/truncations")
    finals = read_array(ds, "episodes/final_observations")
    sources = read_array(ds, "episodes/sources")
    seeds = read_array(ds, "episodes/seeds")
    ends = ds.episode_ends
    starts = np.concatenate([[0], ends[:-1]])
    from minari.data_collector import EpisodeBuffer

    buffers = [
        EpisodeBuffer(id=e, seed=None if seeds[e] < 0 else int(seeds[e]),
                      observations=np.concatenate([obs[a:b], finals[e:e + 1]]),
                      actions=actions[a:b], rewards=rewards[a:b].astype(np.float64),
                      terminations=terminations[a:b], truncations=truncations[a:b], infos={})
        for e, (a, b) in enumerate(zip(starts.tolist(), ends.tolist()))
    ]
    ref = md.get("reference_scores") or {}
    spec = _env_spec(env, counts)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".spin-minari-", dir=root))
    try:
        with _datasets_root(staging), warnings.catch_warnings():
            # spin has no contact address to give; the other fields Minari asks for are set.
            warnings.filterwarnings("ignore", message=".*author_email.*")
            exported = minari.create_dataset_from_buffers(
                target_id, buffers, env=spec, eval_env=spec,
                algorithm_name=_algorithm_name(md), author="spin",
                observation_space=gym.spaces.Box(-np.inf, np.inf, (ds.obs_dim,), np.float32),
                action_space=gym.spaces.MultiDiscrete(np.asarray(counts, dtype=np.int64)),
                ref_min_score=ref.get("random") if ref.get("expert") is not None else None,
                ref_max_score=ref.get("expert"),
                description=str(md.get("description") or f"spin dataset {md.get('dataset_id')}"),
                data_format=MINARI_DATA_FORMAT,
            )
            exported.storage.update_episode_metadata(
                [{SOURCE_ATTRIBUTE: schema.SOURCES[int(s)]} for s in sources])
            exported.storage.update_metadata({"spin": json.loads(json.dumps({
                "metadata": md, "bin_grid": ds.bin_grid.to_dict(),
                "content_checksum": ds.content_checksum, "schema_version": schema.SCHEMA_VERSION,
            }, default=str))})
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging / target_id, final)
        except OSError:
            raise ToolError(f"{final}: a Minari dataset {target_id} appeared there meanwhile; "
                            "exports never replace one") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target_id


def _algorithm_name(md: dict[str, Any]) -> str:
    behaviour = md.get("behaviour") or {}
    if behaviour.get("algorithm"):
        return f"{behaviour['algorithm']} ({behaviour.get('learner_library', 'sb3')}) ladder rungs"
    return str(md.get("quality", "unknown"))


def _open_minari(source: str | os.PathLike) -> Any:
    minari = _minari()
    path = Path(source)
    if path.is_dir():
        data = path / "data" if (path / "data").is_dir() else path
        try:
            return minari.MinariDataset(data)
        except Exception as err:  # minari raises assorted types for a non-dataset directory
            raise ToolError(f"{source}: not a Minari dataset ({type(err).__name__}: {err})") \
                from None
    try:
        return minari.load_dataset(str(source), download=False)
    except Exception as err:
        raise ToolError(f"{source}: no such Minari dataset directory or local id "
                        f"({type(err).__name__}: {err})") from None


def import_minari(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    env_name: str | None = None,
    bins: int | None = None,
    grid: str | None = None,
    quantise: bool = False,
    dataset_id: str | None = None,
    workers: int = 1,
) -> tuple[str, list[str]]:
    """Read a Minari dataset into a spin store (see the module docstring).

    Args:
        source: a Minari dataset directory, or the id of a local one.
        env_name, bins, grid: the spin task the data belongs to (needed unless spin exported
            it); grid is DMC only (default ``unit``, the benchmark's).
        quantise: accept ``Box`` actions by snapping them to the nearest bins (lossy).
        dataset_id: default ``out``'s name (a spin export keeps its own).

    Returns:
        ``(out, notes)``: the store's location and sentences to show the user (lossy
        quantisation).

    Raises:
        ToolError: unreadable source, spaces that do not fit the task, Box actions without
            ``quantise``, or a task that cannot be determined.
    """
    import gymnasium as gym

    dataset = _open_minari(source)
    md = dataset.storage.metadata
    spin = md.get("spin")
    notes: list[str] = []
    if spin is not None and env_name is None:
        metadata = dict(spin["metadata"])
        env_name = metadata["env"]["name"]
        bin_grid = BinGrid.from_dict(spin["bin_grid"])
    else:
        if env_name is None:
            raise ToolError(f"{source}: not exported by spin; name its task with --env (and "
                            "--bins/--grid)")
        try:
            registry.check_grid(env_name, grid)
        except ValueError as err:
            raise ToolError(str(err)) from None
        task = imported_task(env_name, bins, grid)
        bin_grid = task.bin_grid
        metadata = {
            "dataset_id": dataset_id or default_dataset_id(os.fspath(out)),
            "env": {"name": env_name, "task": task.canonical, "kwargs": task.kwargs,
                    "max_episode_steps": task.max_episode_steps},
            "observation_keys": task.obs_keys, "quality": "imported",
        }
        if task.reference_scores is not None:
            metadata["reference_scores"] = task.reference_scores
        obs_space = dataset.observation_space
        if not (isinstance(obs_space, gym.spaces.Box) and obs_space.shape == (task.obs_dim,)):
            raise ToolError(f"{source}: observations are {obs_space}, {env_name} has flat "
                            f"Box observations of {task.obs_dim} values")
    act_space = dataset.action_space
    counts = np.asarray(bin_grid.counts)
    if isinstance(act_space, gym.spaces.Box):
        if not quantise:
            raise ToolError(f"{source}: its actions are continuous ({act_space}); pass "
                            "--quantise to snap them to the nearest bins of the task's grid "
                            "(lossy: the data then holds actions that were not executed)")
        notes.append("")  # filled in below, once the actions have been read
    elif not (isinstance(act_space, gym.spaces.MultiDiscrete)
              and np.array_equal(act_space.nvec, counts)):
        raise ToolError(f"{source}: its actions are {act_space}; {env_name} at these bins has "
                        f"MultiDiscrete({counts.tolist()}) (bin indices)")
    if dataset_id and spin is not None:
        metadata["dataset_id"] = dataset_id
    metadata["imported_from"] = {"format": f"minari ({MINARI_DATA_FORMAT})",
                                 "minari_dataset_id": md.get("dataset_id"),
                                 "path": str(Path(dataset.storage.data_path).resolve())}
    computed = ("schema_version", "bin_grid", "observation_dim", "action_space", "totals",
                "returns", "created", "versions")
    metadata = {k: v for k, v in metadata.items() if k not in computed}

    snapped = total = 0
    # An import restarts from its source: a failed one leaves nothing.
    with single_writer(out, obs_dim=int(dataset.observation_space.shape[0]),
                       bin_grid=bin_grid) as writer:
        episode_md = dataset.storage.get_episode_metadata(range(dataset.total_episodes))
        for episode, attrs in zip(dataset.iterate_episodes(), episode_md):
            actions = np.asarray(episode.actions)
            if isinstance(act_space, gym.spaces.Box):
                values = actions.astype(np.float64)
                indices = bin_grid.quantise(values)
                snapped += int((bin_grid.to_values(indices) != values).any(axis=-1).sum())
                total += len(indices)
                actions = indices
            terminated = bool(episode.terminations[-1])
            writer.add_episode(np.asarray(episode.observations), actions,
                               np.asarray(episode.rewards), terminated=terminated,
                               truncated=not terminated,
                               source=str(attrs.get(SOURCE_ATTRIBUTE, "other")),
                               seed=int(attrs.get("seed", -1)))
        if notes:
            notes[0] = (f"quantised {snapped:,} of {total:,} continuous actions that were not "
                        "bin values to the nearest bins: lossy, the store holds actions the data "
                        "did not execute")
            metadata["imported_from"]["quantised_actions"] = snapped
        return writer.publish(metadata, workers=workers), notes
