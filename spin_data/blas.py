"""numpy's OpenBLAS kernels, pinned so that a dataset is the same bytes on every x86-64 CPU.

dm_control's tasks call numpy's BLAS while they simulate: fish's reset normalises a random
quaternion with ``np.linalg.norm``, its ``target`` observation is a ``dot`` with a rotation
matrix, humanoid's extremities are ``dot`` products too. OpenBLAS picks its kernels by CPU when
numpy loads it (``SkylakeX`` on an AVX-512 CPU, ``Haswell`` on an AVX2 one, Zen included), and
those kernels add in different orders. Measured on an AMD EPYC with AVX-512: 300 fish resets give
different physics states (last bits) under the two kernel sets, and fish's medium-expert dataset
collected under ``SkylakeX`` differs from the one collected under ``Haswell`` in one float32
observation of 48 million (1.66415520e-07 against 1.66415500e-07): same actions, returns and
statistics, different checksum.

:func:`pin_openblas_kernels` sets ``OPENBLAS_CORETYPE=Haswell`` before numpy loads, on every CPU
that runs those kernels (AVX2 and FMA: x86-64 CPUs from 2013-2015 on), overriding a value the
user set. Each of spin's packages calls it first thing on import, and spawned workers and local
Ray workers inherit it. Where numpy was imported before spin (an interactive session that
imported numpy first, pytest plugins), OpenBLAS has already chosen and the pin cannot apply:
:func:`openblas_core` says which kernels run, and collection records it.
"""

from __future__ import annotations

import os
import sys

#: The kernel set every AVX2 + FMA CPU runs identically (OpenBLAS's name).
CORETYPE = "Haswell"
#: OpenBLAS's variable, read once when the library loads.
ENV_VAR = "OPENBLAS_CORETYPE"


def cpu_runs_pinned_kernels() -> bool:
    """Whether this CPU has AVX2 and FMA (Linux ``/proc/cpuinfo``; False where unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return {"avx2", "fma"} <= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return False


def pin_openblas_kernels() -> bool:
    """Set ``OPENBLAS_CORETYPE`` to :data:`CORETYPE` if numpy has not loaded yet and the CPU
    runs those kernels. Returns whether the variable now holds the pin (numpy loaded before
    with the variable unset, or another value, keeps what OpenBLAS chose)."""
    if os.environ.get(ENV_VAR) == CORETYPE:
        return True
    if "numpy" in sys.modules or not cpu_runs_pinned_kernels():
        return False
    os.environ[ENV_VAR] = CORETYPE
    return True


def pinned_env() -> dict[str, str]:
    """The environment variables of the pin, when it holds (for workers started elsewhere,
    e.g. Ray's ``runtime_env``); empty otherwise."""
    return {ENV_VAR: CORETYPE} if os.environ.get(ENV_VAR) == CORETYPE else {}


def openblas_core() -> str | None:
    """The kernel set numpy's OpenBLAS runs in this process (``"Haswell"``, ``"SkylakeX"``...),
    or None where numpy uses another BLAS or the name cannot be read."""
    import ctypes
    import glob

    import numpy as np

    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                       "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                name = fn()
                return name.decode() if name else None
    return None
