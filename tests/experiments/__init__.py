"""Tests of the lab scripts in ``experiments/`` (imported from the repository root)."""
