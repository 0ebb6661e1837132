"""Dataset commands: ``generate`` (recipe -> behaviour -> collection -> store) and ``list``."""

from __future__ import annotations

import os
from typing import Any

import click

from spin_data.cli.behaviour import announce_behaviour
from spin_data.cli.common import resume_hint, store_errors
from spin_data.cli.group import main
from spin_data.cli.options import algorithm_option, bins_option, library_option
from spin_data.generate import BACKENDS
from spin_data.recipe import QUALITIES
from spin_data.text import one_line


@main.command()
@click.option("--env", "env_name", default=None, help="Environment (registry name).")
@click.option("--quality", type=click.Choice(QUALITIES), default=None,
              help="Dataset quality (with --env; or give --recipe).")
@click.option("--recipe", "recipe_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Run this recipe file instead of the catalog's.")
@bins_option("Bins per dimension.")
@click.option("--size", type=click.IntRange(min=1), default=None, help="Transitions (full "
              "episodes; default: the quality's benchmark size).")
@click.option("--out", default=None, help="Store location (default: <data root>/<dataset name>).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Collection processes (each writes its own parts of the store).")
@click.option("--seed", type=int, default=None, help="Master seed (default: the recipe's).")
@click.option("--budget", default=None, help="Behaviour budget: test, default or env steps.")
@algorithm_option("Behaviour learner (default: the recipe's, else sac for DMC, ppo for mazes).")
@library_option("Behaviour learner's library (default: the recipe's, else sbx when installed "
                "for sac/tqc/crossq).")
@click.option("--deterministic/--stochastic", default=None,
              help="Behaviour policies act with their mode instead of sampling (default: the "
                   "recipe's; the catalog's recipes sample, except noisy ones).")
@click.option("--random-action-prob", type=float, default=None,
              help="Probability in [0, 1] that a behaviour action is replaced by a uniform "
                   "random joint action (default: the recipe's; 0.5 for noisy, else 0).")
@click.option("--backend", type=click.Choice(BACKENDS), default="local",
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
             deterministic: bool | None, random_action_prob: float | None, backend: str,
             address: str | None, overwrite: bool, discard: bool, retrain: bool) -> None:
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
                                     deterministic=deterministic,
                                     random_action_prob=random_action_prob)
    except ValueError as err:
        raise click.BadParameter(one_line(err)) from None
    location = out or str(recipes.data_root() / recipe.name)
    with store_errors():
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
                announce_behaviour(gen.behaviour_config(recipe), None)
        _announce_collection(recipe, workers)
        with resume_hint(lambda: "collected parts and any behaviour rungs are kept"):
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
