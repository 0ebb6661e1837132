"""Stage-2 offline RL objectives.

- for the factored actors (spin, saint, factored, autoregressive, distill): IQL (default),
  AWAC, discrete BCQ with a per-dimension constraint (:data:`ALGORITHMS`);
- for ``joint`` (one output per joint action): discrete BCQ, discrete CQL, BC
  (:data:`JOINT_ALGORITHMS`);
- for ``merlion`` (pseudometric action representations): BCQ and CQL in the latent space
  (:data:`MERLION_ALGORITHMS`).
"""

from __future__ import annotations

from spin_train.algos.awac import AWAC, AWACOptions
from spin_train.algos.base import CriticOptions, Learner, OfflineAlgorithm, OfflineOptions
from spin_train.algos.bcq import BCQ, BCQOptions
from spin_train.algos.iql import IQL, IQLOptions
from spin_train.algos.joint import (JOINT_ALGORITHMS, DiscreteBCQ, DiscreteBCQOptions,
                                    DiscreteCQL, DiscreteCQLOptions, JointBC)
from spin_train.algos.merlion import (MERLION_ALGORITHMS, MerlionBCQ, MerlionBCQOptions,
                                      MerlionCQL, MerlionCQLOptions, MerlionLearner)

ALGORITHMS = {"iql": IQL, "awac": AWAC, "bcq": BCQ}

#: Actors that are not an ``Actor`` module: each brings its own learners over the joint action set.
JOINT_ACTORS = {"joint": JOINT_ALGORITHMS, "merlion": MERLION_ALGORITHMS}

#: Every ``--algo`` name, in the order the CLI lists them.
ALGO_NAMES = ("iql", "awac", "bcq", "cql", "bc")


def algorithms_for(actor: str) -> dict[str, type[Learner]]:
    """The objectives an actor trains with (``ALGORITHMS`` for the factored actors)."""
    return JOINT_ACTORS.get(actor, ALGORITHMS)


def check_combination(actor: str, algo: str) -> None:
    """A one-line ``ValueError`` naming what ``actor`` accepts when ``algo`` is not one."""
    accepted = algorithms_for(actor)
    if algo not in accepted:
        raise ValueError(f"the {actor} actor trains with --algo {', '.join(accepted)}, "
                         f"not {algo!r}")


__all__ = ["ALGORITHMS", "ALGO_NAMES", "AWAC", "AWACOptions", "BCQ",
           "BCQOptions", "CriticOptions", "DiscreteBCQ", "DiscreteBCQOptions", "DiscreteCQL",
           "DiscreteCQLOptions", "IQL", "IQLOptions", "JOINT_ACTORS", "JointBC", "Learner",
           "MerlionBCQ", "MerlionBCQOptions", "MerlionCQL", "MerlionCQLOptions", "MerlionLearner",
           "OfflineAlgorithm", "OfflineOptions", "algorithms_for", "check_combination"]
