"""Text for people: one-line error messages and aligned plain-text tables (the CLIs and
reports of spin_data, spin_train and pipelines all print through these)."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence

import click


def one_line(err: BaseException | str) -> str:
    """An error (or message) as one line: whitespace runs collapsed; the type's name if empty."""
    text = err if isinstance(err, str) else str(err)
    return " ".join(text.split()) or (type(err).__name__ if not isinstance(err, str) else "")


@contextlib.contextmanager
def click_errors(*, usage: tuple[type[BaseException], ...] = (),
                 parameters: Mapping[type[BaseException], str | None] | None = None,
                 failures: tuple[type[BaseException], ...] = (ValueError, RuntimeError, OSError),
                 ) -> Iterator[None]:
    """A CLI command's library errors as one-line click errors, never a traceback.

    ``usage`` errors exit 2 (click's usage error); an error of a ``parameters`` key is a bad
    value of that option (``--env``...; exit 2); ``failures`` exit 1 (``Error: <one line>``).
    click's own exceptions and anything else (a bug) pass through unchanged.
    """
    try:
        yield
    except BaseException as err:
        if isinstance(err, (click.exceptions.ClickException, click.exceptions.Exit,
                            click.exceptions.Abort)):
            raise
        if isinstance(err, usage):
            raise click.UsageError(one_line(err)) from None
        for kind, hint in (parameters or {}).items():
            if isinstance(err, kind):
                raise click.BadParameter(one_line(err), param_hint=hint) from None
        if isinstance(err, failures):
            raise click.ClickException(one_line(err)) from None
        raise


def align_rows(rows: Sequence[Sequence[str]], left: Collection[int], rule: bool = True) -> str:
    """Rows of cells (the first is the header) as aligned text.

    Columns whose index is in ``left`` are left-aligned, the others (numbers) right-aligned;
    ``rule`` draws a line of dashes under the header. Trailing spaces are stripped.
    """
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [cell.ljust(w) if c in left else cell.rjust(w)
                 for c, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if rule and i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
