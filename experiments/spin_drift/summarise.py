"""Summarise a pipeline's policy groups side by side: each group's mean curve over seeds, its
peak, and its end (the mean of each run's last N evaluations).

``spin-train compare`` groups runs by (dataset, actor, algo), so groups of one pipeline that
differ only in a setting (here SPIN's ``query_init``) would merge; this keeps them apart by the
pipeline's group name (the run directory's prefix).

    python -m experiments.spin_drift.summarise PIPELINE_OUT [--groups small normal mask]
        [--last 4] [--out experiments/spin_drift/results/query-init]

Writes ``summary.csv`` (one row per group), ``curves.csv`` (mean and std over seeds at every
evaluated step) and ``curves.png``; prints the summary table.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from spin_data.text import align_rows
from spin_train.report import group_curve, load_run
from spin_train.runs import read_metrics

#: Training statistics written beside the curves (mean over seeds at each logged step): the
#: critic's level and the mean advantage weight tell a drifting critic from a drifting actor.
STATS = ("q_mean", "adv_weight", "actor_loss")


def in_group(run_dir: Path, group: str) -> bool:
    """Whether ``run_dir`` (named ``{group}-...``) belongs to ``group``. A pipeline step's name is
    ``{group}-{dataset}-{actor}-{algo}-s{seed}``, which its ``step.json`` lets us rebuild: the
    prefix alone would take group ``prefit-fiql``'s runs for group ``prefit``'s. Directories
    without a ``step.json`` (runs made outside a pipeline) go by the prefix."""
    record = run_dir / "step.json"
    if not record.is_file():
        return True
    step = json.loads(record.read_text())
    cfg = step["params"]["config"]
    tail = f"{cfg['actor']}-{cfg['algo']}-s{cfg['seed']}"
    return any(step["name"] == f"{group}-{dataset}-{tail}" for dataset in step["inputs"])


def group_runs(out: Path, group: str) -> list:
    """The finished or running policy runs of ``group`` under a pipeline's output root."""
    return [load_run(d) for d in sorted((out / "policy").glob(f"{group}-*"))
            if (d / "metrics.jsonl").is_file() and in_group(d, group)]


def merged_rows(run_dir: Path) -> dict[int, dict]:
    """A run's metrics rows by step, the rows of one step merged (training statistics and the
    evaluation may be logged apart)."""
    by_step: dict[int, dict] = {}
    for row in read_metrics(run_dir):
        if row.get("step") is not None:
            by_step.setdefault(int(row["step"]), {}).update(row)
    return by_step


def summarise(runs: list, last: int) -> dict:
    """Peak and end of a group's mean curve over seeds (steps every run has reached)."""
    curve = group_curve(runs)
    every = curve["n"] == len(runs)
    common = [int(s) for s in curve["steps"][every]]
    mean, std = curve["mean"][every], curve["std"][every]
    peak = int(np.argmax(mean))
    ends = [r.final_return(last) for r in runs]
    logged = [merged_rows(r.path) for r in runs]
    stats = {k: [np.mean(values) if (values := [m[s][k] for m in logged
                                                  if s in m and m[s].get(k) is not None])
                 else float("nan") for s in common] for k in STATS}
    return {"seeds": len(runs), "last_step": common[-1], "peak_return": float(mean[peak]),
            "peak_step": common[peak], "end_mean": float(np.mean(ends)),
            "end_std": float(np.std(ends)), "steps": common, "mean": mean,
            "std": std, "stats": stats}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pipeline_out", type=Path)
    parser.add_argument("--groups", nargs="+", default=["small", "normal", "mask"])
    parser.add_argument("--last", type=int, default=4, help="evaluations averaged for the end")
    parser.add_argument("--out", type=Path, default=None, help="folder for CSV and PNG")
    args = parser.parse_args(argv)
    found = {g: summarise(runs, args.last) for g in args.groups
             if (runs := group_runs(args.pipeline_out, g))}
    if not found:
        parser.error(f"no runs of {', '.join(args.groups)} under {args.pipeline_out}/policy")
    header = ["group", "seeds", "evaluated to", "peak (mean over seeds)", "at step",
              f"end: mean of last {args.last} evals"]
    rows = [header] + [[g, str(s["seeds"]), f"{s['last_step']:,}", f"{s['peak_return']:.1f}",
                        f"{s['peak_step']:,}", f"{s['end_mean']:.1f} ± {s['end_std']:.1f}"]
                       for g, s in found.items()]
    print(align_rows(rows, left={0}))
    if args.out is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "summary.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with open(args.out / "curves.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "step", "return_mean", "return_std", "seeds", *STATS])
        for g, s in found.items():
            for i, (step, m, sd) in enumerate(zip(s["steps"], s["mean"], s["std"])):
                writer.writerow([g, step, f"{m:.3f}", f"{sd:.3f}", s["seeds"],
                                 *(f"{s['stats'][k][i]:.4f}" for k in STATS)])
    fig, ax = plt.subplots(figsize=(7, 4))
    for g, s in found.items():
        ax.plot(s["steps"], s["mean"], label=f"{g} ({s['seeds']} seeds)")
        ax.fill_between(s["steps"], s["mean"] - s["std"], s["mean"] + s["std"], alpha=0.2)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("evaluation return (mean ± std over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "curves.png", dpi=120)
    print(f"wrote {args.out}/summary.csv, curves.csv, curves.png")


if __name__ == "__main__":
    main()
