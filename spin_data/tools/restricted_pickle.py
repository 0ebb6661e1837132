"""The only unpickling in spin: a restricted unpickler for the benchmark's own pickles.

It refuses every global but the few numpy needs to rebuild arrays and scalars, and it runs only
when the caller passed ``allow_pickle=True`` (``--allow-pickle``): unpickling a file runs code
from it. Security code: keep it small and keep it here.
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import Any, Sequence

import numpy as np

from spin_data.tools.base import ToolError


class PickleNotAllowed(ToolError):
    """Importing a pickle was asked for without explicit permission to unpickle."""


PICKLE_REFUSAL = (
    "unpickling runs code from the file: only import pickles you trust; pass --allow-pickle "
    "(allow_pickle=True)"
)


def _numpy_attr(module_names: Sequence[str], name: str) -> Any:
    """``name`` from the first of ``module_names`` that exists (numpy 1.x vs 2.x layouts)."""
    for module in module_names:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {module_names} has {name}")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Every global a pickle of numpy arrays, numpy scalars and plain Python values needs.

    Keyed by the (module, name) a pickle may spell - numpy 1.x pickles say ``numpy.core``, numpy
    2.x ones ``numpy._core`` - and resolved here to this numpy's objects, so find_class never
    imports a module named by the file.
    """
    multiarray = ("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = ("numpy._core.numeric", "numpy.core.numeric")
    reconstruct = _numpy_attr(multiarray, "_reconstruct")  # ndarray.__reduce__ (protocol <= 4)
    scalar = _numpy_attr(multiarray, "scalar")  # numpy scalars (np.float32(1.0), np.bool_)
    frombuffer = _numpy_attr(numeric, "_frombuffer")  # ndarray.__reduce_ex__ (protocol 5)
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray,
                                           ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    # Protocol 0-2 pickles spell bytes as _codecs.encode(text, "latin1"); allow only that codec.
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only numpy arrays/scalars and plain Python values.

    Any other global (``os.system``, ``builtins.eval``, a class of some package...) is refused
    before it is looked up, so a hostile file cannot run its payload through ``find_class``.
    """

    def __init__(self, file: io.BufferedIOBase, *, source: str) -> None:
        # latin1: how numpy's Python 2 pickles spell array bytes; Python 3 pickles never use it.
        super().__init__(file, encoding="latin1")
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self._source}: refused to load global {module}.{name}: a benchmark pickle may "
                f"hold only numpy arrays, numpy scalars and plain Python values"
            ) from None


