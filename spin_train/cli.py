"""``spin-train``: the user-facing commands of spin_train (SPIN stage 1 and stage 2).

Commands are thin: options are generated from the library's config dataclasses
(:mod:`spin_train.options`) and the work happens in the library. Bad arguments exit 2 with one
line (click's usage errors); problems with files (a store that is not a dataset, a run
directory holding another run, a checkpoint that is not spin's) exit 1 with one line.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Callable

import click

from spin_data.envs.reference import SCORE_SCALES
from spin_data.text import click_errors, one_line
from spin_train.options import config_options, given


def _run_config(cls: type, kwargs: dict[str, Any], run: Callable[[Any], Any],
                required: tuple[str, ...] = ("dataset",)) -> Any:
    """``run(cls(**options given))``: a missing required option or a config's validation error
    is a usage error (exit 2; generated options default to None, so click cannot check), a
    run's own error one line (:func:`_run_errors`)."""
    for name in required:
        if kwargs.get(name) is None:
            raise click.UsageError(f"Missing option '--{name}'")
    try:
        cfg = cls(**given(kwargs))
    except (ValueError, TypeError) as err:
        raise click.UsageError(one_line(err)) from None
    with _run_errors():
        return run(cfg)


def _run_errors() -> contextlib.AbstractContextManager[None]:
    """Library errors -> one-line click errors: a bad --device exits 2, the others 1."""
    from spin_train.device import DeviceError

    return click_errors(parameters={DeviceError: "--device"},
                        failures=(ValueError, RuntimeError, OSError, KeyError))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spin")
def main() -> None:
    """spin-train: SPIN's Action Structure Model pre-training and policy training on spin
    datasets (Zarr stores written by spin-data)."""


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------------------ stage 1
from spin_train.pretrain.objectives import OBJECTIVES  # noqa: E402
from spin_train.pretrain.trainer import PretrainConfig  # noqa: E402
from spin_train.probe import ProbeConfig  # noqa: E402


@main.command()
@config_options(PretrainConfig, choices={"objective": OBJECTIVES})
def pretrain(**kwargs: Any) -> None:
    """Stage 1: pre-train the Action Structure Model on a dataset's (state, action) pairs.

    Writes a run directory (config.json, metrics.csv/jsonl, checkpoints/, asm.pt, asm.json).
    Running the same command again resumes the run where it stopped (or reports it done);
    --epochs may be raised to train on.
    """
    from spin_train.pretrain.trainer import pretrain as run

    result = _run_config(PretrainConfig, kwargs, run)
    m = result.final_metrics
    click.echo(f"run directory: {result.run_dir}")
    click.echo(f"ASM weights:   {result.asm_path} (epoch {result.chosen_epoch} of "
               f"{result.epochs_run}{', stopped early' if result.stopped_early else ''})")
    click.echo(f"wall-clock:    {result.wall_clock_s:.1f} s")
    shown = ["train_loss", "val_loss", "val_masked_acc", "val_slot_acc", "val_exact_match"]
    click.echo("final:         " + ", ".join(f"{k} {_fmt(m[k])}" for k in shown if k in m))


@main.command()
@config_options(ProbeConfig)
@click.option("--json", "as_json", is_flag=True, help="print the whole report as JSON")
def probe(as_json: bool, **kwargs: Any) -> None:
    """Linear probe (SPIN section 6.2): frozen ASM trunk, new queries and linear heads predict
    dataset actions from states; per-slot, exact-match and independence-expected accuracy."""
    from spin_train.probe import probe as run

    report = _run_config(ProbeConfig, kwargs, run, required=("asm", "dataset"))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    kind = "random-init trunk" if report["random_init"] else f"ASM ({report['asm_epochs']} epochs)"
    click.echo(f"probe of {kind} on {report['rows']} held-out steps")
    click.echo(f"  per-slot accuracy:          {report['slot_accuracy']:.4f}")
    click.echo(f"  exact-match accuracy:       {report['exact_match']:.4f}")
    click.echo(f"  exact-match if independent: {report['exact_match_if_independent']:.4f}")
    click.echo(f"  chance exact-match:         {report['chance_exact_match']:.3g}")
    click.echo(f"report: {report['report_path']}")



# ------------------------------------------------------------------------------ stage 2
from spin_train.algos import ALGO_NAMES  # noqa: E402
from spin_train.policy.trainer import CHOICES, POLICY_ACTORS, PolicyConfig  # noqa: E402


@main.command()
@config_options(PolicyConfig, choices={"actor": POLICY_ACTORS, "algo": ALGO_NAMES, **CHOICES})
def policy(**kwargs: Any) -> None:
    """Stage 2: train an actor (spin on a frozen ASM, or a baseline) with IQL / AWAC / BCQ, or
    MERLION (--actor merlion) and the joint-action baselines (--actor joint) with BCQ / CQL / BC.

    Evaluates every --eval-every steps in the real environment; writes a run directory
    (config.json, metrics.csv/jsonl, checkpoints/, policy.pt, learning_curve.png). Running the
    same command again resumes the run.
    """
    from spin_train.policy.trainer import train_policy

    result = _run_config(PolicyConfig, kwargs, train_policy)
    f = result.final
    click.echo(f"run directory: {result.run_dir}")
    if f:
        norm = f.get("eval_normalised")
        click.echo(f"step {f['step']}: return {f['eval_return_mean']:.2f} +- "
                   f"{f['eval_return_std']:.2f}"
                   + (f" (normalised {norm:.3f})" if norm is not None else "")
                   + f", wall-clock {f['wall_clock_s']:.1f} s")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--target", type=float, default=None,
              help="target return; default: the mean final return of the factored runs of the "
                   "same dataset and algo (the paper's F-IQL target), else the reference expert")
@click.option("--target-from", "target_from", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="a run directory (repeatable) whose factored runs set the targets instead of "
                   "the compared ones, e.g. F-IQL trained to its asymptote for Table 4")
@click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), default=0.95,
              show_default=True, help="time to target = first evaluation >= fraction * target")
@click.option("--at-step", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="report the fraction of the target reached after this many steps")
@click.option("--last", type=click.IntRange(min=1), default=1, show_default=True,
              help="a run's final return is the mean of its last N evaluations")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="learning curves PNG (default: compare.png in the current directory)")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="also write the table as CSV (scores always as fractions)")
@click.option("--scale", type=click.Choice(SCORE_SCALES), default="fraction",
              show_default=True,
              help="normalised scores as fractions (1 = expert) or x100 (D4RL/CORL's 0-100)")
def compare(run_dirs: tuple[str, ...], target: float | None, target_from: tuple[str, ...],
            fraction: float, at_step: int, last: int, plot_path: str | None,
            csv_path: str | None, scale: str) -> None:
    """Compare stage-2 runs: final return (mean +- std over seeds), time to target, fraction of
    the target after --at-step steps (paper Table 4), and their learning curves on one figure."""
    from spin_train import report

    with _run_errors():
        result = report.compare(run_dirs, target=target, fraction=fraction, at_step=at_step,
                                last=last, target_runs=target_from or None)
        click.echo(report.format_table(result, scale))
        png = report.plot_learning_curves(run_dirs, plot_path or "compare.png")
        click.echo(f"learning curves: {png}")
        if csv_path:
            click.echo(f"table: {report.write_csv(result, csv_path)}")


if __name__ == "__main__":  # pragma: no cover
    main()
