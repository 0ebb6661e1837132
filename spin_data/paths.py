"""Where spin keeps its caches on this machine: one root, ``$SPIN_CACHE_DIR``.

Under it, each cache has its own folder: ``behaviour/`` (behaviour-policy runs, see
:func:`spin_data.behaviour.default_cache_dir`) and ``datasets/`` (spin_train's local copies of
stores, see ``spin_train.data.default_cache_dir``).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$SPIN_CACHE_DIR`` (unset or empty: ``~/.cache/spin``)."""
    root = os.environ.get("SPIN_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "spin"
