"""spin_data: discretised control tasks, behaviour policies and offline datasets as Zarr stores.

The Zarr store is the only contract with ``spin_train``; nothing here imports its models.
"""

from spin_data.blas import pin_openblas_kernels

# First, before anything loads numpy: the same OpenBLAS kernels on every CPU (spin_data/blas.py).
pin_openblas_kernels()

from spin_data.envs import (  # noqa: E402
    BinGrid,
    make_env,
    normalised_score,
    reference_score,
    registered_envs,
)
from spin_data.store import open_dataset  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BinGrid",
    "make_env",
    "normalised_score",
    "open_dataset",
    "reference_score",
    "registered_envs",
]
