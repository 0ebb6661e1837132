"""pipelines: declarative end-to-end runs (generate -> pretrain -> policy x seeds -> report),
executed locally or on a Ray cluster. The pipeline files (``*.yaml``) live beside this module."""

# Importing spin_data first pins numpy's OpenBLAS kernels before numpy loads (spin_data/blas.py),
# so evaluation episodes, like datasets, are the same on every CPU.
import spin_data  # noqa: F401
