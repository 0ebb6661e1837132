"""What the commands share: library errors as one-line click errors, and the Ctrl-C hint.

Library errors become one line ("Error: <store>: <problem>") and exit 1; bad arguments exit 2
(click's usage errors).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import click

from spin_data.envs import registry
from spin_data.text import click_errors


def store_errors() -> contextlib.AbstractContextManager[None]:
    """The store's and the tools' errors -> one-line click errors, no traceback."""
    from spin_data.envs.registry import UnknownEnvironment
    from spin_data.tools import PickleNotAllowed

    # DatasetOpenError, StoreLocationError, DatasetWriteError, ToolError, BinGridError are
    # ValueErrors; StagingExists is a RuntimeError; OSError: unreadable/unwritable.
    return click_errors(usage=(PickleNotAllowed,), parameters={UnknownEnvironment: "--env"})


def check_bins(env_name: str, bins: int | None) -> None:
    """:func:`registry.check_bins` as a usage error of ``--bins`` (exit 2)."""
    try:
        registry.check_bins(env_name, bins)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--bins") from None


def check_grid(env_name: str, grid: str | None) -> None:
    """:func:`registry.check_grid` as a usage error of ``--grid`` (exit 2)."""
    try:
        registry.check_grid(env_name, grid)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--grid") from None


@contextlib.contextmanager
def resume_hint(kept: Callable[[], str]) -> Iterator[None]:
    """Ctrl-C: say what was kept and that the same command resumes, then exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {kept()}; run the same command again to resume", err=True)
        sys.exit(130)
