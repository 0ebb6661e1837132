"""A stand-in for the discretised benchmark's ``dmc_datasets`` package (davidireland3/dmc_datasets),
which the SPIN reference code imports: put ``experiments/spin_drift/reference`` on PYTHONPATH and
``from dmc_datasets.environment_utils import make_env`` finds :mod:`.environment_utils`, which
serves a spin store and spin's environment instead of the benchmark's pickles and its own env."""
