"""``spin-data``: the user-facing commands of spin_data (library code lives in the subpackages)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from spin_data.envs import registry
from spin_data.envs.reference import SCORE_SCALES
from spin_data.text import align_rows, click_errors, one_line


def format_count(n: int) -> str:
    """An exact count for humans: ``729`` -> ``"729"``, ``3**21`` -> ``"1.05e10"`` (huge as 10^k)."""
    if n < 10_000_000:
        return f"{n:,}"
    exponent = len(str(n)) - 1
    mantissa = n / 10**exponent
    if round(mantissa, 2) >= 10:  # 9.999e9 rounds up to 1.00e10
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.2f}e{exponent}"


def env_row(name: str, bins: int, grid: str) -> dict[str, Any]:
    """Describe one environment by building it (so the numbers are the simulator's own)."""
    spec = registry.resolve(name)
    n_bins = bins if spec.family == "dmc" else 2
    env = registry.make_env(name, bins=n_bins, **({"grid": grid} if spec.family == "dmc" else {}))
    try:
        grid_ = env.get_wrapper_attr("bin_grid")
        ref = registry.reference_score(name, n_bins)
        return {
            "name": name,
            "task": spec.canonical,
            "obs_dim": int(env.observation_space.shape[0]),
            "sub_actions": grid_.n_dims,
            "bins": n_bins,
            "joint_actions": grid_.joint_size,
            "episode_steps": int(env.get_wrapper_attr("max_episode_steps")),
            "expert": None if ref is None else ref.expert,
            "random": None if ref is None else ref.random,
        }
    finally:
        env.close()


def render_table(rows: list[dict[str, Any]]) -> str:
    """Aligned plain-text table of :func:`env_row` rows."""
    headers = ["name", "task", "obs dim", "N", "bins", "joint actions", "episode", "ref expert",
               "ref random"]
    body = [
        [
            r["name"], r["task"], str(r["obs_dim"]), str(r["sub_actions"]), str(r["bins"]),
            format_count(r["joint_actions"]), str(r["episode_steps"]),
            "none published" if r["expert"] is None else f"{r['expert']:.2f}",
            "" if r["random"] is None else f"{r['random']:.2f}",
        ]
        for r in rows
    ]
    return align_rows([headers] + body, left={0, 1})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spin")
def main() -> None:
    """spin-data: discretised control tasks and offline datasets as Zarr stores."""
    # dm_control's model compiler logs deprecation notices through absl; they are not for users.
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)


@main.command()
@click.argument("names", nargs=-1)
@click.option("--bins", type=click.IntRange(min=2), default=3, show_default=True,
              help="Bins per action dimension for DMC tasks (mazes are always 2: off/on).")
@click.option("--grid", type=click.Choice(["actuator", "unit"]), default="actuator",
              show_default=True,
              help="DMC bin grid: each actuator's real bounds, or the benchmark's [-1, 1].")
@click.option("--suite", is_flag=True,
              help="Also list every dm_control suite task (any domain-task is accepted).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
def envs(names: tuple[str, ...], bins: int, grid: str, suite: bool, fmt: str) -> None:
    """List environments: observation dim, sub-actions N, bins, joint action-space size,
    episode length and reference scores (expert / random return).

    NAMES: environments to describe (default: every registered one), e.g. walker-walk maze-20.
    """
    for name in names:
        try:
            registry.resolve(name)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="NAMES") from None
    names = tuple(names) or tuple(spec.name for spec in registry.registered_envs())
    if suite:
        from spin_data.envs.dmc import suite_tasks

        canonical = {registry.resolve(n).canonical for n in names}
        names += tuple(t for t in suite_tasks() if t not in canonical)
    rows = [env_row(n, bins, grid) for n in names]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    else:
        click.echo(render_table(rows))
        click.echo(
            f"\nReference scores: undiscounted return of the benchmark's expert and uniform-random "
            f"policies at these bins ({registry.reference.BENCHMARK_SOURCE})."
        )


# ============================================================================= dataset tools
# The commands below are thin: the work is in spin_data.tools. Library errors become one
# line ("Error: <store>: <problem>") and exit 1; bad arguments exit 2 (click's usage errors).


def _store_errors() -> contextlib.AbstractContextManager[None]:
    """The store's and the tools' errors -> one-line click errors, no traceback."""
    from spin_data.envs.registry import UnknownEnvironment
    from spin_data.tools import PickleNotAllowed

    # DatasetOpenError, StoreLocationError, DatasetWriteError, ToolError, BinGridError are
    # ValueErrors; StagingExists is a RuntimeError; OSError: unreadable/unwritable.
    return click_errors(usage=(PickleNotAllowed,), parameters={UnknownEnvironment: "--env"})


def _check_bins(env_name: str, bins: int | None) -> None:
    """:func:`registry.check_bins` as a usage error of ``--bins`` (exit 2)."""
    try:
        registry.check_bins(env_name, bins)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--bins") from None


@main.command()
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--scale", type=click.Choice(SCORE_SCALES), default="fraction",
              show_default=True,
              help="Normalised scores as fractions (1 = expert) or x100 (D4RL/CORL's 0-100).")
def info(store: str, as_json: bool, scale: str) -> None:
    """Describe a dataset: id, env, quality, sizes, bins, returns per source, provenance.

    STORE: a store path or URL (directory, file://, .zip, s3://...).
    """
    from spin_data import tools
    from spin_data.store import open_dataset

    with _store_errors():
        ds = open_dataset(store)
        if as_json:
            click.echo(json.dumps(tools.info_dict(ds), indent=2))
        else:
            click.echo(tools.info_card(ds, scale=scale))


@main.command()
@click.argument("store")
def verify(store: str) -> None:
    """Re-hash every array and check the schema's invariants; exit 1 on any problem.

    STORE: a store path or URL.
    """
    from spin_data import tools

    with _store_errors():
        report = tools.verify(store)
    for problem in report.problems:
        click.echo(f"{store}: {problem}", err=True)
    if not report.ok:
        click.echo(f"FAILED: {store}: {len(report.problems)} problem(s) in "
                   f"{len(report.checks)} checks", err=True)
        raise SystemExit(1)
    click.echo(f"OK: {store}: {len(report.checks)} checks passed ({report.n_steps:,} steps, "
               f"{report.n_episodes:,} episodes)")


@main.command()
@click.argument("stores", nargs=-1, required=True)
@click.option("--out", required=True, help="Where to publish the combined store (must not exist).")
@click.option("--id", "dataset_id", default=None, help="Dataset id (default: the --out name).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes building shards while publishing.")
def combine(stores: tuple[str, ...], out: str, dataset_id: str | None, workers: int) -> None:
    """Publish a new store with every episode of STORES in order (e.g. medium + expert).

    The stores must share env, observation size and bin grid; they are only read.
    """
    from spin_data import tools

    if len(stores) < 2:
        raise click.BadParameter(f"combine needs at least two stores, got {len(stores)}",
                                 param_hint="STORES")
    with _store_errors():
        location = tools.combine(list(stores), out, dataset_id=dataset_id, workers=workers)
    click.echo(f"published {location}")


@main.command()
@click.argument("store")
@click.option("--format", "fmt", type=click.Choice(["npz", "minari"]), default="npz",
              show_default=True,
              help="npz: one file of D4RL-style arrays; minari: a Minari dataset (HDF5, extra "
                   ".[minari]) in the datasets directory --out.")
@click.option("--out", required=True,
              help="npz: the file to write; minari: the Minari datasets directory (load with "
                   "MINARI_DATASETS_PATH=<out>). Nothing existing is replaced.")
@click.option("--id", "dataset_id", default=None,
              help="Minari dataset id (default spin/<task>-<bins>bins/<quality>-v0).")
def export(store: str, fmt: str, out: str, dataset_id: str | None) -> None:
    """Export STORE as plain numeric arrays (loads with numpy, no pickle) or as Minari."""
    from spin_data import tools

    with _store_errors():
        if fmt == "minari":
            from spin_data.tools.minari_io import export_minari

            exported = export_minari(store, out, dataset_id=dataset_id)
            click.echo(f"wrote Minari dataset {exported} in {out} (load: MINARI_DATASETS_PATH="
                       f"{out} and minari.load_dataset({exported!r}))")
            return
        if dataset_id is not None:
            raise click.UsageError("--id applies to --format minari only")
        if os.path.isdir(out):
            raise click.BadParameter(f"{out} is a directory; npz writes one file",
                                     param_hint="--out")
        path = tools.export_npz(store, out)
    click.echo(f"wrote {path}")


@main.command()
@click.argument("store")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder to write README.md and croissant.json to (default: the store's own "
                   "directory; required for a .zip).")
@click.option("--license", "license_", default=None,
              help="License to record (an SPDX id or 'other'; spin cannot know it).")
@click.option("--url", default=None, help="Where the dataset is published, to record.")
def card(store: str, out: str | None, license_: str | None, url: str | None) -> None:
    """Write a dataset card for STORE: README.md (Hugging Face-style: task, sizes, returns,
    recipe, how to load it with spin, Minari and zarr) and croissant.json (MLCommons Croissant
    1.0 with every file's sha256)."""
    from spin_data.tools.card import write_card

    with _store_errors():
        readme, doc = write_card(store, out, license=license_, url=url)
    click.echo(f"wrote {readme}\nwrote {doc}")


@main.command(name="import")
@click.argument("source_path", metavar="SOURCE")
@click.option("--format", "fmt", type=click.Choice(["benchmark-pickle", "minari"]),
              default="benchmark-pickle", show_default=True,
              help="benchmark-pickle: a list of (s, a, r, s', done) tuples; minari: a Minari "
                   "dataset directory or local id (extra .[minari]).")
@click.option("--env", "env_name", default=None,
              help="Environment the data was collected on (needed unless spin exported it).")
@click.option("--bins", type=click.IntRange(min=2), default=None,
              help="Bins per action dimension (default: the env's, 3 for DMC, 2 for mazes).")
@click.option("--grid", type=click.Choice(["unit", "actuator"]), default="unit", show_default=True,
              help="DMC bin grid of the data: the benchmark's [-1, 1], or actuator bounds.")
@click.option("--out", required=True, help="Where to publish the store (must not exist).")
@click.option("--allow-pickle", is_flag=True,
              help="Permit unpickling PICKLE (it runs code from the file: trusted files only).")
@click.option("--source", type=click.Choice(["random", "medium", "expert", "other"]),
              default="other", show_default=True,
              help="Source code of every episode (benchmark pickles).")
@click.option("--actions", type=click.Choice(["auto", "indices", "values"]), default="auto",
              show_default=True,
              help="Actions in a pickle: bin indices, bin values, or auto (ints = indices).")
@click.option("--quantise", is_flag=True,
              help="Minari datasets with continuous (Box) actions: snap them to the nearest "
                   "bins (lossy).")
@click.option("--id", "dataset_id", default=None, help="Dataset id (default: the --out name).")
def import_(source_path: str, fmt: str, env_name: str | None, bins: int | None, grid: str,
            out: str, allow_pickle: bool, source: str, actions: str, quantise: bool,
            dataset_id: str | None) -> None:
    """Import SOURCE as a store: a benchmark pickle of (s, a, r, s', done) tuples (a done after
    exactly the env's time limit is a truncation, earlier a termination), or a Minari dataset.
    """
    from spin_data.envs import registry
    from spin_data import tools

    if fmt == "benchmark-pickle" and env_name is None:
        raise click.UsageError("Missing option '--env' (the environment of the pickle).")
    if fmt == "benchmark-pickle" and not allow_pickle:
        raise click.UsageError(f"{source_path}: refused: {tools.PICKLE_REFUSAL}")
    with _store_errors():
        family = registry.resolve(env_name).family if env_name else None
        if env_name:
            _check_bins(env_name, bins)
        if fmt == "minari":
            from spin_data.tools.minari_io import import_minari

            location, notes = import_minari(
                source_path, out, env_name=env_name, bins=bins,
                grid=grid if family == "dmc" else None, quantise=quantise,
                dataset_id=dataset_id)
            for note in notes:
                click.echo(f"warning: {note}", err=True)
        else:
            location = tools.import_benchmark_pickle(
                source_path, out, env_name=env_name, bins=bins, allow_pickle=True,
                source=source, grid=grid, actions=actions, dataset_id=dataset_id)
    click.echo(f"published {location}")


# ============================================================================= datasets
@main.command()
@click.option("--env", "env_name", default=None, help="Environment (registry name).")
@click.option("--quality", type=click.Choice(["random", "medium", "expert", "medium-expert",
                                             "random-medium-expert"]), default=None,
              help="Dataset quality (with --env; or give --recipe).")
@click.option("--recipe", "recipe_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Run this recipe file instead of the catalog's.")
@click.option("--bins", type=click.IntRange(min=2), default=None, help="Bins per dimension.")
@click.option("--size", type=click.IntRange(min=1), default=None, help="Transitions (full "
              "episodes; default: the quality's benchmark size).")
@click.option("--out", default=None, help="Store location (default: <data root>/<dataset name>).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Collection processes (each writes its own parts of the store).")
@click.option("--seed", type=int, default=None, help="Master seed (default: the recipe's).")
@click.option("--budget", default=None, help="Behaviour budget: test, default or env steps.")
@click.option("--algorithm", type=click.Choice(["sac", "tqc", "crossq", "ppo"]), default=None,
              help="Behaviour learner (default: the recipe's, else sac for DMC, ppo for mazes).")
@click.option("--library", type=click.Choice(["sb3", "sbx"]), default=None,
              help="Behaviour learner's library (default: the recipe's, else sbx when installed "
                   "for sac/tqc/crossq).")
@click.option("--deterministic/--stochastic", default=None,
              help="Behaviour policies act with their mode instead of sampling (default: the "
                   "recipe's; the catalog's recipes sample).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Run collection tasks in local processes or as Ray tasks.")
@click.option("--address", default=None,
              help="Ray cluster address (default: start a local Ray instance).")
@click.option("--overwrite", is_flag=True,
              help="Replace a local store at --out that holds a different dataset.")
@click.option("--discard", is_flag=True, help="Drop an interrupted generate at --out first.")
@click.option("--retrain", is_flag=True,
              help="Train the behaviour policies (or reuse the cache's) even where the catalogue "
                   "ships them (datasets/ladders/).")
def generate(env_name: str | None, quality: str | None, recipe_file: str | None,
             bins: int | None, size: int | None, out: str | None, workers: int,
             seed: int | None, budget: str | None, algorithm: str | None, library: str | None,
             deterministic: bool | None, backend: str, address: str | None, overwrite: bool,
             discard: bool, retrain: bool) -> None:
    """Make an offline dataset: behaviour policies (shipped in datasets/ladders/, else trained
    or reused from the cache), collect, publish a store.

    Resolves (--env, --quality, --bins) to the catalog's recipe in datasets/ (flags override it),
    or runs --recipe FILE.
    """
    from spin_data import generate as gen
    from spin_data import recipe as recipes
    from spin_data.store import discard as discard_staging
    from spin_data.store import open_dataset
    from spin_data.store.location import exists, parse_location

    if recipe_file is None and (env_name is None or quality is None):
        raise click.UsageError("give --env and --quality, or --recipe FILE")
    budget_value: str | int | None = budget
    if budget is not None and budget not in ("test", "default"):
        if not budget.isdigit() or int(budget) <= 0:
            raise click.BadParameter(f"{budget!r}: accepted test, default or a positive number "
                                     "of environment steps", param_hint="--budget")
        budget_value = int(budget)
    try:
        base = (recipes.Recipe.from_yaml(recipe_file) if recipe_file
                else recipes.find_recipe(env_name, quality, bins))
        recipe = base.with_overrides(env=env_name if recipe_file else None, quality=quality,
                                     bins=bins, size=size, seed=seed, budget=budget_value,
                                     algorithm=algorithm, library=library,
                                     deterministic=deterministic)
    except ValueError as err:
        raise click.BadParameter(one_line(err)) from None
    location = out or str(recipes.data_root() / recipe.name)
    with _store_errors():
        if discard:
            discard_staging(location)
        if exists(location):
            ds = open_dataset(location)
            same = ds.metadata.get("recipe", {}).get("seed") is not None and {
                k: v for k, v in ds.metadata["recipe"].items() if k != "source_steps"
            } == recipe.to_dict()
            if same:
                click.echo(f"{location} already holds this dataset ({ds.n_steps:,} steps); "
                           "nothing to do")
                return
            if not overwrite:
                raise click.ClickException(
                    f"{location} holds a different dataset ({ds.metadata.get('dataset_id')}); "
                    "pass --overwrite to replace it")
            target = parse_location(location)
            if target.kind != "local":
                raise click.ClickException(f"{location}: --overwrite replaces local directory "
                                           "stores only")
            import shutil

            shutil.rmtree(target.target)
        parts = ", ".join(f"{source} {n:,}" for source, n in recipe.source_steps().items())
        click.echo(f"generate {recipe.name}: {recipe.size:,} transitions ({parts}) -> {location}",
                   err=True)
        if any(source != "random" for source in recipe.mix):
            shipped = None if retrain else gen.shipped_policies(recipe)
            if shipped is not None:
                run, _, rungs = shipped
                picks = ", ".join(f"{source} step {r.step:,}" for source, r in rungs.items())
                click.echo(f"behaviour: shipped policies {run} ({picks}; sha256 checked); "
                           "no training (--retrain trains instead)", err=True)
            else:
                _announce_behaviour(gen.behaviour_config(recipe), None)
        _announce_collection(recipe, workers)
        with _resume_hint(lambda: "collected parts and any behaviour rungs are kept"):
            summary = gen.generate(recipe, location, workers=workers, backend=backend,
                                   address=address, retrain=retrain)
    click.echo(gen.format_summary(recipe, summary))


@main.command(name="list")
def list_datasets() -> None:
    """Show the recipe catalog (datasets/) and which datasets exist under the data root."""
    from spin_data import recipe as recipes

    root = recipes.data_root()
    rows = []
    for name, path in recipes.catalog().items():
        r = recipes.Recipe.from_yaml(path)
        made = (root / name / "zarr.json").exists()
        rows.append((name, r.quality, f"{r.size:,}", str(r.budget), "yes" if made else ""))
    headers = ("dataset", "quality", "size", "budget", "exists")
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    click.echo(f"\ncatalog: {recipes.catalog_dir()}   data root: {root} ($SPIN_DATA_ROOT)")


# ============================================================================= behaviour policies
def _parse_budget(value: str) -> str | int:
    """``--budget``: a preset name (test, default) or a positive number of env steps."""
    text = value.strip().lower().replace("_", "")
    if text in ("test", "default"):
        return text
    try:
        steps = int(float(text)) if "e" in text else int(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected test, default or a number of env steps", param_hint="--budget"
        ) from None
    if steps <= 0:
        raise click.BadParameter(f"{value!r}: the budget must be > 0 env steps",
                                 param_hint="--budget")
    return steps


def _announce_collection(recipe: Any, workers: int) -> None:
    """Before collecting: how long collection should take, from a few measured episodes."""
    from spin_data import generate as gen
    from spin_data.behaviour.estimate import format_duration

    rate = gen.collection_rate(recipe)
    parallel = max(1, min(workers, os.cpu_count() or 1))
    click.echo(f"collection: {recipe.size:,} steps on {parallel} worker(s), at least "
               f"{format_duration(recipe.size / (rate * parallel))} (this machine steps "
               f"{recipe.canonical_env} at {rate:,.0f} steps/s with random actions; the "
               "policies' forward pass comes on top)", err=True)


@contextlib.contextmanager
def _resume_hint(kept: Callable[[], str]) -> Iterator[None]:
    """Ctrl-C: say what was kept and that the same command resumes, then exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {kept()}; run the same command again to resume", err=True)
        sys.exit(130)


def _last_rung_text(config: Any, cache_dir: str | None) -> str:
    from spin_data.behaviour import load_ladder, run_directory

    run = run_directory(config, cache_dir)
    ladder = load_ladder(run)
    step = ladder.rungs[-1].step if ladder is not None and ladder.rungs else 0
    return f"the run is saved up to its last rung (step {step:,}) in {run}"


def _announce_behaviour(config: Any, cache_dir: str | None) -> None:
    """Before a behaviour run trains: what it will do and its measured projected time (stderr),
    with advice when that is long. Nothing for a run already complete in the cache."""
    from spin_data.behaviour import load_ladder, run_directory
    from spin_data.behaviour.estimate import estimate_training
    from spin_data.behaviour.resume import find_shorter_run

    run = run_directory(config, cache_dir)
    ladder = load_ladder(run)
    if ladder is not None and ladder.complete:
        click.echo(f"behaviour: {config.algorithm} ({config.library}) on "
                   f"{config.canonical_env}: complete in the cache", err=True)
        return
    if ladder is None:
        shorter = find_shorter_run(config, run.parent)
        if shorter is not None:
            ladder = shorter[1]
            click.echo(f"behaviour: extends the finished {ladder.budget:,}-step run "
                       f"{shorter[0].name} (same settings) from its last rung", err=True)
    click.echo("measuring this machine's training speed for the estimate (a few seconds) ...",
               err=True)
    done = ladder.rungs[-1].step if ladder is not None and ladder.rungs else 0
    estimate = estimate_training(config, steps_done=done,
                                 rungs_done=len(ladder.rungs) if ladder is not None else 0)
    click.echo(estimate.describe(), err=True)
    advice = estimate.advice()
    if advice:
        click.echo(advice, err=True)


@main.command(name="train-behaviour")
@click.option("--env", "env_name", required=True,
              help="Environment (cheetah, walker-walk, maze-5, ...).")
@click.option("--bins", type=click.IntRange(min=2), default=None,
              help="Bins per action dimension (default: the env's, 3 for DMC, 2 for mazes).")
@click.option("--grid", type=click.Choice(["actuator", "unit"]), default=None,
              help="DMC bin grid: actuator bounds, or the benchmark's [-1, 1] (default: unit, "
                   "the catalogue's, so that generate reuses the run).")
@click.option("--algorithm", type=click.Choice(["sac", "tqc", "crossq", "ppo"]), default=None,
              help="Learner (default: sac on the continuous view for DMC, ppo for mazes).")
@click.option("--library", type=click.Choice(["sb3", "sbx"]), default=None,
              help="sb3 (torch) or sbx (JAX, extra .[sbx]); default: sbx for sac/tqc/crossq when "
                   "installed, else sb3; ppo: sb3.")
@click.option("--budget", default="default", show_default=True,
              help="Training env steps: a preset (test: seconds; default: realistic, hours for "
                   "DMC) or a number.")
@click.option("--seed", type=int, default=0, show_default=True, help="Learner and env seed.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Directory of runs (default: $SPIN_CACHE_DIR/behaviour, ~/.cache/spin/behaviour).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--dry-run", is_flag=True,
              help="Only say what the run would do and how long it should take here (a few "
                   "seconds of measured training), then exit.")
def train_behaviour_command(env_name: str, bins: int | None, grid: str | None,
                            algorithm: str | None,
                            budget: str, seed: int, cache_dir: str | None,
                            no_progress: bool, library: str | None, dry_run: bool) -> None:
    """Train a behaviour policy into a checkpoint ladder (cached and resumable).

    Prints the ladder (expert and medium rungs marked) and the run directory. Running the same
    command again returns the cached ladder at once; an interrupted run resumes from its last
    rung.
    """
    from spin_data.behaviour import preset, run_directory, train_behaviour

    steps = _parse_budget(budget)
    try:
        spec = registry.resolve(env_name)
    except ValueError as err:
        raise click.BadParameter(one_line(err), param_hint="--env") from None
    _check_bins(env_name, bins)
    if spec.family == "maze" and grid not in (None, "actuator"):
        raise click.BadParameter("grid applies to DMC tasks only", param_hint="--grid")
    grid = grid or ("unit" if spec.family == "dmc" else "actuator")
    try:
        config = preset(env_name, steps, bins=bins, grid=grid, algorithm=algorithm,
                        library=library, seed=seed)
    except ValueError as err:
        raise click.UsageError(one_line(err)) from None
    with _store_errors():
        _announce_behaviour(config, cache_dir)
        if dry_run:
            return
        with _resume_hint(lambda: _last_rung_text(config, cache_dir)):
            ladder = train_behaviour(config, cache_dir=cache_dir, progress=not no_progress)
    click.echo(ladder.table())
    expert = ladder.expert()
    score = ladder.normalised(expert.estimate)
    click.echo(f"\nexpert: step {expert.step:,}, return {expert.estimate:.2f} over "
               f"{len(expert.confirm_returns or expert.returns)} episodes"
               + ("" if score is None else f", normalised {score:.3f}"))
    warning = ladder.warning()
    if warning:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"run: {run_directory(config, cache_dir)}")
    if ladder.extended_from:
        click.echo(f"(extended from the shorter run {config.canonical_env}-"
                   f"{ladder.extended_from})")


@main.command(name="ship-behaviour")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--to", "dest", type=click.Path(file_okay=False), default=None,
              help="Folder to ship into (default: <catalog>/ladders/<task>-<bins>bins-"
                   "<algorithm>-<library>).")
def ship_behaviour_command(run: str, dest: str | None) -> None:
    """Ship a finished behaviour run (the RUN folder train-behaviour prints) into the catalogue:
    its ladder, and its expert and medium checkpoints as safetensors, for generate to use.
    Every rung's sha256 is re-derived from its weights."""
    import json
    from pathlib import Path

    from spin_data.behaviour import BehaviourConfig
    from spin_data.behaviour.shipped import ladders_dir, ship_run, shipped_name

    with _store_errors():
        try:
            config = BehaviourConfig.from_dict(json.loads((Path(run) / "config.json").read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise click.ClickException(f"{run}: not a behaviour run directory ({one_line(err)})"
                                       ) from None
        target = Path(dest) if dest else ladders_dir() / shipped_name(config)
        ladder = ship_run(run, target)
    shipped = sorted(p.name for p in (target / "checkpoints").glob("*"))
    click.echo(f"shipped {config.canonical_env} ({ladder.cache_key}) to {target}: "
               f"{', '.join(shipped)}")


if __name__ == "__main__":  # pragma: no cover
    main()
