"""The paper's numbers (``paper_numbers.yaml``) beside a pipeline's own, in the paper's layout.

A pipeline report with ``paper: table1`` (or ``table2``, ``maze``) prints, per block of the
paper's table, one ``ours`` row and one ``paper`` row per task: final return mean +- std over
seeds, the block's average return and time to target (the paper's Table 1 / 2 / 13), then the
per-task times to target (Tables 5 / 6 / 14). ``paper: table4`` (a table of ``kind:
fraction_at_step``) prints instead the percent of F-IQL's final return each method reached after
a number of gradient steps (the paper's Table 4: after 10,000 of 1M; ours: the report's
``at_step``). Each cell of ours comes from ``spin_train.report.compare`` over the pipeline's runs
of the matching dataset and method.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterable

import yaml

from spin_data.text import align_rows

PAPER_FILE = Path(__file__).with_name("paper_numbers.yaml")


@functools.lru_cache(maxsize=1)
def load_paper_tables() -> dict[str, Any]:
    """The parsed ``paper_numbers.yaml`` (``{"source": ..., "tables": {key: table}}``)."""
    return yaml.safe_load(PAPER_FILE.read_text())


def method_label(actor: str, algo: str) -> str:
    """The paper's column name of a run: spin -> SPIN, factored + iql -> F-IQL, ..."""
    algo_up = algo.upper()
    if actor == "joint":  # the MERLION paper's names for its baselines
        return "BC" if algo == "bc" else f"Discrete {algo_up}"
    return {"spin": "SPIN", "saint": "SAINT", "factored": f"F-{algo_up}",
            "autoregressive": f"AR-{algo_up}", "distill": "SPIN-Distill",
            "merlion": f"MERLION-{algo_up}"}.get(actor, actor)


def _matches(match: dict[str, Any], group: dict[str, Any]) -> bool:
    return (match["env"] == group["env_task"] and int(match["bins"]) == int(group["bins"])
            and (match.get("quality") is None or match["quality"] == group["quality"]))


def _pm(mean: float | None, std: float | None, digits: int = 1) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


class _Ours:
    """Our summaries, looked up by paper row and method."""

    def __init__(self, groups: Iterable[dict[str, Any]]) -> None:
        self.groups = list(groups)

    def find(self, match: dict[str, Any], method: str) -> dict[str, Any] | None:
        for g in self.groups:
            if _matches(match, g) and method_label(g["actor"], g["algo"]) == method:
                return g
        return None


def _time_cell(g: dict[str, Any] | None) -> tuple[str, float | None]:
    """A time-to-target cell in minutes (with reached/seeds when not every seed got there)."""
    if g is None:
        return "-", None
    if g.get("time_to_target_s_mean") is None:
        return f"not reached (0/{g['seeds']})", None
    minutes = g["time_to_target_s_mean"] / 60.0
    note = "" if g["reached"] == g["seeds"] else f" ({g['reached']}/{g['seeds']})"
    return f"{_minutes(minutes)}{note}", minutes


def _minutes(value: float) -> str:
    # Demo runs reach targets in seconds: two decimals under a minute keep them apart.
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def _partial(values: list[float | None], total: int, combine) -> str:
    have = [v for v in values if v is not None]
    if not have:
        return "-"
    text = _minutes(combine(have))
    return text if len(have) == total else f"{text} ({len(have)}/{total} rows)"


def compare_with_paper(table_key: str, groups: Iterable[dict[str, Any]],
                       ours_setting: str = "") -> str:
    """The paper's table ``table_key`` with our numbers beside it, as aligned text.

    Args:
        table_key: a key of ``paper_numbers.yaml``'s ``tables``.
        groups: ``spin_train.report.compare`` summaries, each with three more keys the
            pipeline adds: ``env_task`` (canonical task, e.g. ``cheetah-run``), ``bins`` and
            ``quality`` of its dataset.
    """
    table = load_paper_tables()["tables"][table_key]
    if table.get("kind") == "fraction_at_step":
        return _compare_fraction_at_step(table, list(groups), ours_setting)
    if table.get("kind") == "claims":
        return _compare_claims(table, list(groups), ours_setting)
    ours = _Ours(groups)
    methods = list(table["methods"])
    out = [f"Paper: {load_paper_tables()['source']}: {table['title']}.",
           f"Returns from the paper's {table['returns_from']}; times to target from its "
           f"{table['times_from']}.",
           f"Paper setting: {table['setting']}; target: {table['target']}.",
           "ours = this pipeline's runs (mean ± std over its seeds; time in minutes, SPIN's "
           "including pre-training, as in the paper); paper = the paper's number."]
    if ours_setting:
        out.append(f"Our setting: {ours_setting}.")
    out.append("")

    overall_ret: dict[str, list[float | None]] = {m: [] for m in methods}
    overall_time: dict[str, list[float | None]] = {m: [] for m in methods}
    n_rows_total = 0
    for block in table["blocks"]:
        rows: list[list[str]] = [[block["label"], ""] + methods]
        block_ret: dict[str, list[float | None]] = {m: [] for m in methods}
        block_time: dict[str, list[float | None]] = {m: [] for m in methods}
        for row in block["rows"]:
            mine, theirs = [row["label"], "ours"], ["", "paper"]
            for m in methods:
                g = ours.find(row["match"], m)
                mean = None if g is None else g["final_return_mean"]
                mine.append(_pm(mean, None if g is None else g["final_return_std"]))
                paper = row["return"].get(m)
                theirs.append(_pm(*paper) if paper else "-")
                block_ret[m].append(mean)
                block_time[m].append(_time_cell(g)[1])
            rows += [mine, theirs]
        n = len(block["rows"])
        n_rows_total += n
        rows.append(["Average Return", "ours"]
                    + [_partial(block_ret[m], n, lambda v: sum(v) / len(v)) for m in methods])
        rows.append(["", "paper"] + [f"{block['average_return'][m]:.1f}" for m in methods])
        rows.append(["Time to Target (min)", "ours"]
                    + [_partial(block_time[m], n, sum) for m in methods])
        rows.append(["", "paper"] + [f"{block['time_to_target_min'][m]:.1f}" for m in methods])
        out += align_rows(rows, left={0, 1}, rule=False).splitlines() + [""]
        for m in methods:
            overall_ret[m] += block_ret[m]
            overall_time[m] += block_time[m]

    if "overall" in table:
        over = table["overall"]
        rows = [[over["label"], ""] + methods,
                ["Overall Average Return", "ours"]
                + [_partial(overall_ret[m], n_rows_total, lambda v: sum(v) / len(v))
                   for m in methods],
                ["", "paper"] + [f"{over['average_return'][m]:.1f}" for m in methods],
                ["Overall Time to Target (min)", "ours"]
                + [_partial(overall_time[m], n_rows_total, sum) for m in methods],
                ["", "paper"] + [f"{over['time_to_target_min'][m]:.1f}" for m in methods]]
        out += align_rows(rows, left={0, 1}, rule=False).splitlines() + [""]

    # Per-row times (the paper's appendix table).
    rows = [[f"Time to target (min), {table['times_from'].split(' (')[0]}", ""] + methods]
    for block in table["blocks"]:
        if len(table["blocks"]) > 1:
            rows.append([block["label"], ""] + [""] * len(methods))
        for row in block["rows"]:
            rows.append([row["label"], "ours"]
                        + [_time_cell(ours.find(row["match"], m))[0] for m in methods])
            rows.append(["", "paper"] + [f"{row['time_min'][m]:.1f}" for m in methods])
    out += align_rows(rows, left={0, 1}, rule=False).splitlines()
    return "\n".join(out)


def _percent(g: dict[str, Any] | None) -> tuple[str, float | None]:
    """Our "% of target after at_step" cell (mean ± std over the runs evaluated by then)."""
    if g is None or g.get("fraction_at_step_mean") is None:
        return "-", None
    mean, std = 100 * g["fraction_at_step_mean"], 100 * g["fraction_at_step_std"]
    runs = g.get("fraction_at_step_runs", g["seeds"])
    note = "" if runs == g["seeds"] else f" ({runs}/{g['seeds']})"
    return f"{mean:.1f}% ± {std:.1f}%{note}", mean


def _compare_fraction_at_step(table: dict[str, Any], groups: list[dict[str, Any]],
                              ours_setting: str) -> str:
    """The paper's Table 4 (percent of F-IQL's final return after N steps) beside ours."""
    ours = _Ours(groups)
    methods = list(table["methods"])
    ours_steps = sorted({int(g["at_step"]) for g in groups})
    steps_text = "/".join(f"{s:,}" for s in ours_steps) or "-"
    out = [f"Paper: {load_paper_tables()['source']}: {table['title']}.",
           f"Percentages from the paper's {table['percent_from']}; paper setting: "
           f"{table['setting']}; target: {table['target']}.",
           f"ours = this pipeline's runs: percent of the target (the report's, by default F-IQL's "
           f"mean final return) after {steps_text} gradient steps, mean ± std over seeds; "
           f"paper = the paper's number after {int(table['at_step']):,} steps."]
    if ours_setting:
        out.append(f"Our setting: {ours_setting}.")
    out.append("")
    n_total = 0
    for block in table["blocks"]:
        block_rows = [row for row in block["rows"]
                      if any(ours.find(row["match"], m) for m in methods)]
        if not block_rows:
            continue  # a block this pipeline has no runs for (e.g. another quality)
        rows: list[list[str]] = [[block["label"], ""] + methods]
        values: dict[str, list[float | None]] = {m: [] for m in methods}
        for row in block_rows:
            mine, theirs = [row["label"], "ours"], ["", "paper"]
            for m in methods:
                text, value = _percent(ours.find(row["match"], m))
                mine.append(text)
                theirs.append(f"{row['percent'][m]:.1f}%" if m in row["percent"] else "-")
                values[m].append(value)
            rows += [mine, theirs]
        n = len(block_rows)
        n_total += n
        if n > 1:
            rows.append(["Average", "ours"]
                        + [_partial_percent(values[m], n) for m in methods])
            note = "" if n == len(block["rows"]) else f" (all {len(block['rows'])} tasks)"
            rows.append([note.strip(), "paper"]
                        + [f"{block['average_percent'][m]:.1f}%" for m in methods])
        out += align_rows(rows, left={0, 1}, rule=False).splitlines() + [""]
    if n_total == 0:
        out.append("(no run of this pipeline matches a row of the paper's table)")
    return "\n".join(out).rstrip()


def _partial_percent(values: list[float | None], total: int) -> str:
    have = [v for v in values if v is not None]
    if not have:
        return "-"
    text = f"{sum(have) / len(have):.1f}%"
    return text if len(have) == total else f"{text} ({len(have)}/{total} rows)"


def _compare_claims(table: dict[str, Any], groups: list[dict[str, Any]],
                    ours_setting: str) -> str:
    """A figure's trends (``better`` ends above ``than``) checked on every dataset of ours.

    ``holds`` when our mean final return of ``better`` exceeds ``than``'s; ``clearly`` when the
    gap also exceeds the sum of the two standard deviations over seeds; ``reversed`` otherwise.
    """
    out = [f"Paper: {table['source']}: {table['title']}.",
           f"Paper setting: {table['setting']}.",
           "The figure gives learning curves, not numbers: each row checks one of its trends on "
           "this pipeline's runs (final return, mean ± std over seeds).",
           "holds = better's mean is above; clearly = by more than the two stds summed; "
           "reversed = not above."]
    if ours_setting:
        out.append(f"Our setting: {ours_setting}.")
    out.append("")
    datasets = sorted({str(g["dataset_id"]) for g in groups})
    rows = [["dataset", "claim", "better", "than", "verdict"]]
    for dataset in datasets:
        mine = {method_label(g["actor"], g["algo"]): g for g in groups
                if str(g["dataset_id"]) == dataset}
        for claim in table["claims"]:
            a, b = mine.get(claim["better"]), mine.get(claim["than"])
            if a is None or b is None or a["final_return_mean"] is None \
                    or b["final_return_mean"] is None:
                verdict = "not run"
            else:
                gap = a["final_return_mean"] - b["final_return_mean"]
                spread = (a["final_return_std"] or 0.0) + (b["final_return_std"] or 0.0)
                verdict = "clearly" if gap > spread else "holds" if gap > 0 else "reversed"
            rows.append([dataset, f"{claim['better']} > {claim['than']}",
                         _pm(None if a is None else a["final_return_mean"],
                             None if a is None else a["final_return_std"]),
                         _pm(None if b is None else b["final_return_mean"],
                             None if b is None else b["final_return_std"]), verdict])
    out += align_rows(rows, left={0, 1, 4}).splitlines()
    return "\n".join(out)
