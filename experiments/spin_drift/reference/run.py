"""Run the SPIN authors' own code on a spin store at the drift lab's sizes (issue 28, item 4).

The reference implementation (github.com/matthewlanders/SPIN) runs unmodified from the folder
it is copied to: ``ASM.py`` pre-trains the Action Structure Model, then ``IQL.py`` trains its
SAINT actor warm-started from the frozen ASM (``--actor-type saint --asm-model-path``: SPIN),
once per seed. Both import ``dmc_datasets.environment_utils``, which this folder's
``dmc_datasets`` serves from the store (spin's environment, spin's reader). The sizes and
hyperparameters are the drift lab's (``experiments/spin_drift/query-init.yaml``, policy group
``small``), resolved by spin's own configs and passed as the reference's flags
(:data:`ASM_FLAGS`, :data:`TRUNK_FLAGS`, :data:`IQL_FLAGS`); what the reference does its own way
(:data:`NOT_MAPPED`: raw observations, dropout, N(0, 1) queries...) is left as it is.

    python -m experiments.spin_drift.reference.run --reference DIR_OR_MIRROR --store STORE
        --out OUT [--seeds 0 1] [--steps 10000] [--eval-every 500] [--eval-episodes 10]
        [--asm-epochs 2] [--pipeline FILE] [--group small] [--workers 1] [--last 4]
        [--no-progress]

``--reference``: a folder holding ASM.py and IQL.py, or a bare git mirror of the repository
(its HEAD is extracted with ``git archive``). Writes under OUT: ``code/`` (the reference's
files; ``reference.json`` says where from and at which commit), ``asm/`` (ASM.py's run: ``stdout.log``, its checkpoints and TensorBoard files, and
``run.json``: its command line and the store's checksum),
``policy/reference-s{seed}/`` (IQL.py's run: ``stdout.log``, ``tb/``, and ``config.json`` plus
``metrics.jsonl``/``.csv`` in spin's run layout, so spin's report tools read it),
``evaluations.csv`` (one row per seed and evaluation) and summarise.py's ``summary.csv``,
``curves.csv`` and ``curves.png`` (group ``reference``). A finished stage (the ASM, a seed) is
skipped when the command runs again; a killed one starts over (the reference cannot resume): it
runs in a ``.partial`` folder renamed when it ends.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import inspect
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from experiments.spin_drift import summarise
from experiments.spin_drift.reference.dmc_datasets.environment_utils import (
    STORE_VARIABLE, store_task)
from pipelines.spec import PipelineError
from pipelines.validate import load_pipeline
from spin_data.store import DatasetOpenError, StoreLocationError, open_dataset
from spin_data.text import one_line
from spin_train.models.actors import QueryActor
from spin_train.policy import PolicyConfig
from spin_train.policy.evaluate import mean_normalised
from spin_train.pretrain import PretrainConfig
from spin_train.runs import MetricsLog, read_metrics, write_json

#: This folder: the ``dmc_datasets`` stand-in the reference imports is here (on PYTHONPATH).
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DEFAULT_PIPELINE = REPO / "experiments" / "spin_drift" / "query-init.yaml"
SCRIPTS = ("ASM.py", "IQL.py")
#: Policy runs' directory prefix, which is also summarise.py's group name.
GROUP = "reference"

#: spin's pre-training settings (PretrainConfig fields) -> ASM.py's flags.
ASM_FLAGS: tuple[tuple[str, str], ...] = (
    ("d_model", "--d-model"), ("n_heads", "--num-heads"),
    ("n_layers", "--num-transformer-blocks"), ("ffn_mult", "--ffn-hidden-mult"),
    ("dropout", "--transformer-dropout-p"), ("n_state_tokens", "--num-state-embeddings-M"),
    ("head_hidden", "--prediction-head-hidden-size"), ("epochs", "--num-epochs"),
    ("batch_size", "--batch-size"), ("lr", "--learning-rate"), ("grad_clip", "--grad-norm-clip"),
    ("select_prob", "--masking-prob"), ("seed", "--seed"))
#: The ASM's sizes (PretrainConfig fields) -> IQL.py's SAINT actor, which must match them for
#: its strict load of the ASM's state encoder and blocks.
TRUNK_FLAGS: tuple[tuple[str, str], ...] = (
    ("d_model", "--actor-d-model"), ("n_heads", "--actor-num-heads"),
    ("n_layers", "--actor-num-tf-blocks"), ("n_state_tokens", "--actor-num-state-embeddings-M"))
#: spin's stage-2 settings (PolicyConfig fields) -> IQL.py's flags (``steps`` is passed as
#: ``--num-gradient-steps steps + 1``: see :func:`iql_args`).
IQL_FLAGS: tuple[tuple[str, str], ...] = (
    ("batch_size", "--batch-size"), ("lr", "--learning-rate"), ("discount", "--gamma"),
    ("tau", "--tau"), ("expectile", "--iql-expectile"), ("beta", "--iql-beta"),
    ("ensemble", "--num-critics"), ("critic_hidden", "--critic-hidden-dim"),
    ("critic_hidden", "--value-hidden-dim"), ("eval_every", "--eval-freq"),
    ("eval_episodes", "--eval-episodes"))
#: Width of spin's policy heads (QueryActor's default; not a config field) -> IQL.py's.
HEAD_HIDDEN = inspect.signature(QueryActor).parameters["head_hidden"].default
#: What the reference hard-codes: a lab setting otherwise cannot be run by it.
HARD_CODED = {"max_weight": 100.0, "critic_prefit": 0, "ffn_mult": 2}
#: spin settings the reference has no flag for: it runs its own way, written here.
NOT_MAPPED = {
    "normalise": "raw observations (spin standardises them with the ASM's dataset statistics)",
    "query_init": "queries start N(0, 1) (torch.randn)",
    "head_dropout": "dropout 0.1 in its heads (--actor-dropout-p, its default)",
    "trunk_dropout": "its frozen trunk keeps dropout 0.1 while training (train mode)",
    "reward_scale": "raw rewards (spin's default None is 1, or 1/max|r| where a reward "
                    "exceeds 1: the maze's +100)",
    "val_fraction": "the ASM pre-trains on every transition (nothing held out)",
    "log_every": "one batch's losses every 100 steps to TensorBoard",
}
#: IQL.py's TensorBoard scalars -> the names spin's metrics give them (``v_mean``: no spin
#: counterpart). One batch's value at the step, where spin's are means since the last row.
TB_STATS = {"actor_loss": "train/actor_loss_total", "q_loss": "train/critic_loss",
            "v_loss": "train/value_loss", "v_mean": "train/v_s"}
METRICS = ("step", "eval_return_mean", "eval_return_std", "eval_normalised", "eval_episodes",
           *TB_STATS)

EVAL_AT = re.compile(r"^--- Evaluating at step (\d+) ---$")
EVAL = re.compile(r"^Eval: (\d+) eps: Avg Reward (\S+) \+/- (\S+)$")
ASM_EPOCH = re.compile(r"^Epoch (\d+)/(\d+), Avg MAM Loss: (\S+)$")
#: IQL.py's lines saying that the ASM did not load as it was saved: it goes on regardless
#: (partly loaded, or SAINT from scratch), which would not be SPIN.
ASM_LOAD_FAILURES = ("strict load failed", "asm_model_path not found", "No 'model_state_dict'")


class LabError(ValueError):
    """A user error (bad input, a finished stage made with other settings, a failed script):
    printed as one line, exit 2."""


@dataclass(frozen=True)
class Lab:
    """One reference run: the store, the resolved spin settings, where it goes."""

    store: str  # absolute path or URL
    out: Path
    pretrain: PretrainConfig
    policy: PolicyConfig
    seeds: tuple[int, ...]
    env_name: str  # the store's registry name (its metadata's env)
    domain: str
    task: str
    bins: int
    level: str
    dataset_id: str
    checksum: str
    last: int = 4
    progress: bool = True


# ============================================================================= settings
def lab_configs(pipeline: Path, group: str, store: str) -> tuple[PretrainConfig, PolicyConfig,
                                                                  list[int]]:
    """spin's resolved configs of a pipeline's SPIN-IQL policy group and its ASM, and the
    group's seeds: the sizes and hyperparameters the reference is run at."""
    spec = load_pipeline(pipeline)
    policy = spec.policies.get(group)
    if policy is None:
        raise LabError(f"{pipeline} has no policy group {group!r} (it has "
                       f"{', '.join(spec.policies)})")
    if "spin" not in policy.actors or "iql" not in policy.algos or policy.asm is None:
        raise LabError(f"{pipeline}: group {group!r} trains no SPIN-IQL on an ASM")
    pretrain = PretrainConfig(dataset=store, **spec.pretrain[policy.asm.name].config)
    stage2 = PolicyConfig(dataset=store, asm=policy.asm.name, actor="spin", algo="iql",
                          **policy.config)
    return pretrain, stage2, list(policy.seeds)


def check_expressible(pretrain: PretrainConfig, policy: PolicyConfig) -> None:
    """Refuse settings the reference hard-codes to another value (:data:`HARD_CODED`)."""
    for name, value in HARD_CODED.items():
        config = policy if hasattr(policy, name) else pretrain
        if getattr(config, name) != value:
            raise LabError(f"{name}={getattr(config, name)} cannot be run: the reference "
                           f"hard-codes {value}")


def store_level(dataset) -> str:
    """The store's quality, the reference's ``--dataset-level`` (e.g. medium-expert)."""
    level = dataset.metadata.get("quality")
    if not level:
        raise LabError(f"{dataset.location}: the store's metadata names no quality")
    return level


def flags(config: Any, mapping: tuple[tuple[str, str], ...]) -> list[str]:
    """``[flag, value, ...]`` of a config's fields under the reference's flag names."""
    return [x for field, flag in mapping for x in (flag, str(getattr(config, field)))]


def common_args(lab: Lab) -> list[str]:
    """What both scripts are told: the store's task and data, CPU, no wandb."""
    return ["--domain-name", lab.domain, "--task-name", lab.task, "--dataset-level", lab.level,
            "--dataset-root-dir", lab.store, "--bin-size", str(lab.bins), "--no-cuda",
            "--no-track"]


def asm_args(lab: Lab, run_dir: Path) -> list[str]:
    """ASM.py's command line: spin's pre-training settings, files under ``run_dir``."""
    return [*common_args(lab), *flags(lab.pretrain, ASM_FLAGS),
            "--runs-dir", str(run_dir / "tb"), "--model-save-dir", str(run_dir / "model")]


def iql_args(lab: Lab, seed: int, asm: Path, run_dir: Path) -> list[str]:
    """IQL.py's command line for one seed: SAINT warm-started from the frozen ``asm`` (SPIN).

    IQL.py evaluates inside iteration ``s`` of ``range(num_gradient_steps)`` when ``s`` is a
    multiple of ``eval_freq``, after that iteration's update: one update more than ``s``.
    ``steps + 1`` iterations make it evaluate at ``steps`` too (spin's last evaluation).
    """
    policy = dataclasses.replace(lab.policy, seed=seed)
    return [*common_args(lab), *flags(policy, IQL_FLAGS), "--seed", str(seed),
            "--num-gradient-steps", str(policy.steps + 1), "--actor-type", "saint",
            "--asm-model-path", str(asm), "--freeze-asm-loaded-parts",
            *flags(lab.pretrain, TRUNK_FLAGS),
            "--actor-decision-head-hidden-size", str(HEAD_HIDDEN),
            "--no-save-trained-model", "--runs-dir", str(run_dir / "tb")]


def not_mapped(lab: Lab) -> dict[str, str]:
    """:data:`NOT_MAPPED` with spin's value of each setting: ``{field: "spin X; reference Y"}``."""
    found = {}
    for name, theirs in NOT_MAPPED.items():
        config = lab.policy if hasattr(lab.policy, name) else lab.pretrain
        found[name] = f"spin {getattr(config, name)}; reference: {theirs}"
    return found


def flag_values(args: list[str]) -> dict[str, str | bool]:
    """A command line's ``--flag value`` pairs (a flag without a value: True)."""
    values: dict[str, str | bool] = {}
    for i, token in enumerate(args):
        if token.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else "--"
            values[token] = True if nxt.startswith("--") else nxt
    return values


#: Flags naming where things are, not what runs: a moved OUT or store is the same run (the
#: store's content checksum is compared instead).
PLACE_FLAGS = ("--runs-dir", "--model-save-dir", "--asm-model-path", "--dataset-root-dir")


def check_same_run(recorded: dict[str, Any], lab: Lab, args: list[str], where: Path) -> None:
    """Refuse a finished stage made from another store or with another command line, naming
    the first difference. ``recorded``: its ``reference_args`` and ``dataset_checksum``."""
    if recorded["dataset_checksum"] != lab.checksum:
        raise LabError(f"{where} was run on another store ({recorded['dataset_checksum'][:19]}"
                       f"...): use another --out")
    old, new = flag_values(recorded["reference_args"]), flag_values(args)
    for flag in sorted((set(old) | set(new)) - set(PLACE_FLAGS)):
        if old.get(flag) != new.get(flag):
            raise LabError(f"{where} was run with {flag} {old.get(flag)}, this run asks for "
                           f"{new.get(flag)}: use another --out")


# ============================================================================= the code
def is_bare_repository(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def copy_reference(source: Path, target: Path) -> str | None:
    """The reference's files from ``source`` (a folder, or a bare git mirror whose HEAD is
    archived) into ``target``; returns the commit when the source is a git repository."""
    if is_bare_repository(source):
        archive = subprocess.run(["git", "--git-dir", str(source), "archive", "HEAD"],
                                 capture_output=True, check=False)
        if archive.returncode != 0:
            raise LabError(f"git archive of {source} failed: {one_line(archive.stderr.decode())}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(target, filter="data")
        git = ["git", "--git-dir", str(source)]
    else:
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git"))
        git = ["git", "-C", str(source)]
    missing = [s for s in SCRIPTS if not (target / s).is_file()]
    if missing:
        raise LabError(f"--reference {source} holds no {' or '.join(missing)}")
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=False)
    return head.stdout.strip() if head.returncode == 0 else None


def prepare_code(source: Path, out: Path) -> dict[str, Any]:
    """``OUT/code``: the reference copied there once; a later run must bring the same scripts.
    Returns ``{"source", "commit"}`` (also in ``OUT/reference.json``)."""
    code, partial = out / "code", out / ".code.partial"
    if partial.exists():
        shutil.rmtree(partial)
    commit = copy_reference(source, partial)
    if code.is_dir():
        same = all((code / s).read_bytes() == (partial / s).read_bytes() for s in SCRIPTS)
        shutil.rmtree(partial)
        if not same:
            raise LabError(f"{code} holds other reference code than {source}: use another --out")
    else:
        partial.rename(code)
    record = {"source": str(source), "commit": commit}
    write_json(out / "reference.json", record)
    return record


# ============================================================================= running a script
def child_env(lab: Lab) -> dict[str, str]:
    """The scripts' environment: the stand-in ``dmc_datasets`` and spin importable, the store
    named, output unbuffered (progress arrives as it is printed). This folder's
    ``sitecustomize.py`` lets ``weights_only=True`` read the ASM checkpoint ASM.py writes (numpy
    integers in its ``args``), so IQL.py's ``torch.load`` needs no unpickling switch.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env[STORE_VARIABLE] = lab.store
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_script(script: Path, args: list[str], run_dir: Path, env: dict[str, str],
               on_line: Callable[[str], None]) -> list[str]:
    """Run ``python script args`` in ``run_dir``, its output (stdout and stderr) copied to
    ``run_dir/stdout.log`` and each line handed to ``on_line`` (which may raise
    :class:`LabError` to stop it). Returns the lines.

    Raises:
        LabError: a non-zero exit (its last line named) or ``on_line``'s.
    """
    lines: list[str] = []
    log = run_dir / "stdout.log"
    with open(log, "w") as handle, subprocess.Popen(
            [sys.executable, str(script), *args], cwd=run_dir, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        try:
            for line in proc.stdout:
                handle.write(line)
                handle.flush()
                lines.append(line.rstrip("\n"))
                on_line(lines[-1])
        except BaseException:
            proc.kill()
            raise
    if proc.returncode != 0:
        last = next((x for x in reversed(lines) if x.strip()), "no output")
        raise LabError(f"{script.name} failed (exit {proc.returncode}): {one_line(last)}; "
                       f"see {log}")
    return lines


def fresh_partial(target: Path) -> Path:
    """An empty ``.{name}.partial`` folder beside ``target`` (a killed run's is discarded)."""
    partial = target.with_name(f".{target.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


# ============================================================================= stage 1: ASM.py
def asm_checkpoint(run_dir: Path) -> Path | None:
    """The ``final.pt`` ASM.py wrote under ``run_dir/model`` (None: none)."""
    found = sorted((run_dir / "model").rglob("final.pt"))
    return found[0] if found else None


def build_asm(lab: Lab, code: Path) -> Path:
    """``OUT/asm``: ASM.py's pre-training at spin's sizes, skipped if finished. Returns its
    ``final.pt``."""
    target = lab.out / "asm"
    if target.is_dir():
        check_same_run(json.loads((target / "run.json").read_text()), lab,
                       asm_args(lab, target), target)
        print("asm: finished", flush=True)
        return asm_checkpoint(target)
    partial = fresh_partial(target)
    args = asm_args(lab, partial)
    print(f"asm: ASM.py {' '.join(args)}", flush=True)
    bar = tqdm(total=lab.pretrain.epochs, unit="epoch", desc="ASM.py", disable=not lab.progress,
               dynamic_ncols=True)

    def on_line(line: str) -> None:
        if match := ASM_EPOCH.match(line):
            bar.update(1)
            bar.set_postfix(loss=match.group(3), refresh=False)

    started = time.perf_counter()
    try:
        lines = run_script(code / "ASM.py", args, partial, child_env(lab), on_line)
    finally:
        bar.close()
    # ASM.py reports a failed data or env set-up and exits 0: no checkpoint is the failure.
    if asm_checkpoint(partial) is None:
        last = next((x for x in reversed(lines) if x.strip()), "no output")
        raise LabError(f"ASM.py wrote no final.pt: {one_line(last)}; see {partial}/stdout.log")
    wall = time.perf_counter() - started
    write_json(partial / "run.json", {"reference_args": args, "dataset_checksum": lab.checksum,
                                      "wall_clock_s": wall})
    partial.rename(target)
    print(f"asm: finished in {wall / 60:.1f} min", flush=True)
    return asm_checkpoint(target)


# ============================================================================= stage 2: IQL.py
def parse_evaluations(lines: list[str]) -> list[dict[str, float]]:
    """IQL.py's evaluations from its output: ``--- Evaluating at step S ---`` then ``Eval: N
    eps: Avg Reward X +/- Y`` -> ``{step, eval_episodes, eval_return_mean, eval_return_std}``
    (the std over the episodes, ``np.std``: population, as spin's)."""
    found, step = [], None
    for line in lines:
        if match := EVAL_AT.match(line.strip()):
            step = int(match.group(1))
        elif (match := EVAL.match(line.strip())) and step is not None:
            found.append({"step": step, "eval_episodes": int(match.group(1)),
                          "eval_return_mean": float(match.group(2)),
                          "eval_return_std": float(match.group(3))})
            step = None
    return found


def tensorboard_scalars(tb_dir: Path) -> dict[str, dict[int, float]]:
    """:data:`TB_STATS` from IQL.py's TensorBoard files under ``tb_dir``: ``{name: {step:
    value}}`` (empty when there are none)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, dict[int, float]] = {k: {} for k in TB_STATS}
    for folder in sorted({p.parent for p in tb_dir.rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        tags = set(events.Tags()["scalars"])
        for name, tag in TB_STATS.items():
            if tag in tags:
                found[name].update({int(e.step): float(e.value) for e in events.Scalars(tag)})
    return found


def write_run(lab: Lab, seed: int, run_dir: Path, args: list[str], lines: list[str],
              wall: float, reference: dict[str, Any]) -> None:
    """A finished IQL.py run in spin's run layout: ``config.json`` (what spin's report reads,
    and the reference's command line) and ``metrics.jsonl``/``.csv`` (one row per evaluation,
    with the logged losses of that step)."""
    scalars = tensorboard_scalars(run_dir / "tb")
    write_json(run_dir / "config.json", {
        "actor": f"{GROUP}-spin", "algo": "iql", "seed": seed, "dataset_id": lab.dataset_id,
        "dataset_checksum": lab.checksum, "env": lab.env_name, "steps": lab.policy.steps,
        "eval_every": lab.policy.eval_every, "eval_episodes": lab.policy.eval_episodes,
        "reference": reference, "reference_args": args, "not_mapped": not_mapped(lab),
        "wall_clock_s": wall})
    log = MetricsLog(run_dir, METRICS, tensorboard=False)
    for row in parse_evaluations(lines):
        row["eval_normalised"] = mean_normalised(lab.env_name, row["eval_return_mean"],
                                                 lab.bins)
        log.log(row | {k: values[row["step"]] for k, values in scalars.items()
                       if row["step"] in values})
    log.close()


def train_seed(lab: Lab, code: Path, seed: int, asm: Path, reference: dict[str, Any],
               position: int = 0) -> None:
    """``OUT/policy/reference-s{seed}``: IQL.py's SPIN run of one seed, skipped if finished
    (``position``: its progress bar's line, when seeds run side by side)."""
    target = lab.out / "policy" / f"{GROUP}-s{seed}"
    if target.is_dir():
        check_same_run(json.loads((target / "config.json").read_text()), lab,
                       iql_args(lab, seed, asm, target), target)
        print(f"seed {seed}: finished", flush=True)
        return
    partial = fresh_partial(target)
    args = iql_args(lab, seed, asm, partial)
    print(f"seed {seed}: IQL.py {' '.join(args)}", flush=True)
    evaluations = len(range(0, lab.policy.steps + 1, lab.policy.eval_every))
    bar = tqdm(total=evaluations, unit="eval", desc=f"IQL.py s{seed}", position=position,
               disable=not lab.progress, dynamic_ncols=True)

    def on_line(line: str) -> None:
        if any(failure in line for failure in ASM_LOAD_FAILURES):
            raise LabError(f"IQL.py did not load the ASM as saved ({one_line(line)}): "
                           f"that is not SPIN; see {partial}/stdout.log")
        if match := EVAL.match(line.strip()):
            bar.update(1)
            bar.set_postfix(ret=match.group(2), refresh=False)

    started = time.perf_counter()
    try:
        lines = run_script(code / "IQL.py", args, partial,
                           child_env(lab), on_line)
    finally:
        bar.close()
    if "--- Training complete. ---" not in lines:
        raise LabError(f"IQL.py ended without finishing; see {partial}/stdout.log")
    write_run(lab, seed, partial, args, lines, time.perf_counter() - started, reference)
    partial.rename(target)
    print(f"seed {seed}: finished in {(time.perf_counter() - started) / 60:.1f} min",
          flush=True)


# ============================================================================= curves
def write_evaluations(out: Path) -> Path:
    """``OUT/evaluations.csv``: the evaluations of every finished seed under OUT (the runs
    summarise.py reads), one row per seed and step; return mean and std over that
    evaluation's episodes, undiscounted."""
    path = out / "evaluations.csv"
    columns = ["seed", "step", "return_mean", "return_std", "episodes", "normalised"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for found in summarise.group_runs(out, GROUP):
            for row in read_metrics(found.path):
                writer.writerow([found.config["seed"], row["step"], row["eval_return_mean"],
                                 row["eval_return_std"], row["eval_episodes"],
                                 row.get("eval_normalised")])
    return path


# ============================================================================= command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True,
                        help="folder with ASM.py and IQL.py, or a bare git mirror of them")
    parser.add_argument("--store", required=True, help="the spin dataset store (path or URL)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pipeline", type=Path, default=DEFAULT_PIPELINE,
                        help="the lab whose sizes are run (default: query-init.yaml)")
    parser.add_argument("--group", default="small", help="its SPIN-IQL policy group")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="IQL seeds (default: the group's)")
    parser.add_argument("--steps", type=int, default=None, help="IQL gradient steps")
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument("--asm-epochs", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1,
                        help="seeds trained at once (one IQL.py process each)")
    parser.add_argument("--last", type=int, default=4, help="evaluations averaged for a "
                        "run's end in summary.csv")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def make_lab(args: argparse.Namespace) -> Lab:
    """The lab the command line asks for, every input checked before any work.

    Raises:
        LabError, PipelineError, DatasetOpenError, StoreLocationError, ValueError: one line.
    """
    if not args.reference.is_dir():
        raise LabError(f"--reference {args.reference}: no such folder")
    if not (is_bare_repository(args.reference)
            or all((args.reference / s).is_file() for s in SCRIPTS)):
        raise LabError(f"--reference {args.reference} holds neither {' and '.join(SCRIPTS)} "
                       f"nor a bare git repository")
    store = args.store if "://" in args.store else str(Path(args.store).resolve())
    dataset = open_dataset(store)
    env_name, domain, task, bins = store_task(dataset)
    level = store_level(dataset)
    pretrain, policy, seeds = lab_configs(args.pipeline, args.group, store)
    pretrain = dataclasses.replace(pretrain, **({"epochs": args.asm_epochs}
                                                if args.asm_epochs is not None else {}))
    overrides = {k: v for k, v in (("steps", args.steps), ("eval_every", args.eval_every),
                                   ("eval_episodes", args.eval_episodes)) if v is not None}
    policy = dataclasses.replace(policy, **overrides)
    check_expressible(pretrain, policy)
    return Lab(store=store, out=args.out.resolve(), pretrain=pretrain, policy=policy,
               seeds=tuple(args.seeds if args.seeds is not None else seeds),
               env_name=env_name, domain=domain, task=task, bins=bins, level=level,
               dataset_id=str(dataset.metadata.get("dataset_id")),
               checksum=dataset.content_checksum, last=args.last, progress=args.progress)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    try:
        lab = make_lab(args)
        missing = [m for m in ("tyro", "tensorboard") if importlib.util.find_spec(m) is None]
        if missing:
            raise LabError(f"the reference code needs {' and '.join(missing)}: pip install -e "
                           f"'.[lab]'")
        print(f"{lab.dataset_id} ({lab.checksum[:19]}...): {lab.domain}-{lab.task}, "
              f"{lab.bins} bins, {lab.level}; seeds {' '.join(map(str, lab.seeds))}")
        for name, text in not_mapped(lab).items():
            print(f"  not mapped: {name}: {text}")
        lab.out.mkdir(parents=True, exist_ok=True)
        reference = prepare_code(args.reference, lab.out)
        asm = build_asm(lab, lab.out / "code")
        # Seeds side by side are threads waiting on their own IQL.py process each.
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(lambda i: train_seed(lab, lab.out / "code", lab.seeds[i], asm,
                                               reference, position=i % args.workers),
                          range(len(lab.seeds))))
    except (LabError, PipelineError, DatasetOpenError, StoreLocationError, ValueError) as err:
        parser.error(one_line(err))
    print(f"wrote {write_evaluations(lab.out)}")
    summarise.main([str(lab.out), "--groups", GROUP, "--last", str(lab.last),
                    "--out", str(lab.out)])


if __name__ == "__main__":
    main()
