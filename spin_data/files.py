"""Files a reader never sees half-written, and work that only one process at a time may own.

The one home of spin's write-then-rename and lock helpers (behaviour runs, stage-1/2 runs and
pipeline steps all use them).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path


def replace_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A reader (or a run killed half-way) sees the old file or the new one, never a mix. The
    temporary name carries the process id, so two processes writing the same file do not write
    into each other's temporary file (the last rename wins). Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`replace_atomically`)."""
    return replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@contextlib.contextmanager
def exclusive_lock(lock_file: str | os.PathLike, busy: Callable[[], Exception]) -> Iterator[None]:
    """Hold an exclusive, non-blocking POSIX ``flock`` on ``lock_file`` for the block.

    An flock dies with its process, so a crashed owner never leaves a stale lock. When another
    process holds it, ``busy()`` is raised at once (no waiting). Without ``fcntl`` (not POSIX)
    the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy() from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
