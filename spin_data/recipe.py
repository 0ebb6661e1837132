"""Dataset recipes: what a dataset is made of, validated before any work starts.

A recipe names the task (environment, bins, grid), the quality, the size in transitions, how the
sources are mixed, the seed, and the behaviour-training budget. With the same recipe and seed,
``spin-data generate`` writes byte-identical arrays.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from spin_data.behaviour.learners import LIBRARIES
from spin_data.envs import registry
from spin_data.envs.bins import GRID_KINDS
from spin_data.text import one_line
from spin_data.yaml_lines import YamlFileError, read_yaml

QUALITIES: tuple[str, ...] = ("random", "medium", "expert", "medium-expert",
                              "random-medium-expert", "noisy")

#: Transitions per quality (the benchmark's sizes).
DEFAULT_SIZES: dict[str, int] = {
    "random": 1_000_000,
    "medium": 1_000_000,
    "expert": 1_000_000,
    "medium-expert": 2_000_000,
    "random-medium-expert": 200_000,
    "noisy": 100_000,  # the MERLION paper's dataset size
}

#: Share of transitions per source. The benchmark does not publish random-medium-expert's
#: ratios; spin's choice keeps random data a minority (as in its name's intent: mostly
#: behaviour data with random coverage) and splits the rest evenly.
DEFAULT_MIXES: dict[str, dict[str, float]] = {
    "random": {"random": 1.0},
    "medium": {"medium": 1.0},
    "expert": {"expert": 1.0},
    "medium-expert": {"medium": 0.5, "expert": 0.5},
    "random-medium-expert": {"random": 0.2, "medium": 0.4, "expert": 0.4},
    "noisy": {"medium": 1.0},
}
#: "noisy" is the MERLION paper's data (its A.4, "Data collection"): a sub-optimal policy's
#: actions with "noise added to the action 50% of the time". spin reads that as: the medium
#: policy acting with its mode, each step's action replaced with probability
#: ``random_action_prob`` by a uniform random joint action. The other qualities act as the
#: benchmark's do: sampled actions, no replacement.
DEFAULT_RANDOM_ACTION_PROBS: dict[str, float] = {"noisy": 0.5}
DEFAULT_DETERMINISTIC: dict[str, bool] = {"noisy": True}
#: Recipe fields whose default depends on the quality.
QUALITY_DEFAULTS: tuple[str, ...] = ("size", "mix", "deterministic", "random_action_prob")
SOURCES: tuple[str, ...] = ("random", "medium", "expert")


class RecipeError(ValueError):
    """A recipe that cannot be run (unknown quality, bad size, mix not summing to 1...)."""


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a dataset."""

    # Registry name of the environment (e.g. "humanoid", "maze-5").
    env: str
    # One of QUALITIES.
    quality: str
    # Bins per action dimension (None: the environment's default, 3 for DMC, 2 for mazes).
    bins: int | None = None
    # DMC bin grid: "actuator" (real bounds) or "unit" (the benchmark's [-1, 1]).
    grid: str = "actuator"
    # Transitions in the dataset (full episodes only: the last episode may overshoot).
    size: int | None = None
    # Share of transitions per source (random / medium / expert); sums to 1.
    mix: dict[str, float] | None = None
    # Master seed: every episode seed and the behaviour run derive from it.
    seed: int = 0
    # Behaviour-training budget: a preset name ("test", "default") or a number of env steps.
    budget: str | int = "default"
    # Behaviour algorithm ("sac", "tqc", "crossq", "ppo") or None for the environment family's
    # default.
    algorithm: str | None = None
    # Library of the behaviour learner ("sb3" or "sbx"); None: sbx for sac/tqc/crossq when it is
    # installed, else sb3. Recipes that must give the same bytes on every machine name it.
    library: str | None = None
    # Behaviour policies act with their distribution's mode (per-dimension argmax for PPO,
    # tanh(mean) for SAC) instead of sampling: action tuples become a function of the state.
    # None: True for "noisy", else False.
    deterministic: bool | None = None
    # Probability that a behaviour policy's action at a step is replaced by a uniform random
    # joint action (every sub-action's bin uniform and independent; it may equal the policy's
    # own), drawn from the episode's own generator. Uniform-random sources are left as they
    # are. None: 0.5 for "noisy", else 0.
    random_action_prob: float | None = None
    # The medium policy is the ladder rung closest to this fraction of expert's score.
    medium_fraction: float = 0.45
    # Episodes per collection task (a task writes one part of the store).
    episodes_per_task: int = 16
    # Dataset id (default: derived from env, bins and quality).
    dataset_id: str | None = None
    # Free-form notes recorded in the metadata.
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.quality not in QUALITIES:
            raise RecipeError(f"unknown quality {self.quality!r}: accepted {', '.join(QUALITIES)}")
        registry.resolve(self.env)  # raises UnknownEnvironment, a ValueError
        if self.bins is not None and self.bins < 2:
            raise RecipeError(f"bins must be >= 2, got {self.bins}")
        try:
            registry.check_bins(self.env, self.bins)
        except ValueError as err:
            raise RecipeError(str(err)) from None
        if self.grid not in GRID_KINDS:
            raise RecipeError(f"unknown grid {self.grid!r}: accepted {', '.join(GRID_KINDS)}")
        if self.library is not None and self.library not in LIBRARIES:
            raise RecipeError(f"unknown library {self.library!r}: accepted {', '.join(LIBRARIES)}")
        if self.algorithm is not None or self.library is not None:
            from spin_data.behaviour.config import default_algorithm, default_library
            from spin_data.behaviour.learners import check_learner

            algorithm = self.algorithm or default_algorithm(self.env)
            try:
                check_learner(algorithm, self.library or default_library(algorithm))
            except ValueError as err:
                raise RecipeError(str(err)) from None
        size = DEFAULT_SIZES[self.quality] if self.size is None else self.size
        if not isinstance(size, int) or size <= 0:
            raise RecipeError(f"size must be a positive number of transitions, got {self.size!r}")
        object.__setattr__(self, "size", size)
        mix = dict(DEFAULT_MIXES[self.quality] if self.mix is None else self.mix)
        unknown = [s for s in mix if s not in SOURCES]
        if unknown:
            raise RecipeError(f"unknown mix source {unknown[0]!r}: accepted {', '.join(SOURCES)}")
        if any(v < 0 for v in mix.values()) or not math.isclose(sum(mix.values()), 1.0,
                                                                 abs_tol=1e-9):
            raise RecipeError(f"mix fractions must be >= 0 and sum to 1, got {mix}")
        object.__setattr__(self, "mix", {s: float(v) for s, v in mix.items() if v > 0})
        if isinstance(self.budget, str) and self.budget not in ("test", "default"):
            raise RecipeError(f"unknown budget {self.budget!r}: accepted test, default or a "
                              "number of environment steps")
        if not isinstance(self.budget, str) and int(self.budget) <= 0:
            raise RecipeError(f"budget must be > 0 steps, got {self.budget}")
        if not 0 < self.medium_fraction < 1:
            raise RecipeError(f"medium_fraction must be in (0, 1), got {self.medium_fraction}")
        if self.episodes_per_task < 1:
            raise RecipeError(f"episodes_per_task must be >= 1, got {self.episodes_per_task}")
        if self.deterministic is None:
            object.__setattr__(self, "deterministic",
                               DEFAULT_DETERMINISTIC.get(self.quality, False))
        object.__setattr__(self, "random_action_prob", self._checked_random_action_prob())

    def _checked_random_action_prob(self) -> float:
        prob = self.random_action_prob
        if prob is None:
            return DEFAULT_RANDOM_ACTION_PROBS.get(self.quality, 0.0)
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
            raise RecipeError(f"random_action_prob must be a probability in [0, 1], got "
                              f"{prob!r}")
        if self.quality == "noisy" and prob == 0:
            raise RecipeError("random_action_prob must be in (0, 1] for quality noisy, got 0 "
                              "(noise-free mode actions are medium data, deterministic)")
        return float(prob)

    @property
    def canonical_env(self) -> str:
        return registry.resolve(self.env).canonical

    @property
    def n_bins(self) -> int:
        return registry.resolve(self.env).default_bins if self.bins is None else self.bins

    @property
    def name(self) -> str:
        """``<task>-<bins>bins-<quality>``, e.g. ``humanoid-stand-3bins-medium-expert``."""
        return self.dataset_id or f"{self.canonical_env}-{self.n_bins}bins-{self.quality}"

    def source_steps(self) -> dict[str, int]:
        """Target transitions per source (rounded; at least one episode's worth each)."""
        return {s: max(1, round(self.size * f)) for s, f in self.mix.items()}

    def action_selection(self) -> dict[str, Any] | None:
        """How the behaviour sources chose their actions (a store's ``action_selection``
        metadata); None when the recipe collects uniform-random data only."""
        sources = [s for s in self.mix if s != "random"]
        if not sources:
            return None
        return {"sources": sources, "policy_action": "mode" if self.deterministic else "sample",
                "random_action_prob": self.random_action_prob,
                "random_action": "uniform over the joint actions (every sub-action's bin "
                                 "uniform and independent; may equal the policy's)"}

    def to_dict(self) -> dict[str, Any]:
        """The recipe's fields, defaults resolved. ``random_action_prob`` is left out at 0 (no
        replaced actions), so the recipes of stores and pipeline steps made before the field
        existed still compare (and hash) equal to today's."""
        data = asdict(self)
        if data["random_action_prob"] == 0:
            del data["random_action_prob"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "recipe") -> "Recipe":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(f"{where}: unknown key {unknown[0]!r}; accepted: "
                              + ", ".join(sorted(known)))
        if "env" not in data or "quality" not in data:
            raise RecipeError(f"{where}: a recipe needs 'env' and 'quality'")
        try:
            return cls(**data)
        except RecipeError as err:
            raise RecipeError(f"{where}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Recipe":
        """Read a recipe file.

        Raises:
            RecipeError: unreadable, not YAML (the file and line named), or not a recipe.
        """
        try:
            data = read_yaml(path, lines=False)  # a repeated key keeps its last value
        except YamlFileError as err:
            if err.unreadable:
                raise RecipeError(f"{path}: cannot read the recipe: {err.problem}") from None
            where = f"{path}:{err.line}" if err.line else str(path)
            raise RecipeError(f"{where}: {one_line(err.problem)}") from None
        if not isinstance(data, dict):
            raise RecipeError(f"{path}: a recipe file holds one mapping of keys")
        return cls.from_dict(data, where=str(path))

    def with_overrides(self, **overrides: Any) -> "Recipe":
        """A copy with the non-None overrides applied (command-line flags over a recipe).

        A new quality brings its own defaults (:data:`QUALITY_DEFAULTS`) for the fields that
        hold the old quality's defaults: a medium recipe run as ``--quality noisy`` gets
        noisy's mode actions and replacement probability, not medium's sampled, noise-free
        ones; a size or mix the recipe chose itself is kept.
        """
        data = asdict(self)
        quality = overrides.get("quality")
        if quality is not None and quality != self.quality:
            old = Recipe(env=self.env, quality=self.quality)
            for key in QUALITY_DEFAULTS:
                if data[key] == getattr(old, key):
                    data[key] = None
        data.update({k: v for k, v in overrides.items() if v is not None})
        return Recipe(**data)


# ============================================================================= the catalog
def catalog_dir() -> Path:
    """The recipe catalog: ``$SPIN_CATALOG``, else the repository's ``datasets/`` folder."""
    env = os.environ.get("SPIN_CATALOG")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "datasets"


def data_root() -> Path:
    """Where generated datasets go by default: ``$SPIN_DATA_ROOT``, else ``~/spin-datasets``."""
    return Path(os.environ.get("SPIN_DATA_ROOT", Path.home() / "spin-datasets"))


def catalog() -> dict[str, Path]:
    """Recipe name -> file, for every recipe in the catalog."""
    folder = catalog_dir()
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def find_recipe(env: str, quality: str, bins: int | None = None) -> Recipe:
    """The catalog's recipe for (env, quality, bins), or the defaults when it has none."""
    probe = Recipe(env=env, quality=quality, bins=bins)
    path = catalog().get(probe.name)
    return Recipe.from_yaml(path) if path is not None else probe
