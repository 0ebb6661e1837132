"""spin_train: SPIN (pre-trained Action Structure Model + light policy heads) and its baselines.

Reads datasets only through spin_data's store reader and schema; never imports behaviour training.
"""

# Importing spin_data first pins numpy's OpenBLAS kernels before numpy loads (spin_data/blas.py),
# so evaluation episodes, like datasets, are the same on every CPU.
import spin_data  # noqa: F401

__version__ = "0.1.0"
