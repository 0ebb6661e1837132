"""``spin-data generate``: recipe -> behaviour policies -> collected episodes -> published store.

Phases:

1. **behaviour**: train (or reuse from the cache) the behaviour run of the recipe's environment,
   and pick its ladder rungs, both confirmed on fresh episodes: expert = best, medium = closest
   to the ladder's medium target (``medium_fraction`` x the expert, capped at the published one).
   Skipped when the recipe only needs uniform-random data.
2. **collect**: every source's episodes are cut into tasks of ``episodes_per_task`` episodes
   with seeds derived from the recipe's seed; each task writes its own part of the store's
   staging area (so any number of worker processes can run tasks at once) and tasks run until
   the source's share of transitions is reached, counting finished tasks in task order.
   The store's episode order is the task order, whatever the number of workers.
3. **publish**: the parts become one store, published atomically with full metadata.

An interrupted generate resumes: finished tasks are kept, an unfinished task continues from its
last complete episode (the staging area remembers the recipe and refuses a different one).
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from spin_data.behaviour.ladder import WEAK_EXPERT_THRESHOLD
from spin_data.blas import CORETYPE as BLAS_CORETYPE
from spin_data.blas import cpu_runs_pinned_kernels, openblas_core
from spin_data.collect import (BatchPolicy, RandomActionPolicy, UniformRandomPolicy,
                               collect_episodes)
from spin_data.envs import registry
from spin_data.recipe import SOURCES, Recipe
from spin_data.store import DatasetWriter, publish, writer_lock
from spin_data.store.location import (StoreLocationError, default_staging_dir, exists,
                                      parse_location)
from spin_data.store.publishing import installed_versions
from spin_data.store.staging import StagingExists

#: Parts of source k are numbered from k * PART_STRIDE, so the store lists random, medium,
#: expert episodes in that order.
PART_STRIDE = 100_000
RECIPE_FILE = "recipe.json"
#: Where collection tasks run: local processes, or Ray tasks (a local instance or a cluster).
BACKENDS: tuple[str, ...] = ("local", "ray")


def episode_seed(master_seed: int, source: str, index: int) -> int:
    """Reset seed of episode ``index`` of ``source``: independent streams per source."""
    state = np.random.SeedSequence([master_seed, SOURCES.index(source), index])
    return int(state.generate_state(1, np.uint32)[0] >> 1)  # < 2**31: fits every simulator


@dataclass(frozen=True)
class Task:
    """A block of episodes of one source, written to one part of the staging area."""

    source: str
    part: int
    seeds: tuple[int, ...]
    checkpoint: str | None  # behaviour checkpoint (None: uniform random)


def make_env_fn(recipe: Recipe) -> Callable[[], Any]:
    spec = registry.resolve(recipe.env)
    kwargs = {"grid": recipe.grid} if spec.family == "dmc" else {}
    return lambda: registry.make_env(recipe.env, bins=recipe.n_bins, **kwargs)


class ModePolicy:
    """A behaviour policy acting with its distribution's mode (``Recipe.deterministic``)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def act(self, observations: np.ndarray, rngs: Any) -> np.ndarray:
        return self.policy.act(observations, deterministic=True)


def task_policy(task: Task, bin_grid, deterministic: bool = False,
                random_action_prob: float = 0.0) -> BatchPolicy:
    """The policy of a task's source: uniform random, or its behaviour checkpoint sampling (or
    acting with its mode), its actions replaced by uniform random ones with probability
    ``random_action_prob`` (Recipe.random_action_prob; at 0 nothing is drawn for it, so the
    data of recipes without replacement is unchanged)."""
    if task.checkpoint is None:
        return UniformRandomPolicy(bin_grid)
    import torch

    from spin_data.behaviour import load_policy

    # Batched inference of a small MLP: extra intra-op threads only fight the other workers.
    torch.set_num_threads(1)
    policy = load_policy(task.checkpoint)
    policy = ModePolicy(policy) if deterministic else policy
    if random_action_prob:
        return RandomActionPolicy(policy, bin_grid, random_action_prob)
    return policy


#: Environments built in this process, reused by every task of the same task and grid
#: (building a DMC task costs 0.05-1 s: as much as collecting a short task's episodes).
_ENVS: dict[tuple, list[Any]] = {}


def task_envs(recipe: Recipe, n_envs: int) -> list[Any]:
    """At least ``n_envs`` environments of the recipe's task, built once per process."""
    key = (recipe.env, recipe.n_bins, recipe.grid)
    envs = _ENVS.setdefault(key, [])
    make_env = make_env_fn(recipe)
    while len(envs) < max(1, n_envs):
        envs.append(make_env())
    return envs


def collection_rate(recipe: Recipe, n_envs: int = 4) -> float:
    """Env steps/s at which this process steps the recipe's task: ``n_envs`` episodes in
    lockstep with uniform random actions (a lower bound on collection time: the behaviour
    policies' forward pass comes on top)."""
    envs = task_envs(recipe, n_envs)[:n_envs]
    policy = UniformRandomPolicy(envs[0].get_wrapper_attr("bin_grid"))
    start = time.perf_counter()
    steps = sum(len(ep.rewards) for ep in collect_episodes(envs, policy, range(n_envs)))
    return steps / max(time.perf_counter() - start, 1e-9)


def _part_writer(recipe: Recipe, location: str, staging: str, part: int) -> DatasetWriter:
    """The writer of one part (continuing it if it exists)."""
    probe = task_envs(recipe, 1)[0]
    return DatasetWriter(location, obs_dim=int(probe.observation_space.shape[0]),
                         bin_grid=probe.get_wrapper_attr("bin_grid"), part=part, resume=True,
                         staging_dir=staging)


def run_task(recipe: Recipe, location: str, staging: str, task: Task, n_envs: int) -> int:
    """Collect a task's episodes into its part (continuing an interrupted part); its steps."""
    # dm_control's model compiler logs deprecation notices through absl in every worker.
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    writer = _part_writer(recipe, location, staging, task.part)
    try:
        remaining = task.seeds[writer.n_episodes:]
        if remaining:
            policy = task_policy(task, writer.header.bin_grid, recipe.deterministic,
                                 recipe.random_action_prob)
            envs = task_envs(recipe, n_envs)[:n_envs]
            for ep in collect_episodes(envs, policy, remaining):
                writer.add_episode(ep.observations, ep.actions, ep.rewards,
                                   terminated=ep.terminated, truncated=ep.truncated,
                                   source=task.source, seed=int(ep.seed))
        return writer.n_steps
    finally:
        writer.close()


def _trim_part(recipe: Recipe, location: str, staging: str, part: int, need: int) -> int:
    """Keep the fewest leading episodes of a part that reach ``need`` steps; their steps."""
    writer = _part_writer(recipe, location, staging, part)
    try:
        reached = np.cumsum(writer.episode_steps) >= need
        if reached.any():
            writer.keep_episodes(int(np.argmax(reached)) + 1)
        return writer.n_steps
    finally:
        writer.close()


def _tasks(recipe: Recipe, source: str, checkpoint: str | None):
    """Endless task sequence of a source (the collector stops when its share is reached)."""
    k, n = 0, recipe.episodes_per_task
    while True:
        seeds = tuple(episode_seed(recipe.seed, source, k * n + i) for i in range(n))
        yield Task(source, SOURCES.index(source) * PART_STRIDE + k, seeds, checkpoint)
        k += 1


def behaviour_config(recipe: Recipe) -> Any:
    """The :class:`~spin_data.behaviour.BehaviourConfig` whose ladder ``recipe``'s behaviour
    policies come from (the budget preset at the recipe's task, bins, grid, learner and seed)."""
    from spin_data.behaviour import preset

    family = registry.resolve(recipe.env).family
    return preset(recipe.env, recipe.budget, bins=recipe.n_bins,
                  grid=recipe.grid if family == "dmc" else "actuator",
                  algorithm=recipe.algorithm, library=recipe.library, seed=recipe.seed)


def pick_behaviour(recipe: Recipe, *, cache_dir: str | None = None, progress: bool = True,
                   retrain: bool = False
                   ) -> tuple[dict[str, str], dict[str, Any], str | None]:
    """The recipe's expert and medium behaviour policies: from the catalogue's shipped run of
    the recipe's behaviour config (:mod:`spin_data.behaviour.shipped`) when there is one that
    holds both, else from training (or reusing) the run in the cache. ``retrain`` skips the
    shipped run.

    Returns (checkpoint path per source, provenance metadata, a weak-expert warning or None).

    Raises:
        ShippedCheckpointError: a shipped checkpoint's sha256 differs from its ladder's.
    """
    from spin_data.behaviour import run_directory, train_behaviour

    config = behaviour_config(recipe)
    shipped = None if retrain else shipped_policies(recipe)
    if shipped is not None:
        run, ladder, rungs = shipped
        origin = f"shipped: {run.parent.parent.name}/{run.parent.name}/{run.name}"
    else:
        ladder = train_behaviour(config, cache_dir=cache_dir, progress=progress)
        run = run_directory(config, cache_dir)
        rungs = _picked_rungs(recipe, ladder)
        origin = "trained: the behaviour cache"
    checkpoints = {source: str(run / rung.checkpoint) for source, rung in rungs.items()}
    metadata = {
        "algorithm": config.algorithm,
        "learner_library": config.library,
        # Collecting from shipped policies needs no sbx, so a base install may lack it: None.
        "library": installed_versions(("stable_baselines3", "torch", "gymnasium")
                                      + (("sbx-rl", "jax") if config.library == "sbx" else ())),
        "training_steps": config.budget,
        "config": config.to_dict(),
        "cache_key": config.cache_key(),
        "medium_fraction": recipe.medium_fraction,
        "checkpoints_from": origin,
        "policies": {source: {"step": r.step, "checkpoint_sha256": r.sha256,
                              "checkpoint": r.checkpoint,
                              "mean_return": r.mean_return, "std_return": r.std_return,
                              "normalised": r.normalised, "score": ladder.score(r),
                              "confirmed_return": r.confirmed_return,
                              "confirm_episodes": len(r.confirm_returns)}
                     for source, r in rungs.items()},
    }
    warning = ladder.warning()
    return checkpoints, metadata, warning


def shipped_policies(recipe: Recipe) -> tuple[Path, Any, dict[str, Any]] | None:
    """(shipped run folder, its ladder, picked rung per source) when the catalogue ships the
    recipe's behaviour run with every rung the recipe collects from, else None.

    Raises:
        ShippedCheckpointError: a shipped checkpoint's sha256 differs from its ladder's.
    """
    from spin_data.behaviour.shipped import find_shipped, shipped_checkpoint

    found = find_shipped(behaviour_config(recipe))
    if found is None:
        return None
    run, ladder = found
    rungs = _picked_rungs(recipe, ladder)
    if not all([shipped_checkpoint(run, rung) for rung in rungs.values()]):
        return None
    return run, ladder, rungs


def _picked_rungs(recipe: Recipe, ladder: Any) -> dict[str, Any]:
    # Only the sources the recipe collects: an expert-only dataset needs no earlier rung.
    pickers = {"expert": ladder.expert, "medium": lambda: ladder.medium(recipe.medium_fraction)}
    return {source: pick() for source, pick in pickers.items() if source in recipe.mix}


class TaskPool:
    """Where collection tasks run: in this process, a local process pool, or a Ray cluster.

    ``submit`` returns a ``concurrent.futures.Future`` in every case (Ray object refs convert
    to one), so the collector below has one loop for all of them.
    """

    def __init__(self, backend: str, workers: int, address: str | None = None) -> None:
        self.backend, self.workers = backend, max(1, workers)
        self._pool: concurrent.futures.Executor | None = None
        if backend == "local" and self.workers > 1:
            ctx = multiprocessing.get_context("spawn")  # zarr's loop thread dies with fork
            self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=ctx)
        elif backend == "ray":
            import ray

            from spin_data.cluster import connect_ray

            connect_ray(address)
            self._remote = ray.remote(num_cpus=1)(run_task)
        elif backend != "local":
            raise ValueError(f"unknown backend {backend!r}: accepted {', '.join(BACKENDS)}")

    def submit(self, *args: Any) -> concurrent.futures.Future:
        if self.backend == "ray":
            return self._remote.remote(*args).future()
        if self._pool is not None:
            return self._pool.submit(run_task, *args)
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(run_task(*args))
        return future

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def collect_source(recipe: Recipe, location: str, staging: Path, source: str,
                   checkpoint: str | None, *, pool: TaskPool, n_envs: int,
                   bar: tqdm | None = None) -> int:
    """Run a source's tasks in order until its share of transitions is reached; drop extras.

    Up to ``2 x pool.workers`` tasks are queued at once; their results are counted in task
    order, so which tasks make the dataset never depends on which worker finished first.
    """
    target = recipe.source_steps()[source]
    tasks = _tasks(recipe, source, checkpoint)
    done_steps, used, steps, shown = 0, [], 0, 0
    in_flight: list[tuple[Task, concurrent.futures.Future]] = []
    while done_steps < target:
        # Two tasks per worker in flight: results are taken in task order, and a worker that
        # finishes before an earlier task must find its next task already queued. (Run in
        # this process, one at a time: nothing to overlap, so no task runs ahead.)
        while len(in_flight) < (1 if pool.workers == 1 else 2 * pool.workers):
            task = next(tasks)
            in_flight.append((task, pool.submit(recipe, location, str(staging), task, n_envs)))
        task, future = in_flight.pop(0)
        steps = future.result()
        done_steps += steps
        used.append(task.part)
        if bar is not None:  # a last task's steps past the target are trimmed below: not shown
            bar.update(min(done_steps, target) - shown)
            shown = min(done_steps, target)
    # Tasks started beyond the target run to the end (cancelling a Ray future's wrapper can
    # block forever) and their parts are discarded below.
    for _, future in in_flight:
        future.result()
    # Full episodes only, but no more of them than the share needs: trim the last task.
    last_steps = steps
    kept = _trim_part(recipe, location, str(staging), used[-1],
                      target - (done_steps - last_steps))
    done_steps += kept - last_steps
    if bar is not None:  # the episode that crosses the target is kept whole
        bar.total = max(bar.total, bar.n + done_steps - shown)
        bar.update(done_steps - shown)
    base = SOURCES.index(source) * PART_STRIDE
    for part_dir in (staging / "parts").glob("part-*"):
        part = int(part_dir.name.split("-")[1])
        if base <= part < base + PART_STRIDE and part not in used:
            shutil.rmtree(part_dir)
    return done_steps


def _prepare_staging(recipe: Recipe, location: str) -> Path:
    staging = default_staging_dir(parse_location(location))
    recorded = staging / RECIPE_FILE
    current = json.dumps(recipe.to_dict(), sort_keys=True)
    if recorded.exists() and recorded.read_text() != current:
        raise StagingExists(
            f"an interrupted generate of another recipe is at {staging}: discard it with "
            f"spin_data.store.discard({location!r}) (or `spin-data generate ... --discard`)")
    staging.mkdir(parents=True, exist_ok=True)
    recorded.write_text(current)
    return staging


def generate(recipe: Recipe, out: str, *, workers: int = 1, n_envs: int = 8,
             backend: str = "local", address: str | None = None,
             cache_dir: str | None = None, progress: bool = True,
             retrain: bool = False) -> dict[str, Any]:
    """Make the recipe's dataset at ``out``; returns a summary (also printed by the CLI).

    Behaviour policies come from the catalogue's shipped run when it matches the recipe (see
    :func:`pick_behaviour`; ``retrain`` trains instead). The whole run holds ``out``'s writer lock
    (:func:`spin_data.store.writer_lock`): a second writer of the same output is refused, naming
    this process, and never mixes its parts into this one's.

    Summary keys: ``location``, ``phases_s`` (seconds per phase), ``returns`` (per source, from
    the store), ``normalised`` (per source mean, when a reference score exists), ``size_bytes``
    (local stores, card excluded), ``card`` (the README.md written into a directory store, see
    :mod:`spin_data.tools.card`; None elsewhere), ``warnings``.
    """
    with writer_lock(out):
        if exists(parse_location(os.fspath(out))):
            raise StoreLocationError(f"{os.fspath(out)}: published by another process meanwhile")
        return _generate_locked(recipe, out, workers=workers, n_envs=n_envs, backend=backend,
                                address=address, cache_dir=cache_dir, progress=progress,
                                retrain=retrain)


def _generate_locked(recipe: Recipe, out: str, *, workers: int, n_envs: int, backend: str,
                     address: str | None, cache_dir: str | None, progress: bool,
                     retrain: bool) -> dict[str, Any]:
    location = os.fspath(out)
    timings: dict[str, float] = {}
    warnings: list[str] = []
    checkpoints: dict[str, str | None] = {"random": None}
    behaviour_meta: dict[str, Any] | None = None

    start = time.perf_counter()
    if any(s != "random" for s in recipe.mix):
        picked, behaviour_meta, warning = pick_behaviour(recipe, cache_dir=cache_dir,
                                                         progress=progress, retrain=retrain)
        checkpoints.update(picked)
        if warning:
            warnings.append(warning)
    timings["behaviour"] = time.perf_counter() - start
    openblas = openblas_core()
    if openblas not in (None, BLAS_CORETYPE) and cpu_runs_pinned_kernels():
        warnings.append(f"numpy's OpenBLAS runs {openblas} kernels, not the {BLAS_CORETYPE} ones "
                        "spin pins (numpy was loaded before spin_data): this dataset's bytes may "
                        "differ from the same recipe's made on another CPU")

    staging = _prepare_staging(recipe, location)
    start = time.perf_counter()
    pool = TaskPool(backend, workers, address)
    try:
        with tqdm(total=recipe.size, desc="collect", unit="step", disable=not progress) as bar:
            for source in recipe.mix:
                bar.set_postfix(source=source)
                collect_source(recipe, location, staging, source, checkpoints[source],
                               pool=pool, n_envs=n_envs, bar=bar)
    finally:
        pool.close()
    timings["collect"] = time.perf_counter() - start

    start = time.perf_counter()
    from spin_data.tools.summary import describe_action_selection

    env = task_envs(recipe, 1)[0]
    reference = registry.reference_score(recipe.env, recipe.n_bins)
    selection = recipe.action_selection()
    description = f"{recipe.quality} data of {recipe.canonical_env} at {recipe.n_bins} bins"
    if selection and (recipe.deterministic or recipe.random_action_prob):
        description += f" ({describe_action_selection(selection)})"
    metadata = {
        "dataset_id": recipe.name,
        "dataset_version": 1,
        "description": description,
        "env": {"name": recipe.env, "task": recipe.canonical_env,
                "kwargs": {"bins": recipe.n_bins, "grid": recipe.grid},
                "max_episode_steps": int(env.get_wrapper_attr("max_episode_steps"))},
        "observation_keys": [list(k) for k in env.get_wrapper_attr("obs_keys")],
        "quality": recipe.quality,
        "recipe": {**recipe.to_dict(), "source_steps": recipe.source_steps()},
        "behaviour": behaviour_meta,
        "action_selection": selection,
        "reference_scores": None if reference is None else {
            "expert": reference.expert, "random": reference.random, "source": reference.source},
        "seeds": {"master": recipe.seed,
                  "episode_seed": "SeedSequence([master, source code, index]) >> 1"},
        # Behaviour policies act in float64 (spin_data/behaviour/policy.py); the OpenBLAS
        # kernels numpy ran the simulator's set-up and observations with (spin_data/blas.py).
        "numerics": {"behaviour_forward": "float64", "openblas_core": openblas},
        "warnings": warnings,
    }
    publish(location, metadata, workers=workers, staging_dir=staging,
            review=lambda returns: collected_expert_warnings(returns, reference))
    shutil.rmtree(staging, ignore_errors=True)
    timings["publish"] = time.perf_counter() - start

    from spin_data.store import open_dataset

    ds = open_dataset(location)
    returns = ds.metadata["returns"]
    normalised = {}
    if reference is not None:
        normalised = {s: reference.normalise(r["mean"]) for s, r in returns.items()}
    loc = parse_location(location)
    size = card = None
    if loc.kind in ("local", "zip"):
        target = Path(loc.target)
        size = (target.stat().st_size if target.is_file()
                else sum(f.stat().st_size for f in target.rglob("*") if f.is_file()))
    if loc.kind == "local":  # a directory store gets its dataset card (README.md, croissant.json)
        from spin_data.tools.card import write_card

        card = str(write_card(ds)[0])
    return {"location": location, "phases_s": timings, "returns": returns,
            "normalised": normalised, "size_bytes": size, "card": card,
            "warnings": list(ds.metadata.get("warnings", warnings)),
            "steps": ds.n_steps, "episodes": ds.n_episodes,
            "content_checksum": ds.content_checksum,
            "checkpoints_from": (behaviour_meta or {}).get("checkpoints_from")}


def collected_expert_warnings(returns: dict[str, dict[str, Any]],
                              reference: Any | None) -> list[str]:
    """A sentence when the episodes collected as "expert" score below the weak-expert line.

    The ladder picks its expert rung by a mean over a few evaluation episodes, which a task with
    noisy returns can flatter (fish-swim: 1.13 by its rung, 0.62 over 1,000 collected
    episodes); the collected episodes are the measure that counts, so they are checked too.
    """
    expert = returns.get("expert")
    if reference is None or not expert:
        return []
    score = reference.normalise(expert["mean"])
    if score >= WEAK_EXPERT_THRESHOLD:
        return []
    return [f"the {expert['episodes']} episodes collected as 'expert' return "
            f"{expert['mean']:.2f} on average, normalised {score:.3f} < {WEAK_EXPERT_THRESHOLD} "
            f"of the published expert ({reference.expert:.2f}): this is not expert data by the "
            "benchmark's measure (its ladder rung scored higher on its few evaluation episodes)"]


def format_summary(recipe: Recipe, summary: dict[str, Any]) -> str:
    """The end-of-run summary a person reads: returns per source, scores, size, time per phase."""
    lines = [f"published {summary['location']}: {summary['steps']:,} steps, "
             f"{summary['episodes']:,} episodes ({recipe.quality})"]
    for source, r in summary["returns"].items():
        norm = summary["normalised"].get(source)
        score = "" if norm is None else f"  normalised {norm:.3f}"
        lines.append(f"  {source:7s} {r['episodes']:6d} episodes  return {r['mean']:9.2f} "
                     f"+- {r['std']:.2f} (min {r['min']:.2f}, max {r['max']:.2f}){score}")
    lines.append(f"  content {summary['content_checksum']}")
    if summary.get("checkpoints_from"):
        lines.append(f"  behaviour checkpoints {summary['checkpoints_from']}")
    if summary["size_bytes"] is not None:
        lines.append(f"  store size {summary['size_bytes'] / 2**20:.1f} MiB")
    if summary.get("card"):
        lines.append(f"  dataset card {summary['card']} (and croissant.json)")
    lines.append("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in summary["phases_s"].items()))
    lines.extend(f"  warning: {w}" for w in summary["warnings"])
    return "\n".join(lines)
