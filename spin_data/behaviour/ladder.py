"""The checkpoint ladder: one rung per evaluation point of a behaviour-policy run.

A rung is a saved policy and how well it did (undiscounted true return of the stochastic policy
over a fixed set of evaluation episodes). Datasets pick their behaviour policies from the ladder:
the *expert* is the best rung, the *medium* the rung that scores closest to a fraction of it.

Choosing the best of many rungs by a mean over a few episodes picks a lucky rung on a noisy task
(fish-swim's episodes return 20-120 or 450-950 by target: its best rung scored 1.13 on 10
episodes, its 1,000 collected expert episodes 0.62). So a finished run *confirms* its picks:
the few best rungs are scored again on many fresh episodes (``confirm_returns``) and the expert
is the best of them by that second, independent score, which is also the score reported for it;
then earlier rungs are confirmed by bisection towards the medium target (0.45 x that expert
score, the expert counted at most as the published one), and the medium is chosen among the
confirmed earlier rungs (the same bias made fish's medium rung score 0.48 by its rung and 0.16
over its collected episodes).

Scores for the medium choice: where the benchmark publishes reference returns for the task, a
rung's score is its normalised score ``(R - random) / (expert - random)`` against the reference
(so "medium" means the same as in the benchmark: a fraction of the way from uniform-random to the
published expert, measured on this run's expert). Where there is none, the same formula is used
with the *measured* uniform-random return of this run (``random_return``, measured once before
training on the rung evaluation seeds) and the ladder's own expert rung in place of the published
numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from spin_data.envs.reference import ReferenceScore

#: A ladder's expert below this normalised score (against the published expert) gets a warning.
WEAK_EXPERT_THRESHOLD = 0.8
#: Columns of ``ladder.csv``.
CSV_COLUMNS = ("step", "mean_return", "std_return", "normalised", "checkpoint", "sha256",
               "wall_seconds", "confirmed_return", "confirmed_normalised")


@dataclass(frozen=True)
class Rung:
    """One evaluation point of a run.

    Attributes:
        step: training env steps done when the checkpoint was taken (0 = untrained policy).
        mean_return: mean undiscounted true return over the evaluation episodes.
        std_return: their standard deviation (ddof 0).
        normalised: ``(mean - random) / (expert - random)`` against the published reference
            scores, or None where none is published.
        checkpoint: path of the weights relative to the run directory
            (``checkpoints/step-N.safetensors``).
        sha256: hex digest of the checkpoint file (safetensors: a function of the weights).
        wall_seconds: training wall-clock seconds spent up to this rung (summed over resumes;
            evaluation time excluded).
        returns: every evaluation episode's return, in evaluation-seed order.
        confirm_returns: returns on the run's confirmation seeds (fresh episodes, disjoint from
            the evaluation seeds), for the rungs that were candidates for the expert; else empty.
    """

    step: int
    mean_return: float
    std_return: float
    normalised: float | None
    checkpoint: str
    sha256: str
    wall_seconds: float
    returns: tuple[float, ...] = ()
    confirm_returns: tuple[float, ...] = ()

    @property
    def confirmed_return(self) -> float | None:
        """Mean of :attr:`confirm_returns`, or None for a rung that was not confirmed."""
        if not self.confirm_returns:
            return None
        return float(sum(self.confirm_returns) / len(self.confirm_returns))

    @property
    def estimate(self) -> float:
        """The rung's best estimate of its mean return: confirmed where it was, else the rung's."""
        confirmed = self.confirmed_return
        return self.mean_return if confirmed is None else confirmed


@dataclass
class Ladder:
    """The rungs of one run, in step order, and what is needed to score them.

    Attributes:
        env: canonical task name (``cheetah-run``, ``maze-5``).
        bins: bins per action dimension.
        algorithm: ``"sac"`` or ``"ppo"``.
        cache_key: the run's :meth:`BehaviourConfig.cache_key`.
        budget: training env steps the run is configured for.
        reference_expert / reference_random: published returns, or None.
        random_return: mean return of the uniform-random policy on the evaluation seeds, measured
            before training.
        rungs: the rungs, in increasing step order.
        complete: whether the run reached its budget.
        extended_from: cache key of the shorter run (same settings, smaller budget) whose rungs
            and training state this run continued, or None for a run trained from scratch.
        cut_from: cache key of the longer run (same settings, larger budget) whose first
            ``budget`` steps this run is, or None.
        confirm_episodes: fresh episodes each expert candidate was scored on once the run
            finished (0: not confirmed yet; see the module docstring).
        medium_confirmed: whether the medium candidates were confirmed as well (ladders
            confirmed before that existed have only their expert candidates confirmed).
    """

    env: str
    bins: int
    algorithm: str
    cache_key: str
    budget: int
    reference_expert: float | None
    reference_random: float | None
    random_return: float
    rungs: list[Rung] = field(default_factory=list)
    complete: bool = False
    extended_from: str | None = None
    cut_from: str | None = None
    confirm_episodes: int = 0
    medium_confirmed: bool = False

    # ----------------------------------------------------------------------------- choices
    def expert(self) -> Rung:
        """The rung with the best mean return (the earliest one on a tie); once confirmed, the
        candidate with the best confirmed return."""
        self._need_rungs()
        confirmed = [r for r in self.rungs if r.confirm_returns]
        return max(confirmed or self.rungs, key=lambda r: (r.estimate, -r.step))

    def candidates(self, count: int) -> list[Rung]:
        """The ``count`` rungs with the best mean returns (earlier first on ties), best first:
        the expert candidates a run confirms."""
        return sorted(self.rungs, key=lambda r: (-r.mean_return, r.step))[:count]

    def search_medium(self, confirm: Callable[[Rung], Rung], fraction: float = 0.45) -> None:
        """Confirm rungs before the expert by bisection on their confirmed scores until the
        rung nearest :meth:`medium_target` is bracketed (learning curves rise, so about
        log2(rungs) confirmations); :meth:`medium` then picks among the confirmed rungs.

        ``confirm(rung)`` scores a rung on the confirmation episodes and returns it with its
        ``confirm_returns``; this ladder's rungs are updated with it. Bisection, rather than the
        rungs whose own scores lie near the target, because a noisy task's rung scores can be
        biased as a whole (fish-swim's 10 evaluation seeds are easy targets: its rungs scoring
        0.44-0.48 there return 0.16-0.28 on fresh episodes).
        """
        expert = self.expert()
        target = self.medium_target(fraction)
        steps = [r.step for r in self.rungs if r.step < expert.step]
        lo, hi = 0, len(steps) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            index = next(i for i, r in enumerate(self.rungs) if r.step == steps[mid])
            rung = self.rungs[index]
            if not rung.confirm_returns:
                rung = confirm(rung)
                self.rungs[index] = rung
            if self.score(rung) < target:
                lo = mid + 1
            else:
                hi = mid - 1

    def reference(self) -> ReferenceScore | None:
        """The published scores of the task, or None where none are published."""
        if self.reference_expert is None or self.reference_random is None:
            return None
        return ReferenceScore(expert=self.reference_expert, random=self.reference_random)

    def normalised(self, episode_return: float) -> float | None:
        """``episode_return`` normalised against the published scores, or None without them."""
        ref = self.reference()
        return None if ref is None else finite_or_none(ref.normalise(episode_return))

    def score(self, rung: Rung) -> float:
        """Where a rung lies between random (0) and expert (1), from its :attr:`Rung.estimate`;
        see the module docstring."""
        published = self.normalised(rung.estimate)
        if published is not None:
            return published
        own = ReferenceScore(expert=self.expert().estimate, random=self.random_return)
        return 0.0 if own.expert <= own.random else own.normalise(rung.estimate)

    def medium(self, fraction: float = 0.45) -> Rung:
        """The rung before the expert whose score is closest to :meth:`medium_target`.

        ``0.45`` follows the benchmark (a medium policy scores about 40-50% of the expert). Only
        rungs trained for fewer steps than the expert rung qualify: medium data comes from the
        same run stopped early; once the medium candidates are confirmed, only confirmed rungs
        (scored by their confirmation episodes). Ties go to the earlier rung.

        Raises:
            ValueError: ``fraction`` outside (0, 1), or no rung precedes the expert.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        expert = self.expert()
        earlier = [r for r in self.rungs if r.step < expert.step
                   and (r.confirm_returns or not self.medium_confirmed)]
        if not earlier:
            raise ValueError(
                f"no rung precedes the expert rung (step {expert.step}) of {self.env}: "
                "train longer or evaluate more often"
            )
        target = self.medium_target(fraction)
        return min(earlier, key=lambda r: (abs(self.score(r) - target), r.step))

    def medium_target(self, fraction: float = 0.45) -> float:
        """The score a medium rung should have: ``fraction`` x the expert's score, the expert
        counted at most as the published expert (score 1). The benchmark's medium policies
        score about 0.45 of *its* expert; an expert stronger than that (cheetah's 1.18) must
        not pull medium data above the benchmark's 0.40-0.50 band, and a weaker one (where the
        published expert was not reached) sets a medium at 45% of what this run reached."""
        return fraction * min(self.score(self.expert()), 1.0)

    def warning(self) -> str | None:
        """A sentence when the expert rung is far below the published expert, else None."""
        if not self.rungs or self.reference_expert is None:
            return None
        expert = self.expert()
        score = self.normalised(expert.estimate)
        if score is None or score >= WEAK_EXPERT_THRESHOLD:
            return None
        episodes = len(expert.confirm_returns or expert.returns)
        return (
            f"the best rung of {self.env} (step {expert.step}) returns "
            f"{expert.estimate:.2f} over {episodes} episodes, normalised {score:.2f} < "
            f"{WEAK_EXPERT_THRESHOLD} of the published expert ({self.reference_expert:.2f}); "
            "data labelled 'expert' from it would be weaker than the benchmark's - train longer "
            f"(a larger --budget than {self.budget} continues this run from its last rung)"
        )

    def plot(self, path: str, medium_fraction: float = 0.45) -> None:
        """A PNG of the ladder: mean return +- std per rung vs env steps, the expert and medium
        rungs marked, the published expert / random returns (and 0.95 x expert) as lines."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self._need_rungs()
        fig, ax = plt.subplots(figsize=(6.5, 4))
        steps = [r.step for r in self.rungs]
        ax.errorbar(steps, [r.mean_return for r in self.rungs],
                    yerr=[r.std_return for r in self.rungs], marker="o", ms=3, capsize=2,
                    label=f"{self.algorithm} rungs (mean +- std)")
        confirmed = [r for r in self.rungs if r.confirm_returns]
        if confirmed:
            ax.scatter([r.step for r in confirmed], [r.estimate for r in confirmed], s=40,
                       marker="x", color="C1", zorder=3,
                       label=f"confirmed on {self.confirm_episodes} fresh episodes")
        expert = self.expert()
        ax.scatter([expert.step], [expert.estimate], s=90, marker="*", color="C3",
                   zorder=3, label=f"expert rung {expert.estimate:.1f}")
        try:
            medium = self.medium(medium_fraction)
            ax.scatter([medium.step], [medium.estimate], s=60, marker="D", color="C2",
                       zorder=3, label=f"medium rung {medium.estimate:.1f}")
        except ValueError:
            pass
        published = self.reference()
        if published is not None:
            ax.axhline(self.reference_expert, color="k", lw=0.8, ls="--",
                       label=f"published expert {self.reference_expert:.1f}")
            ax.axhline(published.episode_return(0.95), color="k", lw=0.6, ls=":",
                       label="0.95 x expert (normalised)")
            ax.axhline(self.reference_random, color="grey", lw=0.8, ls="--",
                       label=f"published random {self.reference_random:.1f}")
        ax.set_xlabel("training env steps")
        ax.set_ylabel("return (stochastic policy)")
        ax.set_title(f"{self.env}, {self.bins} bins: behaviour ladder", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    def _need_rungs(self) -> None:
        if not self.rungs:
            raise ValueError(f"the ladder of {self.env} has no rungs yet")

    # ----------------------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``ladder.json``)."""
        data = asdict(self)
        data["rungs"] = [dict(asdict(r), returns=list(r.returns),
                              confirm_returns=list(r.confirm_returns)) for r in self.rungs]
        return data

    def to_json(self) -> str:
        """``ladder.json``'s text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ladder:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        fields["rungs"] = [Rung(**dict(r, returns=tuple(r.get("returns", ())),
                                       confirm_returns=tuple(r.get("confirm_returns", ()))))
                           for r in data.get("rungs", [])]
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str) -> Ladder:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def to_csv(self) -> str:
        """``ladder.csv``'s text: one row per rung, columns :data:`CSV_COLUMNS`."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in self.rungs:
            confirmed = r.confirmed_return
            confirmed_normalised = None if confirmed is None else self.normalised(confirmed)
            writer.writerow([r.step, f"{r.mean_return:.6g}", f"{r.std_return:.6g}",
                             "" if r.normalised is None else f"{r.normalised:.6g}",
                             r.checkpoint, r.sha256, f"{r.wall_seconds:.3f}",
                             "" if confirmed is None else f"{confirmed:.6g}",
                             "" if confirmed_normalised is None else f"{confirmed_normalised:.6g}"])
        return out.getvalue()

    def table(self) -> str:
        """An aligned plain-text table of the rungs, marking the expert and the medium rung."""
        if not self.rungs:
            return "(no rungs)"
        expert = self.expert()
        try:
            medium: Rung | None = self.medium()
        except ValueError:
            medium = None
        headers = ["step", "mean return", "std", "normalised", "confirmed", "wall s",
                   "checkpoint", "pick"]
        rows = []
        for r in self.rungs:
            mark = "expert" if r is expert else ("medium" if r is medium else "")
            confirmed = r.confirmed_return
            rows.append([f"{r.step:,}", f"{r.mean_return:.2f}", f"{r.std_return:.2f}",
                         "-" if r.normalised is None else f"{r.normalised:.3f}",
                         "" if confirmed is None else f"{confirmed:.2f}",
                         f"{r.wall_seconds:.0f}", r.checkpoint, mark])
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

        def line(cells: list[str]) -> str:
            return "  ".join(c.rjust(w) if i < 6 else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None when it is None or not finite (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
