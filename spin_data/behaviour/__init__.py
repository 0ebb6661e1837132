"""Behaviour policies: SB3 training into a cached, resumable checkpoint ladder.

- :class:`BehaviourConfig` / :func:`preset`: what a run is, and its cache key.
- :func:`train_behaviour`: train (or resume, or read back) a run; returns its :class:`Ladder`.
- :class:`Ladder`: the rungs (checkpoint + evaluation), ``expert()`` and ``medium()``.
- :func:`load_policy`: a checkpoint -> :class:`BehaviourPolicy` (no unpickling), which samples
  bin indices with a caller-supplied numpy generator.

The names below load their module on first use, so that importing a light part of the package
(the learners' names, the config, the ladder) does not import torch and stable-baselines3: the
``spin-data`` command line takes its choices from here and starts in a fraction of a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it.
_HOMES: dict[str, str] = {
    **dict.fromkeys(("ALGORITHMS", "BUDGET_PRESETS", "PPO_DEFAULTS", "SAC_DEFAULTS",
                     "BehaviourConfig", "default_algorithm", "preset"), "config"),
    **dict.fromkeys(("Ladder", "Rung"), "ladder"),
    **dict.fromkeys(("BehaviourPolicy", "CategoricalFactors", "CheckpointError",
                     "SquashedGaussian", "load_policy"), "policy"),
    **dict.fromkeys(("RunLocked", "default_cache_dir", "load_ladder", "run_directory"), "run_dir"),
    "train_behaviour": "train",
}

__all__ = sorted(_HOMES)

if TYPE_CHECKING:
    from spin_data.behaviour.config import (ALGORITHMS, BUDGET_PRESETS, PPO_DEFAULTS,
                                            SAC_DEFAULTS, BehaviourConfig, default_algorithm,
                                            preset)
    from spin_data.behaviour.ladder import Ladder, Rung
    from spin_data.behaviour.policy import (BehaviourPolicy, CategoricalFactors, CheckpointError,
                                            SquashedGaussian, load_policy)
    from spin_data.behaviour.run_dir import (RunLocked, default_cache_dir, load_ladder,
                                             run_directory)
    from spin_data.behaviour.train import train_behaviour


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
