"""Lab scripts and their recorded results: not part of the installed ``spin`` package.

Run a script as a module from the repository root, e.g. ``python -m
experiments.merlion.diagnosis STORE``, so that its sibling imports resolve.
"""
