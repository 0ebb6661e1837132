"""The SPIN authors' own code run on a spin store (``run.py``), through a stand-in for the
benchmark's ``dmc_datasets`` package (``dmc_datasets/``: this folder goes on the reference
scripts' PYTHONPATH)."""
