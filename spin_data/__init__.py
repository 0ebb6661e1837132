"""spin_data: discretised control tasks, behaviour policies and offline datasets as Zarr stores.

The Zarr store is the only contract with ``spin_train``; nothing here imports its models.
"""

from spin_data.envs import (
    BinGrid,
    make_env,
    normalised_score,
    reference_score,
    registered_envs,
)
from spin_data.store import open_dataset

__version__ = "0.1.0"

__all__ = [
    "BinGrid",
    "make_env",
    "normalised_score",
    "open_dataset",
    "reference_score",
    "registered_envs",
]
