"""Discretised environments: DM Control tasks and the Maze, behind one registry and one bin grid."""

from spin_data.envs.bins import BinGrid, BinGridError
from spin_data.envs.reference import NoReferenceScore, ReferenceScore
from spin_data.envs.registry import (
    EnvSpec,
    UnknownEnvironment,
    make_env,
    normalised_score,
    reference_score,
    registered_envs,
    resolve,
)

__all__ = [
    "BinGrid",
    "BinGridError",
    "EnvSpec",
    "NoReferenceScore",
    "ReferenceScore",
    "UnknownEnvironment",
    "make_env",
    "normalised_score",
    "reference_score",
    "registered_envs",
    "resolve",
]
