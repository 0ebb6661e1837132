"""Options that several spin-data commands share, declared once.

Choice lists come from the library's own constants (the learners, the bin-grid kinds) and
defaults from the :class:`~spin_data.recipe.Recipe` and
:class:`~spin_data.behaviour.BehaviourConfig` dataclasses where they have one, so that neither is
retyped in a command. Where commands give an option a different meaning (``generate``'s
``--algorithm`` defaults to the recipe's), only the help differs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import click

from spin_data.behaviour.learners import ALGORITHMS, LIBRARIES
from spin_data.envs.bins import GRID_KINDS, MIN_BINS

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

#: ``--bins`` of a command whose bins default to the environment's.
ENV_BINS_HELP = "Bins per action dimension (default: the env's, 3 for DMC, 2 for mazes)."


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass field ``name`` of ``cls`` (the one place it is written)."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def bins_option(help: str = ENV_BINS_HELP, default: int | None = None) -> Decorator:
    """``--bins``: bins per action dimension, at least :data:`~spin_data.envs.bins.MIN_BINS`."""
    return click.option("--bins", type=click.IntRange(min=MIN_BINS), default=default,
                        show_default=default is not None, help=help)


def grid_option(help: str, default: str | None = None) -> Decorator:
    """``--grid``: a DMC bin grid, one of :data:`~spin_data.envs.bins.GRID_KINDS`."""
    return click.option("--grid", type=click.Choice(GRID_KINDS), default=default,
                        show_default=default is not None, help=help)


def algorithm_option(help: str) -> Decorator:
    """``--algorithm``: a behaviour learner's algorithm (default None: the command says whose)."""
    return click.option("--algorithm", type=click.Choice(ALGORITHMS), default=None, help=help)


def library_option(help: str) -> Decorator:
    """``--library``: a behaviour learner's library (default None: the command says whose)."""
    return click.option("--library", type=click.Choice(LIBRARIES), default=None, help=help)
