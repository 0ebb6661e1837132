"""The one table of reference scores, and the normalised score built on it.

Scores are undiscounted episode returns published with the discretised DeepMind Control benchmark
(Beeson, Ireland & Montana, TMLR), which SPIN evaluates against: an "expert" (a fully trained
behaviour policy) and "random" (uniform random bins) per task and bin count. They were measured
with the benchmark's [-1, 1] grid (``grid="unit"``). Where the benchmark publishes nothing
(another task, another bin count, the MERLION maze) there is no reference score: callers get
``None`` or a :class:`NoReferenceScore` error, never an invented number. Look scores up by any
environment name with :func:`spin_data.envs.reference_score` / :func:`spin_data.envs.normalised_score`.
"""

from __future__ import annotations

from dataclasses import dataclass

BENCHMARK_SOURCE = "Beeson, Ireland & Montana, discretised DMC benchmark (TMLR), [-1, 1] grid"


@dataclass(frozen=True)
class ReferenceScore:
    """Expert and random returns of one task at one bin count (undiscounted episode return)."""

    expert: float
    random: float
    source: str = BENCHMARK_SOURCE

    def normalise(self, episode_return: float) -> float:
        """``(R - random) / (expert - random)``: 0 = random, 1 = expert (a fraction, not %).

        The one home of the formula: ladders, dataset cards and evaluations all call it (a
        ladder without a published score anchors it on its own expert and measured random).
        """
        return (episode_return - self.random) / (self.expert - self.random)

    def episode_return(self, normalised: float) -> float:
        """The return whose normalised score is ``normalised`` (inverse of :meth:`normalise`)."""
        return self.random + normalised * (self.expert - self.random)


#: How normalised scores are printed: ``fraction`` (0 = random, 1 = expert; spin's default) or
#: ``percent`` (x100: 0-100, as D4RL, CORL and dmc_datasets report them).
SCORE_SCALES = ("fraction", "percent")


def format_score(normalised: float, scale: str = "fraction") -> str:
    """A normalised score as printed: ``0.953`` (fraction) or ``95.3`` (percent)."""
    if scale not in SCORE_SCALES:
        raise ValueError(f"unknown score scale {scale!r}: accepted {', '.join(SCORE_SCALES)}")
    return f"{100 * normalised:.1f}" if scale == "percent" else f"{normalised:.3f}"


def score_label(scale: str = "fraction") -> str:
    """The column / field name of scores printed at ``scale``."""
    return "normalised (0-100)" if scale == "percent" else "normalised"


class NoReferenceScore(LookupError):
    """No published reference score exists for this task and bin count."""


def _scores(expert: float, random: float) -> ReferenceScore:
    return ReferenceScore(expert=expert, random=random)


# Keyed by (canonical task name, bins per dimension). Maze tasks are named ``maze-<actuators>``
# and always have 2 bins (actuator off / on).
REFERENCE_SCORES: dict[tuple[str, int], ReferenceScore] = {
    ("finger-spin", 3): _scores(853.62, 4.36),
    ("fish-swim", 3): _scores(418.58, 72.32),
    ("cheetah-run", 3): _scores(664.57, 5.39),
    ("quadruped-walk", 3): _scores(781.19, 121.37),
    ("humanoid-stand", 3): _scores(711.90, 4.54),
    ("dog-trot", 3): _scores(724.37, 7.32),
    ("dog-trot", 10): _scores(736.95, 6.48),
    ("dog-trot", 30): _scores(768.24, 6.39),
    ("dog-trot", 50): _scores(752.58, 6.10),
    ("dog-trot", 75): _scores(803.05, 6.31),
    ("dog-trot", 100): _scores(756.86, 6.14),
    ("maze-3", 2): _scores(99.22, -1.76),
    ("maze-5", 2): _scores(99.34, -5.62),
    ("maze-7", 2): _scores(99.38, -6.85),
    ("maze-10", 2): _scores(99.37, -7.45),
    ("maze-12", 2): _scores(99.20, -7.45),
    ("maze-15", 2): _scores(99.33, -7.45),
}


def lookup(canonical: str, bins: int) -> ReferenceScore | None:
    """The published score of a canonical task name (e.g. ``cheetah-run``) at ``bins``, if any."""
    return REFERENCE_SCORES.get((canonical, int(bins)))


def published_bins(canonical: str) -> list[int]:
    """Bin counts with a published score for ``canonical`` (empty if none)."""
    return sorted(b for (task, b) in REFERENCE_SCORES if task == canonical)
