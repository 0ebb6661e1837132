"""The dataset tools' commands: ``info``, ``verify``, ``combine``, ``export``, ``card``, ``import``.

They are thin: the work is in :mod:`spin_data.tools`.
"""

from __future__ import annotations

import json
import os

import click

from spin_data.cli.common import check_bins, store_errors
from spin_data.cli.group import main
from spin_data.cli.options import bins_option, grid_option
from spin_data.envs.reference import SCORE_SCALES
from spin_data.store import schema
from spin_data.tools.benchmark_import import ACTION_ENCODINGS


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

    with store_errors():
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

    with store_errors():
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
    with store_errors():
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

    with store_errors():
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

    with store_errors():
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
@bins_option()
@grid_option("DMC bin grid of the data: the benchmark's [-1, 1], or actuator bounds.",
             default="unit")
@click.option("--out", required=True, help="Where to publish the store (must not exist).")
@click.option("--allow-pickle", is_flag=True,
              help="Permit unpickling PICKLE (it runs code from the file: trusted files only).")
@click.option("--source", type=click.Choice(schema.SOURCES), default="other", show_default=True,
              help="Source code of every episode (benchmark pickles).")
@click.option("--actions", type=click.Choice(ACTION_ENCODINGS), default="auto", show_default=True,
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
    with store_errors():
        family = registry.resolve(env_name).family if env_name else None
        if env_name:
            check_bins(env_name, bins)
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
