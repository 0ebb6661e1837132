"""Reports over stage-2 runs: final returns, time to target, learning curves.

A stage-2 run directory holds ``config.json`` (at least ``actor``, ``algo``, ``seed``,
``dataset_id``, ``env``, ``reference_scores``) and ``metrics.jsonl``, whose evaluation rows carry
``step`` (gradient steps done), ``eval_return_mean``, ``eval_return_std``, ``eval_normalised``
and ``wall_clock_s`` (seconds since the start of training, stage-1 pre-training included for
``spin`` and ``distill`` runs).

The comparisons follow the paper: runs are grouped by (dataset, actor, algo), one run per seed;
the target return of a group is, unless given, the mean final return of the ``factored`` actor
with the same dataset and algorithm (e.g. F-IQL's asymptotic return); time to target is the
wall-clock time of the first evaluation within 5% of it (Table 3), and the fraction of the target
reached after 10k gradient steps is Table 4's number. Means and standard deviations over seeds
are population statistics (``ddof=0``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from spin_data.envs.reference import format_score, score_label
from spin_data.text import align_rows
from spin_train.runs import RunError, read_metrics

#: Actor order of the tables and plots (SPIN first, then the paper's baselines, then MERLION and
#: its joint-action baselines).
ACTORS = ("spin", "saint", "factored", "autoregressive", "distill", "merlion", "joint")
#: The actor whose final return is the default target (the paper's F-IQL / F-AWAC / F-BCQ).
TARGET_ACTOR = "factored"
#: config.json keys every stage-2 run has and the report relies on.
REQUIRED_CONFIG = ("actor", "algo", "seed", "dataset_id")

GroupKey = tuple[str, str, str]  # (dataset_id, actor, algo)


@dataclass(frozen=True, eq=False)  # array fields: compare them with numpy, not ==
class Run:
    """One stage-2 run's config and evaluations, sorted by step.

    Attributes:
        path: the run directory.
        config: the parsed ``config.json``.
        steps: int64 ``(E,)`` gradient steps at each evaluation.
        returns: float64 ``(E,)`` mean evaluation return (undiscounted) at each evaluation.
        returns_std: float64 ``(E,)`` std of the returns over that evaluation's episodes.
        normalised: float64 ``(E,)`` mean normalised score (fraction, 1 = expert); NaN where the
            run logged none.
        wall_clock: float64 ``(E,)`` seconds since the start of training (stage 1 included).
    """

    path: Path
    config: dict[str, Any]
    steps: np.ndarray
    returns: np.ndarray
    returns_std: np.ndarray
    normalised: np.ndarray
    wall_clock: np.ndarray

    @property
    def key(self) -> GroupKey:
        """``(dataset_id, actor, algo)``: the group this run is one seed of."""
        return (str(self.config["dataset_id"]), str(self.config["actor"]),
                str(self.config["algo"]))

    def final_return(self, last: int = 1) -> float:
        """Mean of the last ``last`` evaluations' mean returns (all of them if fewer; 1: the
        last evaluation): one evaluation of a few episodes swings too much to stand for a
        run's end."""
        return float(self.returns[-last:].mean())

    def final_normalised(self, last: int = 1) -> float | None:
        """:meth:`final_return` for normalised scores; None if the run logged none."""
        value = float(self.normalised[-last:].mean())
        return None if math.isnan(value) else value


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read a stage-2 run directory's config and evaluation rows.

    Rows without ``eval_return_mean`` (training statistics) are skipped; when a step was
    evaluated twice (a resumed run), the later row wins.

    Raises:
        RunError (a ValueError): the directory has no stage-2 ``config.json`` or no evaluations.
    """
    path = Path(run_dir)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise RunError(f"{path} is not a stage-2 run: no config.json")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise RunError(f"{path} is not a stage-2 run: config.json is not JSON ({err})") from None
    missing = [k for k in REQUIRED_CONFIG if not isinstance(config, dict) or k not in config]
    if missing:
        raise RunError(f"{path} is not a stage-2 run: config.json lacks {', '.join(missing)}")
    by_step: dict[int, dict[str, Any]] = {}
    for row in read_metrics(path):
        if row.get("eval_return_mean") is not None and row.get("step") is not None:
            by_step[int(row["step"])] = row
    if not by_step:
        raise RunError(f"{path} has no evaluations (no metrics.jsonl row with eval_return_mean)")
    rows = [by_step[s] for s in sorted(by_step)]
    return Run(
        path=path,
        config=config,
        steps=np.asarray([int(r["step"]) for r in rows], dtype=np.int64),
        returns=np.asarray([float(r["eval_return_mean"]) for r in rows], dtype=np.float64),
        returns_std=np.asarray([_number(r.get("eval_return_std")) for r in rows]),
        normalised=np.asarray([_number(r.get("eval_normalised")) for r in rows]),
        wall_clock=np.asarray([_number(r.get("wall_clock_s")) for r in rows]),
    )


def _as_runs(runs: Iterable[str | os.PathLike | Run]) -> list[Run]:
    return [r if isinstance(r, Run) else load_run(r) for r in runs]


# ============================================================================= single numbers
def target_threshold(target_return: float, fraction: float = 0.95) -> float:
    """The return that counts as reaching ``target_return``: within ``1 - fraction`` of it.

    ``target - (1 - fraction) * |target|``: ``fraction * target`` for a target >= 0 (95 for
    100), and as far *below* a negative target (-10.5 for -10 at 0.95), since a return of
    ``fraction * target`` would there be better than the target itself.
    """
    if target_return >= 0:
        return fraction * target_return
    return (2.0 - fraction) * target_return


def time_to_target(run: Run, target_return: float, fraction: float = 0.95) -> float | None:
    """Wall-clock seconds until ``run`` first reaches the target, or None if it never does.

    The time is ``wall_clock_s`` of the first evaluation whose mean return is at least
    :func:`target_threshold` ``(target_return, fraction)``; for SPIN it includes stage-1
    pre-training (the paper's definition).
    """
    reached = np.flatnonzero(run.returns >= target_threshold(target_return, fraction))
    return float(run.wall_clock[reached[0]]) if len(reached) else None


def return_at_step(run: Run, step: int) -> float | None:
    """Mean evaluation return at the largest evaluated step <= ``step`` (None if none is)."""
    index = np.searchsorted(run.steps, step, side="right") - 1
    return float(run.returns[index]) if index >= 0 else None


def evaluated_step(run: Run, step: int) -> int | None:
    """The step :func:`return_at_step` reads: the largest evaluated step <= ``step``."""
    index = np.searchsorted(run.steps, step, side="right") - 1
    return int(run.steps[index]) if index >= 0 else None


def fraction_of_target(value: float | None, target_return: float | None) -> float | None:
    """``value / target_return`` (1.0 = the target), or None without a value or a positive target.

    A ratio to a target <= 0 has no "fraction reached" reading (a return of -5 is better than a
    target of -10 yet would score 0.5), so none is given.
    """
    if value is None or target_return is None or target_return <= 0:
        return None
    return value / target_return


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))


# ============================================================================= comparison
def _group_runs(runs: list[Run]) -> dict[GroupKey, list[Run]]:
    def order(key: GroupKey) -> tuple:
        dataset, actor, algo = key
        rank = ACTORS.index(actor) if actor in ACTORS else len(ACTORS)
        return (dataset, algo, rank, actor)

    groups: dict[GroupKey, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.key, []).append(run)
    return {k: sorted(groups[k], key=lambda r: str(r.path))
            for k in sorted(groups, key=order)}


def default_target(groups: dict[GroupKey, list[Run]], key: GroupKey,
                   last: int = 1, target_groups: dict[GroupKey, list[Run]] | None = None
                   ) -> tuple[float | None, str]:
    """The paper's target for group ``key``, and a note saying where it came from.

    The mean final return (over each run's ``last`` evaluations) of the ``factored`` runs of the
    same dataset and algorithm, taken from ``target_groups`` when given (runs trained apart for
    the target, e.g. F-IQL to its asymptote) else from ``groups``; without such runs, the
    dataset's reference expert return (``config["reference_scores"]["expert"]``); otherwise None.
    """
    dataset, _, algo = key
    factored = (groups if target_groups is None else target_groups).get(
        (dataset, TARGET_ACTOR, algo))
    if factored:
        mean = float(np.mean([r.final_return(last) for r in factored]))
        steps = "/".join(f"{s:,}" for s in sorted({int(r.steps[-1]) for r in factored}))
        where = "" if target_groups is None else f" at {steps} steps"
        return mean, f"{TARGET_ACTOR}-{algo} final ({len(factored)} seeds{where})"
    for run in groups[key]:
        scores = run.config.get("reference_scores")
        if scores and scores.get("expert") is not None:
            return float(scores["expert"]), "reference expert"
    return None, "none"


def compare(run_dirs: Iterable[str | os.PathLike | Run], target: float | None = None,
            fraction: float = 0.95, at_step: int = 10_000, last: int = 1,
            target_runs: Iterable[str | os.PathLike | Run] | None = None
            ) -> dict[GroupKey, dict[str, Any]]:
    """Summarise runs per (dataset_id, actor, algo) group, one run per seed.

    Args:
        run_dirs: stage-2 run directories (or loaded :class:`Run` s).
        target: target return for every group; None: :func:`default_target` per group.
        fraction: a run reaches the target within ``1 - fraction`` of it (see
            :func:`target_threshold`).
        at_step: gradient steps after which the fraction of the target is read (Table 4).
        last: a run's final return (and normalised score) is the mean of its last ``last``
            evaluations (1: the last one).
        target_runs: runs that only set the targets, not compared themselves: each group's
            target is then the mean final return of the ``factored`` runs among them with the
            same dataset and algorithm (the paper's Table 4 divides by F-IQL's return after
            1M steps while the compared runs stop at 10k). Ignored when ``target`` is given.

    Returns:
        ``{(dataset_id, actor, algo): summary}`` in table order, each summary holding
        ``dataset_id, actor, algo, env, seeds, runs`` (paths), ``last``,
        ``final_return_mean/std``
        (return units), ``normalised_mean/std`` (fractions, None without scores),
        ``target``, ``target_source``, ``fraction``, ``time_to_target_s_mean/std`` (seconds,
        over the seeds that reached it), ``reached``, ``at_step``, ``fraction_at_step_mean/std``
        and ``fraction_at_step_runs`` (how many runs had an evaluation by ``at_step``).
    """
    if last < 1:
        raise ValueError(f"last must be >= 1 evaluation, got {last}")
    groups = _group_runs(_as_runs(run_dirs))
    target_groups = None if target_runs is None else _group_runs(_as_runs(target_runs))
    result: dict[GroupKey, dict[str, Any]] = {}
    for key, runs in groups.items():
        dataset, actor, algo = key
        if target is None:
            group_target, source = default_target(groups, key, last, target_groups)
        else:
            group_target, source = float(target), "given"
        finals = [r.final_return(last) for r in runs]
        normalised = [v for v in (r.final_normalised(last) for r in runs) if v is not None]
        times = ([] if group_target is None else
                 [t for t in (time_to_target(r, group_target, fraction) for r in runs)
                  if t is not None])
        at = [v for v in (fraction_of_target(return_at_step(r, at_step), group_target)
                          for r in runs) if v is not None]
        read_at = [s for s in (evaluated_step(r, at_step) for r in runs) if s is not None]
        final_mean, final_std = _mean_std(finals)
        norm_mean, norm_std = _mean_std(normalised)
        time_mean, time_std = _mean_std(times)
        at_mean, at_std = _mean_std(at)
        result[key] = {
            "dataset_id": dataset, "actor": actor, "algo": algo,
            "env": runs[0].config.get("env"),
            "seeds": len(runs), "runs": [str(r.path) for r in runs], "last": last,
            "final_return_mean": final_mean, "final_return_std": final_std,
            "normalised_mean": norm_mean, "normalised_std": norm_std,
            "target": group_target, "target_source": source, "fraction": fraction,
            "time_to_target_s_mean": time_mean, "time_to_target_s_std": time_std,
            "reached": len(times),
            "at_step": at_step, "at_step_read": max(read_at) if read_at else None,
            "fraction_at_step_mean": at_mean, "fraction_at_step_std": at_std,
            "fraction_at_step_runs": len(at),
        }
    return result


# ============================================================================= table and CSV
def _pm(mean: float | None, std: float | None, digits: int) -> str:
    return "-" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def table_rows(result: dict[GroupKey, dict[str, Any]], scale: str = "fraction"
               ) -> list[list[str]]:
    """Header and cell strings of :func:`format_table` (time to target in minutes; normalised
    scores at ``scale``, ``fraction`` or ``percent``)."""
    # The step the column was read at: a run shorter than at_step is read at its last evaluation.
    at_steps = {g.get("at_step_read") or g["at_step"] for g in result.values()}
    at_label = f"@{at_steps.pop():,} steps" if len(at_steps) == 1 else "@step"
    header = ["dataset", "actor", "algo", "seeds", "final return", score_label(scale),
              "time to target (min)", f"% of target {at_label}", "target used"]
    rows = [header]
    for g in result.values():
        if g["time_to_target_s_mean"] is None:
            ttt = f"- ({g['reached']}/{g['seeds']})"
        else:
            ttt = (f"{_pm(g['time_to_target_s_mean'] / 60, g['time_to_target_s_std'] / 60, 1)} "
                   f"({g['reached']}/{g['seeds']})")
        at = "-" if g["fraction_at_step_mean"] is None else (
            f"{100 * g['fraction_at_step_mean']:.0f}% ± {100 * g['fraction_at_step_std']:.0f}%")
        target = (g["target_source"] if g["target"] is None
                  else f"{g['target']:.2f} ({g['target_source']})")
        rows.append([g["dataset_id"], g["actor"], g["algo"], str(g["seeds"]),
                     _pm(g["final_return_mean"], g["final_return_std"], 2),
                     _pm_score(g["normalised_mean"], g["normalised_std"], scale), ttt, at,
                     target])
    return rows


def _pm_score(mean: float | None, std: float | None, scale: str) -> str:
    if mean is None:
        return "-"
    return f"{format_score(mean, scale)} ± {format_score(std, scale)}"


def format_table(result: dict[GroupKey, dict[str, Any]], scale: str = "fraction") -> str:
    """A plain-text table of :func:`compare`'s result, columns aligned (numbers to the right)."""
    return align_rows(table_rows(result, scale), left={0, 1, 2, 8})


#: Columns of :func:`write_csv`, in order (times in seconds, scores as fractions).
CSV_COLUMNS = ("dataset_id", "env", "actor", "algo", "seeds", "final_return_mean",
               "final_return_std", "normalised_mean", "normalised_std", "target",
               "target_source", "fraction", "time_to_target_s_mean", "time_to_target_s_std",
               "reached", "at_step", "at_step_read", "fraction_at_step_mean",
               "fraction_at_step_std", "fraction_at_step_runs")


def write_csv(result: dict[GroupKey, dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write :func:`compare`'s result as CSV (:data:`CSV_COLUMNS`; None as an empty cell)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for g in result.values():
            writer.writerow({k: ("" if g.get(k) is None else g[k]) for k in CSV_COLUMNS})
    return path


# ============================================================================= plots
XAxis = Literal["step", "wall_clock", "both"]
_X_LABELS = {"step": "gradient steps", "wall_clock": "wall-clock (minutes, stage 1 included)"}


def group_curve(runs: Sequence[Run]) -> dict[str, np.ndarray]:
    """Mean +- std over seeds of a group's learning curve, at every evaluated step.

    At each step that any run evaluated, the statistics run over the runs that evaluated it
    (a run still in progress does not cut the others' curves short). Returns float64 arrays:
    ``steps``, ``minutes`` (mean wall-clock minutes at that step), ``mean``, ``std``, ``n``.
    """
    steps = np.unique(np.concatenate([r.steps for r in runs]))
    mean, std, minutes, n = [], [], [], []
    for step in steps:
        rows = [(r.returns[i], r.wall_clock[i]) for r in runs
                for i in np.flatnonzero(r.steps == step)]
        values = np.asarray([v for v, _ in rows])
        mean.append(values.mean())
        std.append(values.std())
        minutes.append(np.mean([w for _, w in rows]) / 60.0)
        n.append(len(rows))
    return {"steps": steps.astype(np.float64), "minutes": np.asarray(minutes),
            "mean": np.asarray(mean), "std": np.asarray(std), "n": np.asarray(n, np.float64)}


def _axes_for(x: XAxis) -> list[str]:
    if x not in ("step", "wall_clock", "both"):
        raise ValueError(f"x must be step, wall_clock or both, got {x!r}")
    return ["step", "wall_clock"] if x == "both" else [x]


def _new_figure(n_panels: int):
    # A Figure without pyplot draws with the Agg canvas: no display, no global backend state.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0 * n_panels, 4.2), layout="constrained")
    return fig, fig.subplots(1, n_panels, squeeze=False)[0]


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


def plot_learning_curves(run_dirs_or_runs: Iterable[str | os.PathLike | Run],
                         path: str | os.PathLike, x: XAxis = "both",
                         target: float | None = None, title: str | None = None) -> Path:
    """Write one PNG of mean +- std evaluation return over seeds, one curve per group.

    Args:
        run_dirs_or_runs: stage-2 run directories or :class:`Run` s; grouped by
            (dataset_id, actor, algo).
        path: the PNG to write.
        x: ``"step"`` (gradient steps), ``"wall_clock"`` (minutes, stage 1 included) or
            ``"both"`` (two panels side by side).
        target: a return drawn as a dashed horizontal line (e.g. the factored actor's final).
        title: figure title (default: the datasets plotted).
    """
    groups = _group_runs(_as_runs(run_dirs_or_runs))
    if not groups:
        raise ValueError("plot_learning_curves needs at least one run")
    axes_kinds = _axes_for(x)
    fig, axes = _new_figure(len(axes_kinds))
    datasets = sorted({k[0] for k in groups})
    for i, (key, runs) in enumerate(groups.items()):
        curve = group_curve(runs)
        label = f"{key[1]}-{key[2]}" + (f" ({key[0]})" if len(datasets) > 1 else "")
        label += f", {len(runs)} seed{'s' if len(runs) > 1 else ''}"
        for ax, kind in zip(axes, axes_kinds):
            xs = curve["steps"] if kind == "step" else curve["minutes"]
            line, = ax.plot(xs, curve["mean"], color=f"C{i % 10}", label=label)
            ax.fill_between(xs, curve["mean"] - curve["std"], curve["mean"] + curve["std"],
                            color=line.get_color(), alpha=0.2, linewidth=0)
    for ax, kind in zip(axes, axes_kinds):
        if target is not None:
            ax.axhline(target, color="k", linestyle="--", linewidth=1, label="target")
        ax.set_xlabel(_X_LABELS[kind])
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize="small")
    fig.suptitle(title or ", ".join(datasets))
    return _save(fig, path)


def plot_run(run_dir: str | os.PathLike | Run, path: str | os.PathLike) -> Path:
    """Write one run's learning curve as a PNG: return +- std over evaluation episodes against
    gradient steps and wall-clock minutes, with the reference expert return dashed if known."""
    run = run_dir if isinstance(run_dir, Run) else load_run(run_dir)
    fig, axes = _new_figure(2)
    scores = run.config.get("reference_scores") or {}
    std = np.nan_to_num(run.returns_std)
    for ax, kind in zip(axes, ("step", "wall_clock")):
        xs = run.steps if kind == "step" else run.wall_clock / 60.0
        ax.plot(xs, run.returns, color="C0", marker=".", label="evaluation return")
        ax.fill_between(xs, run.returns - std, run.returns + std, color="C0", alpha=0.2,
                        linewidth=0)
        if scores.get("expert") is not None:
            ax.axhline(float(scores["expert"]), color="k", linestyle="--", linewidth=1,
                       label="reference expert")
        ax.set_xlabel(_X_LABELS[kind])
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize="small")
    c = run.config
    fig.suptitle(f"{c['actor']}-{c['algo']} on {c['dataset_id']}, seed {c['seed']}")
    return _save(fig, path)
