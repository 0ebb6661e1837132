"""The report step: what a person reads at the end of a pipeline.

Writes, in the report step's directory:

* ``report.md`` - the results table (``spin_train.report.compare``: final return, normalised
  score, time to target, fraction of the target at a step), the paper's table beside ours when
  the file names one, and the wall-clock time of every step;
* ``report.csv`` - the results table's numbers (``spin_train.report.write_csv``);
* ``learning_curves.png`` - mean +- std over seeds per method, by gradient steps and by
  wall-clock (``spin_train.report.plot_learning_curves``);
* ``report.json`` - the same numbers for programs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pipelines.graph import read_step_file
from pipelines.paper import compare_with_paper, method_label
from spin_data.text import align_rows


def results_table(result: dict[Any, dict[str, Any]], scale: str = "fraction") -> str:
    """``spin_train.report``'s table with the paper's method names in front (SPIN, F-IQL...)."""
    from spin_train.report import table_rows

    rows = table_rows(result, scale)
    groups = list(result.values())
    out = [["method"] + rows[0]]
    for g, row in zip(groups, rows[1:]):
        out.append([method_label(g["actor"], g["algo"])] + row)
    return align_rows(out, left={0, 1, 2, 3, 9})


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)} min {secs:02.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes):02d} min"


def step_times(all_steps: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """A table of every step's wall-clock time (from its ``step.json``) and the rows."""
    rows = [["step", "kind", "status", "wall-clock", "attempts", "finished (UTC)"]]
    records = []
    total = 0.0
    for s in all_steps:
        record = read_step_file(Path(s["dir"])) or {}
        seconds = record.get("total_s", record.get("duration_s"))
        total += seconds or 0.0
        attempts = record.get("attempts") or []
        rows.append([s["name"], s["kind"], record.get("status", "missing"), _duration(seconds),
                     str(len(attempts)), str(record.get("finished_at") or "-")])
        records.append({"name": s["name"], "kind": s["kind"], "status": record.get("status"),
                        "seconds": seconds, "attempts": len(attempts),
                        "finished_at": record.get("finished_at")})
    rows.append(["total (sum of steps)", "", "", _duration(total), "", ""])
    return align_rows(rows, left={0, 1, 2, 5}), records


def _setting(run_dirs: Any) -> str:
    """How our runs were made (gradient steps, seeds, devices), from their config.json."""
    configs, devices = [], set()
    for d in run_dirs:
        try:
            configs.append(json.loads((Path(d) / "config.json").read_text()))
        except (OSError, json.JSONDecodeError):
            continue
        record = read_step_file(Path(d)) or {}
        devices.add(str((record.get("outputs") or {}).get("device", "?")))
    steps = sorted({int(c.get("steps", 0)) for c in configs})
    seeds = sorted({int(c.get("seed", 0)) for c in configs})
    return (f"{'/'.join(f'{s:,}' for s in steps)} gradient steps per run, seeds "
            f"{', '.join(map(str, seeds))}, device {'/'.join(sorted(devices))}")


def write_report(payload: dict[str, Any]) -> dict[str, Any]:
    """Run the report step (see the module docstring); returns the files it wrote."""
    from spin_train import report

    params = payload["params"]
    out = Path(payload["dir"])
    runs = {n: payload["inputs"][n]["dir"] for n in params["runs"]}
    by_dir = {d: params["runs"][n] for n, d in runs.items()}
    target_dirs = [payload["inputs"][n]["dir"] for n in params.get("target_runs", ())]
    result = report.compare(list(runs.values()), target=params["target"],
                            fraction=params["fraction"], at_step=params["at_step"],
                            last=params.get("last_evaluations", 1),
                            target_runs=target_dirs or None)
    for g in result.values():  # which dataset of the pipeline each group is (for the paper)
        g.update(by_dir[g["runs"][0]])
    csv_path = report.write_csv(result, out / "report.csv")
    targets = {g["target"] for g in result.values()}
    png_path = report.plot_learning_curves(
        list(runs.values()), out / "learning_curves.png", title=params["title"],
        target=targets.pop() if len(targets) == 1 and None not in targets else None)
    scale = params.get("score_scale", "fraction")
    table = results_table(result, scale)
    times, time_rows = step_times(params["all_steps"])
    made = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    text = [f"# {params['title']}", "",
            f"Pipeline file `{params['pipeline_file']}`; made {made} by spin-pipeline.", ""]
    if params.get("description"):
        text += [params["description"].strip(), ""]
    text += ["## Results", "", "```text", table, "```", "",
             "- final return: mean ± std over seeds of each run's "
             + ("last evaluation" if params.get("last_evaluations", 1) == 1 else
                f"mean over its last {params['last_evaluations']} evaluations")
             + " (an evaluation: the mean undiscounted return of its episodes);",
             "- normalised: (R - random) / (expert - random) with the benchmark's reference "
             + ("scores, x100 (100 = expert);" if scale == "percent"
                else "scores (1.0 = expert);"),
             f"- time to target: wall-clock minutes to the first evaluation within "
             f"{100 * (1 - params['fraction']):.0f}% of the target (SPIN and SPIN-Distill "
             "include pre-training); (k/n): seeds that reached it;",
             "- target used: F-IQL's mean final return on the same dataset"
             + (" in the target runs below" if target_dirs else "")
             + " unless the file sets one (else the reference expert score).", "",
             f"Learning curves: `{png_path}` (mean ± std over seeds, by gradient steps and by "
             "wall-clock minutes).  ", f"Table as CSV: `{csv_path}`.", ""]
    if target_dirs:
        target_result = report.compare(target_dirs, fraction=params["fraction"],
                                       at_step=params["at_step"],
                                       last=params.get("last_evaluations", 1))
        target_png = report.plot_learning_curves(target_dirs, out / "target_curves.png",
                                                 title="Target runs")
        text += ["## Target runs", "",
                 "The runs whose F-IQL final return is each dataset's target above (trained "
                 "apart, e.g. to F-IQL's asymptote):", "", "```text",
                 results_table(target_result, scale), "```", "",
                 f"Their learning curves: `{target_png}`.", ""]
    if params.get("paper"):
        text += ["## Against the paper", "", "```text",
                 compare_with_paper(params["paper"], result.values(), _setting(runs.values())),
                 "```", ""]
    text += ["## Time per step", "", "```text", times, "```", "",
             "Wall-clock of each step as recorded in its step.json: the sum over its attempts "
             "when it was resumed (a killed attempt never recorded its end, so its time is not "
             "counted). The report step itself is not included.", ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(text))
    summary = {"results": [{k: v for k, v in g.items()} for g in result.values()],
               "steps": time_rows, "paper": params.get("paper")}
    (out / "report.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    written = {"report": str(md_path), "csv": str(csv_path), "png": str(png_path),
               "json": str(out / "report.json"), "table": table}
    if target_dirs:
        written["target_png"] = str(out / "target_curves.png")
    return written
