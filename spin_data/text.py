"""Text for people: one-line error messages and aligned plain-text tables (the CLIs and
reports of spin_data, spin_train and pipelines all print through these)."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def one_line(err: BaseException | str) -> str:
    """An error (or message) as one line: whitespace runs collapsed; the type's name if empty."""
    text = err if isinstance(err, str) else str(err)
    return " ".join(text.split()) or (type(err).__name__ if not isinstance(err, str) else "")


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
