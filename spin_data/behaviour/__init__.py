"""Behaviour policies: SB3 training into a cached, resumable checkpoint ladder.

- :class:`BehaviourConfig` / :func:`preset`: what a run is, and its cache key.
- :func:`train_behaviour`: train (or resume, or read back) a run; returns its :class:`Ladder`.
- :class:`Ladder`: the rungs (checkpoint + evaluation), ``expert()`` and ``medium()``.
- :func:`load_policy`: a checkpoint -> :class:`BehaviourPolicy` (no unpickling), which samples
  bin indices with a caller-supplied numpy generator.
"""

from spin_data.behaviour.config import (
    ALGORITHMS,
    BUDGET_PRESETS,
    PPO_DEFAULTS,
    SAC_DEFAULTS,
    BehaviourConfig,
    default_algorithm,
    preset,
)
from spin_data.behaviour.ladder import Ladder, Rung
from spin_data.behaviour.policy import (
    BehaviourPolicy,
    CategoricalFactors,
    CheckpointError,
    SquashedGaussian,
    load_policy,
)
from spin_data.behaviour.run_dir import RunLocked, default_cache_dir, load_ladder, run_directory
from spin_data.behaviour.train import train_behaviour

__all__ = [
    "ALGORITHMS",
    "BUDGET_PRESETS",
    "PPO_DEFAULTS",
    "SAC_DEFAULTS",
    "BehaviourConfig",
    "BehaviourPolicy",
    "CategoricalFactors",
    "CheckpointError",
    "Ladder",
    "RunLocked",
    "Rung",
    "SquashedGaussian",
    "default_algorithm",
    "default_cache_dir",
    "load_ladder",
    "load_policy",
    "preset",
    "run_directory",
    "train_behaviour",
]
