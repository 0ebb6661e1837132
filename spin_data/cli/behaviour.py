"""Behaviour-policy commands: ``train-behaviour`` and ``ship-behaviour``."""

from __future__ import annotations

from typing import Any

import click

from spin_data.cli.common import check_bins, check_grid, resume_hint, store_errors
from spin_data.behaviour.config import BehaviourConfig
from spin_data.cli.group import main
from spin_data.cli.options import (algorithm_option, bins_option, field_default, grid_option,
                                   library_option)
from spin_data.envs import registry
from spin_data.recipe import Recipe
from spin_data.text import one_line


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


def _parse_overrides(values: tuple[str, ...]) -> dict[str, Any]:
    """``--set KEY=VALUE`` (repeatable): VALUE is read as JSON (``128``, ``3e-4``,
    ``[512,512]``, ``true``), else kept as text (``auto``)."""
    import json

    params: dict[str, Any] = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. batch_size=128",
                                     param_hint="--set")
        try:
            params[key.strip()] = json.loads(text)
        except ValueError:
            params[key.strip()] = text.strip()
    return params


def _last_rung_text(config: Any, cache_dir: str | None) -> str:
    from spin_data.behaviour import load_ladder, run_directory

    run = run_directory(config, cache_dir)
    ladder = load_ladder(run)
    step = ladder.rungs[-1].step if ladder is not None and ladder.rungs else 0
    return f"the run is saved up to its last rung (step {step:,}) in {run}"


def announce_behaviour(config: Any, cache_dir: str | None) -> None:
    """Before a behaviour run trains: what it will do and its measured projected time (stderr),
    with advice when that is long. Nothing for a run already complete in the cache."""
    from spin_data.behaviour import load_ladder, run_directory
    from spin_data.behaviour.estimate import estimate_training
    from spin_data.behaviour.resume import find_longer_run, find_shorter_run

    run = run_directory(config, cache_dir)
    ladder = load_ladder(run)
    if ladder is not None and ladder.complete:
        click.echo(f"behaviour: {config.algorithm} ({config.library}) on "
                   f"{config.canonical_env}: complete in the cache", err=True)
        return
    if ladder is None:
        longer = find_longer_run(config, run.parent)
        if longer is not None:
            click.echo(f"behaviour: {config.algorithm} ({config.library}) on "
                       f"{config.canonical_env}: the first {config.budget:,} steps of the "
                       f"{longer[1].budget:,}-step run {longer[0].name} (same settings), which "
                       "has scored that rung; nothing to train, its rungs are confirmed",
                       err=True)
            return
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
@bins_option()
@grid_option("DMC bin grid: actuator bounds, or the benchmark's [-1, 1] (default: unit, the "
             "catalogue's, so that generate reuses the run).")
@algorithm_option("Learner (default: sac on the continuous view for DMC, ppo for mazes).")
@library_option("sb3 (torch) or sbx (JAX, extra .[sbx]); default: sbx for sac/tqc/crossq when "
                "installed, else sb3; ppo: sb3.")
# A recipe's budget is the behaviour run's: the same setting, with the recipe's default.
@click.option("--budget", default=field_default(Recipe, "budget"), show_default=True,
              help="Training env steps: a preset (test: seconds; default: realistic, hours for "
                   "DMC) or a number.")
@click.option("--seed", type=int, default=field_default(BehaviourConfig, "seed"),
              show_default=True, help="Learner and env seed.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Directory of runs (default: $SPIN_CACHE_DIR/behaviour, ~/.cache/spin/behaviour).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one of the learner's hyperparameters (repeatable; VALUE as JSON: "
                   "--set batch_size=128 --set net_arch=[512,512]). The keys are the "
                   "algorithm's defaults in spin_data/behaviour/config.py; a changed value is "
                   "another run, with its own cache key.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--dry-run", is_flag=True,
              help="Only say what the run would do and how long it should take here (a few "
                   "seconds of measured training), then exit.")
def train_behaviour_command(env_name: str, bins: int | None, grid: str | None,
                            algorithm: str | None,
                            budget: str, seed: int, cache_dir: str | None,
                            no_progress: bool, library: str | None, dry_run: bool,
                            overrides: tuple[str, ...]) -> None:
    """Train a behaviour policy into a checkpoint ladder (cached and resumable).

    Prints the ladder (expert and medium rungs marked) and the run directory. Running the same
    command again returns the cached ladder at once; an interrupted run resumes from its last
    rung.
    """
    from spin_data.behaviour import preset, run_directory, train_behaviour

    steps = _parse_budget(budget)
    hyperparameters = _parse_overrides(overrides)
    try:
        spec = registry.resolve(env_name)
    except ValueError as err:
        raise click.BadParameter(one_line(err), param_hint="--env") from None
    check_bins(env_name, bins)
    check_grid(env_name, grid)
    grid = grid or ("unit" if spec.family == "dmc" else "actuator")
    try:
        config = preset(env_name, steps, bins=bins, grid=grid, algorithm=algorithm,
                        library=library, seed=seed, hyperparameters=hyperparameters)
    except ValueError as err:
        raise click.UsageError(one_line(err)) from None
    with store_errors():
        announce_behaviour(config, cache_dir)
        if dry_run:
            return
        with resume_hint(lambda: _last_rung_text(config, cache_dir)):
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
    if ladder.cut_from:
        click.echo(f"(cut from the longer run {config.canonical_env}-{ladder.cut_from})")
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

    from spin_data.behaviour.shipped import ladders_dir, ship_run, shipped_name

    with store_errors():
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
