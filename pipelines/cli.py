"""``spin-pipeline``: run a pipeline file (datasets -> pre-training -> policies -> report).

    spin-pipeline run pipelines/quickstart.yaml                  # local, one step at a time
    spin-pipeline run pipelines/quickstart.yaml --workers 2      # local process pool
    spin-pipeline run pipelines/table1.yaml --executor ray --address auto
    spin-pipeline run pipelines/table1.yaml --dry-run            # the graph and the work left

Errors are one line, never a traceback: a bad command line or pipeline file exits 2 (before any
work starts), a failed step exits 1 (its log is named), an interrupted run exits 130 (run the
same command again to resume).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from spin_data.text import one_line


class _OneLineErrors(click.Group):
    """A click group whose errors are one line on stderr: usage errors exit 2, others 1."""

    def main(self, args: Any = None, prog_name: str | None = None, **kwargs: Any) -> Any:
        kwargs.pop("standalone_mode", None)
        try:
            return super().main(args=args, prog_name=prog_name or "spin-pipeline",
                                standalone_mode=False, **kwargs)
        except click.exceptions.Exit as exit_:
            sys.exit(exit_.exit_code)
        except click.UsageError as err:
            click.echo(f"spin-pipeline: error: {one_line(err.format_message())}", err=True)
            sys.exit(2)
        except click.ClickException as err:
            click.echo(f"spin-pipeline: error: {one_line(err.format_message())}", err=True)
            sys.exit(err.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("spin-pipeline: interrupted; run the same command again to resume "
                       "(finished steps are kept)", err=True)
            sys.exit(130)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spin")
def main() -> None:
    """spin-pipeline: declarative end-to-end runs - datasets, SPIN pre-training, policies and
    baselines over seeds, and a report - locally or on a Ray cluster."""


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


@main.command()
@click.argument("pipeline_file", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Run steps in local processes or as Ray tasks.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local executor: steps run at once (1: in this process, one at a time; N: "
                   "a pool of N spawned processes).")
@click.option("--address", default=None,
              help="Ray executor: cluster address ('auto': the running cluster; default: a "
                   "new local Ray instance).")
@click.option("--out", default=None, help="Output root (default: the file's 'out:', else "
                                          "runs/pipelines/<name>).")
@click.option("--dry-run", is_flag=True, help="Print the step graph, what is done and the "
                                              "estimated work; run nothing.")
@click.option("--keep-going", is_flag=True,
              help="After a step fails, go on with every step that does not need it.")
@click.option("--heartbeat", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds between progress lines about running steps (0: none).")
def run(pipeline_file: str, executor: str, workers: int, address: str | None,
        out: str | None, dry_run: bool, keep_going: bool, heartbeat: float) -> None:
    """Run the pipeline in FILE: every step whose outputs are not already there for the same
    inputs, each as soon as the steps it reads are complete. Interrupted? Run it again."""
    from pipelines.graph import build_graph, describe
    from pipelines.spec import PipelineError
    from pipelines.validate import load_pipeline

    if address is not None and executor != "ray":
        raise click.UsageError("--address is for --executor ray")
    if workers > 1 and executor == "ray":
        raise click.UsageError("--workers is for the local executor (Ray runs as many steps "
                               "as its resources allow)")
    try:
        pipeline = load_pipeline(pipeline_file, out=out)
        graph = build_graph(pipeline)
    except PipelineError as err:
        raise click.UsageError(str(err)) from None
    if dry_run:
        click.echo(describe(graph))
        return
    _run(graph, executor, workers, address, keep_going, heartbeat)


def _run(graph, executor_kind: str, workers: int, address: str | None, keep_going: bool,
         heartbeat: float) -> None:
    from pipelines.executors import Progress, make_executor, run_pipeline

    try:
        executor = make_executor(executor_kind, workers, address)
    except ImportError:
        raise click.ClickException("the Ray executor needs Ray: pip install 'spin[ray]'"
                                   ) from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise click.ClickException(f"cannot start the {executor_kind} executor: "
                                   f"{one_line(err)}") from None
    p = graph.pipeline
    click.echo(f"pipeline {p.name}: {len(graph.steps)} steps on {executor.label} -> {p.out}")
    progress = Progress(total=len(graph.steps), heartbeat_s=heartbeat)
    result = run_pipeline(graph, executor, progress=progress, keep_going=keep_going)
    took = _duration(result.seconds)
    if not result.ok:
        waiting = len(graph.steps) - len(result.ran) - len(result.skipped) - len(result.failed)
        name, error = next(iter(result.failed.items()))
        raise click.ClickException(
            f"pipeline {p.name}: {len(result.failed)} step(s) failed after {took} "
            f"({len(result.ran)} ran, {len(result.skipped)} done earlier, {waiting} not run); "
            f"first: {name}: {error} (log: {graph.steps[name].dir / 'log.txt'})")
    report = graph.report_step()
    click.echo(f"pipeline {p.name}: all {len(graph.steps)} steps complete in {took} "
               f"({len(result.ran)} ran, {len(result.skipped)} done earlier)")
    if report is not None:
        outputs = (result.records.get("report") or {}).get("outputs") or {}
        if outputs.get("table"):
            click.echo("\n" + outputs["table"] + "\n")
        click.echo(f"report: {report.dir / 'report.md'} "
                   f"(learning curves: {report.dir / 'learning_curves.png'})")


if __name__ == "__main__":
    main()
