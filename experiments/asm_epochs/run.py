"""SPIN's return against ASM pre-training epochs (the SPIN paper's Figure 2) at a CPU size.

One pre-training run is stopped at each of several epoch counts E (``asm-e{E}``). None is
trained from scratch where a shorter one finished: ``asm-e{E}`` is a copy of the longest
finished shorter run, continued by ``pretrain(epochs=E)`` - which resumes from
``checkpoints/last.pt`` with a constant learning rate and the saved RNG states, so its weights
are those of a straight E-epoch run. Each ASM is probed (``spin_train.probe``: a linear probe of
the frozen trunk; once also a random trunk of the same sizes) and frozen under SPIN's heads
trained with IQL over several seeds.

    python -m experiments.asm_epochs.run STORE --out OUT [--base RUN_DIR]
        [--epochs 1 2 5 10] [--seeds 3] [--policy-steps 10000] [--eval-every 500]
        [--eval-episodes 10] [--probe-steps 2000] [--d-model 128] [--n-layers 2]
        [--batch-size 1024] [--val-size 4096] [--stage asm|probe|policy|summary|all] [--last 4]

Writes under OUT: ``asm-e{E}/`` (pre-training runs, each with its ``probe.json``),
``probe-random.json``, ``spin-e{E}-s{seed}/`` (policy runs), ``summary.csv`` (one row per E and
one for the random trunk), ``curves.csv`` (the mean curve over seeds of each E) and
``curves.png``; prints the summary table. Every stage skips what is finished and resumes what
was killed, so the command can be run again after any interruption.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from experiments.spin_drift.summarise import STATS, summarise
from spin_data.store import DatasetOpenError, StoreLocationError, open_dataset
from spin_data.text import align_rows, one_line
from spin_train.options import field_defaults, resumable_fields
from spin_train.policy import PolicyConfig, train_policy
from spin_train.pretrain import PretrainConfig, pretrain
from spin_train.probe import ProbeConfig, probe
from spin_train.report import Run, load_run, return_at_step
from spin_train.runs import RunError, differing_keys, load_checkpoint, read_metrics

STAGES = ("asm", "probe", "policy", "summary")
#: SPIN's early return is read at this many gradient steps (the paper's Table 4 reads 10k; the
#: drift lab found the CPU-size peak near 500-2,500).
AT_STEP = 1_000
#: What a finished run holds that a continued copy of it must not: with asm.pt the copy would
#: count as finished, and the shorter ASM's probe would be taken for the longer one's.
PROBE_FILES = ("probe.json", "probe-random.json")
FINISHED_FILES = ("asm.pt", "asm.json", *PROBE_FILES)
#: A pipeline's bookkeeping beside a --base run's own files (pipelines/README.md, "Layout"):
#: the step's record and lock describe that pipeline's step, not this lab's copy.
PIPELINE_FILES = ("step.json", "log.txt", ".lock")
#: summary.csv's columns: times in seconds, accuracies as fractions, returns undiscounted.
COLUMNS = ("epochs", "asm", "pretrain_wall_clock_s", "val_exact_match", "val_slot_acc",
           "probe_slot_accuracy", "probe_exact_match", "probe_exact_match_if_independent",
           "seeds", "evaluated_to", f"return_at_{AT_STEP}_mean", f"return_at_{AT_STEP}_std",
           "end_mean", "end_std", "peak_return", "peak_step")


class LabError(ValueError):
    """A user error found while running a stage (a run made with other settings, a stage run
    before the one it needs): printed as one line, exit 2."""


@dataclass(frozen=True)
class Lab:
    """The lab's settings (the command line's), shared by every stage."""

    store: str
    out: Path
    epochs: tuple[int, ...]  # strictly increasing, each >= 1
    seeds: int
    policy_steps: int
    eval_every: int
    eval_episodes: int
    probe_steps: int
    d_model: int
    n_layers: int
    batch_size: int
    val_size: int
    last: int
    base: Path | None = None
    device: str = "auto"
    cache_dir: str | None = None
    progress: bool = True

    def run_options(self) -> dict[str, Any]:
        """The options every spin-train config shares (data, device, cache, progress bars)."""
        return {"dataset": self.store, "device": self.device, "cache_dir": self.cache_dir,
                "progress": self.progress}

    def pretrain_config(self, epochs: int, out: Path) -> PretrainConfig:
        """The one pre-training run of this lab, stopped at ``epochs``, written to ``out``;
        every setting but the four sizes is the library's default."""
        return PretrainConfig(**self.run_options(), out=str(out), epochs=epochs,
                              d_model=self.d_model, n_layers=self.n_layers,
                              batch_size=self.batch_size, val_size=self.val_size)

    def asm_dir(self, epochs: int) -> Path:
        return self.out / f"asm-e{epochs}"

    def policy_dir(self, epochs: int, seed: int) -> Path:
        return self.out / f"spin-e{epochs}-s{seed}"


# ============================================================================= stage 1: ASMs
def asm_state(run_dir: Path) -> str:
    """``finished`` (asm.pt written), ``started`` (an epoch checkpointed: pretrain resumes it)
    or ``new`` (nothing trained to keep)."""
    if (run_dir / "asm.pt").is_file():
        return "finished"
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return "started"
    return "new"


def finished_epochs(run_dir: Path) -> int:
    """Epochs a finished pre-training run trained, from its self-contained ``asm.pt``."""
    info = json.loads(load_checkpoint(run_dir / "asm.pt")["info"])
    if info.get("stopped_early"):  # a stopped run never trains again: it cannot be continued
        raise LabError(f"{run_dir} stopped early at epoch {info['epochs_run']}: it cannot stand "
                       f"for a run stopped by its epoch count")
    return int(info["epochs_run"])


def check_settings(run_dir: Path, cfg: PretrainConfig, checksum: str) -> None:
    """Refuse a pre-training run made with other settings than ``cfg`` in anything but the
    resumable options (epochs, where it lives, the device...), naming the field."""
    path = run_dir / "config.json"
    if not (run_dir / "asm.pt").is_file() or not path.is_file():
        raise LabError(f"{run_dir} is not a finished pretrain run (no asm.pt or config.json)")
    saved = json.loads(path.read_text())
    ours = asdict(cfg) | {"dataset_checksum": checksum}
    resumable = resumable_fields(PretrainConfig)
    diff = differing_keys(saved, ours, [k for k in ours if k not in resumable],
                          field_defaults(PretrainConfig))
    if diff:
        key = diff[0]
        raise LabError(f"{run_dir} was pre-trained with {key}={saved.get(key)!r}, this lab "
                       f"uses {key}={ours[key]!r}")


def continuation_source(lab: Lab, epochs: int, checksum: str) -> tuple[Path, int] | None:
    """The finished run an ``epochs``-epoch ASM starts from, and its epochs: the longest of
    OUT's ``asm-e{E'}`` with E' < epochs and ``--base`` (if E' <= epochs; OUT's own wins a
    tie), or None (train from scratch)."""
    found: list[tuple[int, int, Path]] = []  # (epochs, OUT's own first on a tie, directory)
    for run_dir in lab.out.glob("asm-e*"):
        suffix = run_dir.name.removeprefix("asm-e")
        if suffix.isdigit() and int(suffix) < epochs and asm_state(run_dir) == "finished":
            found.append((int(suffix), 1, run_dir))
    if lab.base is not None and (base_epochs := finished_epochs(lab.base)) <= epochs:
        found.append((base_epochs, 0, lab.base))
    if not found:
        return None
    shorter, _, source = max(found)
    check_settings(source, lab.pretrain_config(epochs, source), checksum)
    if finished_epochs(source) != shorter:
        raise LabError(f"{source} holds {finished_epochs(source)} epochs, not {shorter}")
    return source, shorter


def copy_run(source: Path, target: Path, finished: bool) -> None:
    """Copy a pre-training run to ``target`` (no shared files: pretrain rewrites last.pt).

    ``finished``: the copy is the target itself (same epochs), so asm.pt stays; otherwise the
    copy is to be continued and leaves out what says it finished. Copied beside ``target`` and
    renamed, so a killed copy never looks like a run.
    """
    partial = target.with_name(f".{target.name}.partial")
    if partial.exists():  # a copy killed half-way: its source is still there
        shutil.rmtree(partial)
    ignore = shutil.ignore_patterns(*PIPELINE_FILES,
                                    *(PROBE_FILES if finished else FINISHED_FILES))
    shutil.copytree(source, partial, ignore=ignore)
    partial.rename(target)


def build_asm(lab: Lab, epochs: int, checksum: str) -> None:
    """Make ``OUT/asm-e{epochs}``: skip it if finished, resume it if killed, else copy the
    longest finished shorter run and continue it (or train from scratch). Says which on a line
    of its own before the work starts."""
    target = lab.asm_dir(epochs)
    cfg = lab.pretrain_config(epochs, target)
    state = asm_state(target)
    if state == "finished":
        check_settings(target, cfg, checksum)
        if (done := finished_epochs(target)) != epochs:
            raise LabError(f"{target} holds {done} epochs, not {epochs}")
        print(f"{target.name}: finished", flush=True)
        return
    how = "resuming" if state == "started" else "training from scratch"
    if state == "new" and (source := continuation_source(lab, epochs, checksum)) is not None:
        source_dir, source_epochs = source
        if target.exists():  # killed before its first epoch ended: no checkpoint to keep
            shutil.rmtree(target)
        copy_run(source_dir, target, finished=source_epochs == epochs)
        if source_epochs == epochs:
            print(f"{target.name}: copied from {source_dir}", flush=True)
            return
        how = f"continuing {source_dir} from epoch {source_epochs}"
    print(f"{target.name}: {how}", flush=True)
    pretrain(cfg)


def build_asms(lab: Lab, checksum: str) -> None:
    """Stage 1: every ``asm-e{E}``, shortest first (each continues the one before)."""
    for epochs in lab.epochs:
        build_asm(lab, epochs, checksum)


def need_asm(lab: Lab, epochs: int) -> Path:
    """``asm-e{epochs}``'s directory, refused unless its pre-training finished."""
    run_dir = lab.asm_dir(epochs)
    if asm_state(run_dir) != "finished":
        raise LabError(f"{run_dir} has no finished ASM: run --stage asm first")
    return run_dir


# ============================================================================= stage 2: probes
def run_probes(lab: Lab) -> None:
    """Probe each ASM (``asm-e{E}/probe.json``) and a random trunk of the same sizes
    (``probe-random.json``); a probe whose JSON exists is skipped."""
    asms = [need_asm(lab, e) for e in lab.epochs]
    jobs = [(asm, asm / "probe.json", False) for asm in asms]
    jobs.append((asms[0], lab.out / "probe-random.json", True))
    for asm, report, random_init in jobs:
        if not report.is_file():
            probe(ProbeConfig(**lab.run_options(), asm=str(asm), random_init=random_init,
                              steps=lab.probe_steps, out=str(report)))


# ============================================================================= stage 3: SPIN
def policy_finished(run_dir: Path, steps: int) -> bool:
    """Whether a policy run wrote its weights after ``steps`` gradient steps (re-running
    train_policy on it would load everything to rewrite the same files)."""
    logged = [int(r["step"]) for r in read_metrics(run_dir) if r.get("step") is not None]
    return (run_dir / "policy.pt").is_file() and max(logged, default=-1) >= steps


def train_policies(lab: Lab) -> None:
    """SPIN-IQL on each ASM, one run per seed (``spin-e{E}-s{seed}``); train_policy resumes a
    killed run, a finished one is skipped."""
    for epochs in lab.epochs:
        asm = need_asm(lab, epochs)
        for seed in range(lab.seeds):
            out = lab.policy_dir(epochs, seed)
            if not policy_finished(out, lab.policy_steps):
                train_policy(PolicyConfig(
                    **lab.run_options(), actor="spin", algo="iql", asm=str(asm), seed=seed,
                    steps=lab.policy_steps, eval_every=lab.eval_every,
                    eval_episodes=lab.eval_episodes, log_every=lab.eval_every, out=str(out)))


# ============================================================================= stage 4: summary
def policy_runs(lab: Lab, epochs: int) -> list[Run]:
    """The SPIN runs on ``asm-e{epochs}`` that have evaluated at least once."""
    runs = []
    for seed in range(lab.seeds):
        try:
            runs.append(load_run(lab.policy_dir(epochs, seed)))
        except RunError:  # not started, or killed before its first evaluation
            continue
    return runs


def probe_columns(report: Path) -> dict[str, Any]:
    """A probe report's accuracies (fractions) as summary columns; empty without a report."""
    if not report.is_file():
        return {}
    found = json.loads(report.read_text())
    return {f"probe_{k}": found[k]
            for k in ("slot_accuracy", "exact_match", "exact_match_if_independent")}


def epoch_row(lab: Lab, epochs: int) -> tuple[dict[str, Any], dict | None]:
    """``asm-e{epochs}``'s summary row (:data:`COLUMNS`; None where not run) and its SPIN
    runs' :func:`experiments.spin_drift.summarise.summarise` (None without runs)."""
    run_dir = lab.asm_dir(epochs)
    rows = read_metrics(run_dir)
    validated = [r for r in rows if r.get("val_exact_match") is not None]
    row: dict[str, Any] = {"epochs": epochs, "asm": run_dir.name,
                           "pretrain_wall_clock_s": rows[-1]["wall_clock_s"] if rows else None,
                           "val_exact_match": validated[-1]["val_exact_match"] if validated
                           else None,
                           "val_slot_acc": validated[-1]["val_slot_acc"] if validated else None}
    row |= probe_columns(run_dir / "probe.json")
    runs = policy_runs(lab, epochs)
    if not runs:
        return row, None
    found = summarise(runs, lab.last)
    early = [v for r in runs if (v := return_at_step(r, AT_STEP)) is not None]
    row |= {"seeds": len(runs), "evaluated_to": found["last_step"],
            f"return_at_{AT_STEP}_mean": float(np.mean(early)) if early else None,
            f"return_at_{AT_STEP}_std": float(np.std(early)) if early else None,
            "end_mean": found["end_mean"], "end_std": found["end_std"],
            "peak_return": found["peak_return"], "peak_step": found["peak_step"]}
    return row, found


def summary_table(rows: list[dict[str, Any]], last: int) -> str:
    """The summary rows as aligned text (returns: mean ± std over seeds; a run's end is the
    mean of its ``last`` evaluations)."""
    def number(value: Any, digits: int) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    def pm(row: dict[str, Any], key: str) -> str:
        mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
        return "-" if mean is None else f"{mean:.1f} ± {std:.1f}"

    header = ["ASM", "pretrain (min)", "val exact", "val slot", "probe slot", "probe exact",
              "if independent", "seeds", f"return @{AT_STEP:,}",
              f"end: mean of last {last} evals", "peak (mean curve)", "at step"]
    table = [header]
    for r in rows:
        wall = r.get("pretrain_wall_clock_s")
        table.append([r["asm"], number(None if wall is None else wall / 60, 1),
                      number(r.get("val_exact_match"), 3), number(r.get("val_slot_acc"), 3),
                      number(r.get("probe_slot_accuracy"), 3),
                      number(r.get("probe_exact_match"), 3),
                      number(r.get("probe_exact_match_if_independent"), 3),
                      str(r.get("seeds") or "-"), pm(r, f"return_at_{AT_STEP}"), pm(r, "end"),
                      number(r.get("peak_return"), 1), number(r.get("peak_step"), 0)])
    return align_rows(table, left={0})


def write_curves(found: dict[int, dict], path: Path) -> None:
    """``curves.csv``: each E's mean curve over seeds (steps every seed reached) with the mean
    training statistics logged at each step."""
    columns = ["epochs", "step", "return_mean", "return_std", "seeds", *STATS]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for epochs, curve in found.items():
            for i, step in enumerate(curve["steps"]):
                writer.writerow({"epochs": epochs, "step": step, "seeds": curve["seeds"],
                                 "return_mean": float(curve["mean"][i]),
                                 "return_std": float(curve["std"][i]),
                                 **{k: float(curve["stats"][k][i]) for k in STATS}})


def plot(rows: list[dict[str, Any]], found: dict[int, dict], path: Path) -> None:
    """``curves.png``: return against pre-training epochs (Figure 2), the probe's exact match
    against epochs (the random trunk dashed), and each E's mean learning curve."""
    from matplotlib.figure import Figure  # no pyplot: no display, no global backend state

    fig = Figure(figsize=(16, 4.2), layout="constrained")
    returns, probes, curves = fig.subplots(1, 3)
    trained = [r for r in rows if r["epochs"] > 0 and r.get("end_mean") is not None]
    for key, label in ((f"return_at_{AT_STEP}", f"at {AT_STEP:,} steps"),
                       ("end", "end (last evaluations)")):
        have = [r for r in trained if r.get(f"{key}_mean") is not None]
        returns.errorbar([r["epochs"] for r in have], [r[f"{key}_mean"] for r in have],
                         [r[f"{key}_std"] for r in have], marker="o", capsize=3, label=label)
    returns.set(xlabel="ASM pre-training epochs", ylabel="SPIN return (mean ± std over seeds)")
    probed = [r for r in rows if r["epochs"] > 0 and r.get("probe_exact_match") is not None]
    for key, label in (("probe_exact_match", "exact match"),
                       ("probe_exact_match_if_independent", "if slots were independent")):
        probes.plot([r["epochs"] for r in probed], [r[key] for r in probed], marker="o",
                    label=label)
    random_trunk = next((r for r in rows if r["epochs"] == 0
                         and r.get("probe_exact_match") is not None), None)
    if random_trunk is not None:
        probes.axhline(random_trunk["probe_exact_match"], color="k", linestyle="--", linewidth=1,
                       label="random trunk")
    probes.set(xlabel="ASM pre-training epochs", ylabel="linear probe accuracy")
    for i, (epochs, curve) in enumerate(found.items()):
        curves.plot(curve["steps"], curve["mean"], color=f"C{i % 10}", label=f"{epochs} epochs")
        curves.fill_between(curve["steps"], curve["mean"] - curve["std"],
                            curve["mean"] + curve["std"], color=f"C{i % 10}", alpha=0.2,
                            linewidth=0)
    curves.set(xlabel="gradient steps", ylabel="SPIN return (mean ± std over seeds)")
    for ax in (returns, probes, curves):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(path, format="png", dpi=100)


def write_summary(lab: Lab) -> list[dict[str, Any]]:
    """Stage 4: ``summary.csv`` (:data:`COLUMNS`, one row per E, then the random trunk as
    epochs 0), ``curves.csv`` and ``curves.png`` under OUT; prints the table. Returns the rows."""
    made = {e: epoch_row(lab, e) for e in lab.epochs if lab.asm_dir(e).is_dir()}
    if not made:
        raise LabError(f"nothing to summarise under {lab.out}: run the other stages first")
    rows = [row for row, _ in made.values()]
    rows.append({"epochs": 0, "asm": "random init",
                 **probe_columns(lab.out / "probe-random.json")})
    found = {e: curve for e, (_, curve) in made.items() if curve is not None}
    print(summary_table(rows, lab.last))
    with open(lab.out / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows({k: r.get(k) for k in COLUMNS} for r in rows)  # None: empty cell
    write_curves(found, lab.out / "curves.csv")
    plot(rows, found, lab.out / "curves.png")
    print(f"wrote {lab.out}/summary.csv, curves.csv, curves.png")
    return rows


# ============================================================================= command line
def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", help="the dataset store (path or URL)")
    parser.add_argument("--out", type=Path, required=True, help="the lab's output folder")
    parser.add_argument("--base", type=Path, default=None,
                        help="a finished pretrain run of the same settings to continue from")
    parser.add_argument("--epochs", type=positive, nargs="+", default=[1, 2, 5, 10],
                        help="pre-training epochs of each ASM, increasing")
    parser.add_argument("--seeds", type=positive, default=3, help="SPIN runs per ASM")
    parser.add_argument("--policy-steps", type=positive, default=10_000)
    parser.add_argument("--eval-every", type=positive, default=500)
    parser.add_argument("--eval-episodes", type=positive, default=10)
    parser.add_argument("--probe-steps", type=positive, default=2_000)
    parser.add_argument("--d-model", type=positive, default=128)
    parser.add_argument("--n-layers", type=positive, default=2)
    parser.add_argument("--batch-size", type=positive, default=1024,
                        help="pre-training pairs per step")
    parser.add_argument("--val-size", type=positive, default=4096,
                        help="held-out steps each pre-training validation reads")
    parser.add_argument("--stage", choices=[*STAGES, "all"], default="all")
    parser.add_argument("--last", type=positive, default=4,
                        help="evaluations averaged for a run's end")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache-dir", default=None, help="dataset cache (library default)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if any(b <= a for a, b in zip(args.epochs, args.epochs[1:])):
        parser.error(f"--epochs must be strictly increasing, got {' '.join(map(str, args.epochs))}")
    try:
        checksum = open_dataset(args.store).content_checksum
    except (DatasetOpenError, StoreLocationError) as err:
        parser.error(one_line(err))
    lab = Lab(store=args.store, out=args.out, epochs=tuple(args.epochs), seeds=args.seeds,
              policy_steps=args.policy_steps, eval_every=args.eval_every,
              eval_episodes=args.eval_episodes, probe_steps=args.probe_steps,
              d_model=args.d_model, n_layers=args.n_layers, batch_size=args.batch_size,
              val_size=args.val_size, last=args.last, base=args.base, device=args.device,
              cache_dir=args.cache_dir, progress=args.progress)
    stages: dict[str, Callable[[], Any]] = {
        "asm": lambda: build_asms(lab, checksum), "probe": lambda: run_probes(lab),
        "policy": lambda: train_policies(lab), "summary": lambda: write_summary(lab)}
    try:
        lab.pretrain_config(1, lab.out)  # the sizes' own checks (d_model vs heads), before work
    except ValueError as err:
        parser.error(one_line(err))
    try:
        if lab.base is not None:  # refused before anything is written, whatever the stage
            check_settings(lab.base, lab.pretrain_config(1, lab.base), checksum)
            finished_epochs(lab.base)
        lab.out.mkdir(parents=True, exist_ok=True)
        for stage in STAGES if args.stage == "all" else [args.stage]:
            stages[stage]()
    except (LabError, RunError) as err:
        parser.error(one_line(err))

if __name__ == "__main__":
    main()
