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

from spin_data.envs.gym_ids import gym_id, register_all

register_all()  # gymnasium.make("spin/<task>-<bins>bins-v0") once spin_data is imported

__all__ = [
    "BinGrid",
    "BinGridError",
    "EnvSpec",
    "NoReferenceScore",
    "ReferenceScore",
    "UnknownEnvironment",
    "gym_id",
    "make_env",
    "normalised_score",
    "register_all",
    "reference_score",
    "registered_envs",
    "resolve",
]
