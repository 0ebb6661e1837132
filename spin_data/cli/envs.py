"""``spin-data envs``: the registered environments, described by building them."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

import click

from spin_data.cli.group import main
from spin_data.cli.options import bins_option, grid_option
from spin_data.envs import registry
from spin_data.text import align_rows


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


@main.command()
@click.argument("names", nargs=-1)
@bins_option("Bins per action dimension for DMC tasks (mazes are always 2: off/on).",
             default=registry.DMC_DEFAULT_BINS)
@grid_option("DMC bin grid: each actuator's real bounds, or the benchmark's [-1, 1].",
             default="actuator")
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
