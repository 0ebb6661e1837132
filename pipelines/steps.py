"""What each step kind runs, in whatever process an executor picked.

:func:`run_step` is the one entry point: it takes a step's payload (plain data, see
:meth:`pipelines.graph.Step.payload`), locks the step directory, sends the step's output to
``log.txt`` there, runs the library call and records the outcome in ``step.json`` (atomically:
written to a temporary name and renamed). It never raises for a failing step - the record says
``failed`` with the error, and the traceback is in the log - so every executor reports failures
the same way.

The library calls resume on their own: ``generate`` from its staging area, ``pretrain`` and
``train_policy`` from their ``checkpoints/last.pt``, behaviour training from its ladder. A step
that was killed is simply run again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from pipelines.graph import STEP_FILE, digest, read_step_file
from spin_data.files import exclusive_lock, write_text_atomic


class StepBusy(RuntimeError):
    """Another process holds the step directory's lock (the same step is running elsewhere)."""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_record(step_dir: Path, record: dict[str, Any]) -> None:
    """Write ``step.json`` atomically: readers see the old record or the new one, never half."""
    write_text_atomic(step_dir / STEP_FILE, json.dumps(record, indent=2, default=str) + "\n")


def _locked(step_dir: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on the step directory for the step's whole run (POSIX flock)."""
    return exclusive_lock(step_dir / ".lock", lambda: StepBusy(
        f"{step_dir} is being run by another process (its .lock is held)"))


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send the step's prints, warnings and (disabled) bars to its log file."""
    with open(log, "a", buffering=1) as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        yield


@contextlib.contextmanager
def _threads(cpus: float) -> Iterator[None]:
    """torch uses the step's CPUs: no oversubscription when steps run side by side, and the
    same thread count (so the same floating-point sums) under every executor."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cpus)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ============================================================================= step kinds
def _behaviour(payload: dict[str, Any]) -> dict[str, Any]:
    from spin_data.behaviour import BehaviourConfig, train_behaviour

    params = payload["params"]
    config = BehaviourConfig.from_dict(params["config"])
    ladder = train_behaviour(config, cache_dir=params["cache_dir"], progress=False)
    expert = ladder.expert()
    return {"run_dir": params["run_dir"], "rungs": len(ladder.rungs),
            "expert_return": expert.estimate, "expert_step": expert.step}


def _dataset(payload: dict[str, Any]) -> dict[str, Any]:
    from spin_data.generate import format_summary, generate
    from spin_data.recipe import Recipe
    from spin_data.store import open_dataset
    from spin_data.store.location import exists

    params = payload["params"]
    recipe = Recipe.from_dict(params["recipe"], where=f"dataset {payload['name']!r}")
    store = params["store"]
    if exists(store):  # published by an earlier attempt that died before writing step.json
        ds = open_dataset(store)
        recorded = {k: v for k, v in (ds.metadata.get("recipe") or {}).items()
                    if k != "source_steps"}
        if digest(recorded) != digest(recipe.to_dict()):
            raise RuntimeError(f"{store} holds another dataset "
                               f"({ds.metadata.get('dataset_id')}): move it away")
        print(f"{store} already holds this dataset ({ds.n_steps:,} steps)")
    else:
        summary = generate(recipe, store, workers=int(params["workers"]),
                           cache_dir=params["behaviour_cache"], progress=False)
        print(format_summary(recipe, summary))
        ds = open_dataset(store)
    return {"store": store, "content_checksum": ds.content_checksum,
            "dataset_id": ds.metadata.get("dataset_id"), "steps": int(ds.n_steps),
            "episodes": int(ds.n_episodes), "returns": ds.metadata.get("returns")}


def _store_of(payload: dict[str, Any]) -> str:
    """The store of the step's dataset input (where the graph puts it now: an output root
    that was moved as a whole still works)."""
    for info in payload["inputs"].values():
        if info["kind"] == "dataset":
            return info["store"]
    raise RuntimeError(f"step {payload['name']} has no dataset input")


def _pretrain(payload: dict[str, Any]) -> dict[str, Any]:
    from spin_train.pretrain import PretrainConfig, pretrain

    params = payload["params"]
    config = dict(params["config"])
    config.setdefault("cache_dir", params.get("cache_dir"))
    cfg = PretrainConfig(**config, dataset=_store_of(payload), out=payload["dir"],
                         progress=False)
    result = pretrain(cfg)
    final = result.final_metrics or {}
    return {"run_dir": str(result.run_dir), "asm": str(result.asm_path),
            "epochs_run": result.epochs_run, "chosen_epoch": result.chosen_epoch,
            "wall_clock_s": result.wall_clock_s,
            "final": {k: final.get(k) for k in ("train_loss", "val_loss", "val_slot_acc",
                                                 "val_exact_match") if k in final}}


def _policy(payload: dict[str, Any]) -> dict[str, Any]:
    from spin_train.policy import PolicyConfig, train_policy

    params = payload["params"]
    config = dict(params["config"])
    asm = next((info["dir"] for info in payload["inputs"].values()
                if info["kind"] == "pretrain"), None)
    config.setdefault("cache_dir", params.get("cache_dir"))
    cfg = PolicyConfig(**config, dataset=_store_of(payload), asm=asm, out=payload["dir"],
                       progress=False)
    result = train_policy(cfg)
    final = result.final or {}
    from spin_train.device import resolve_device

    return {"run_dir": str(result.run_dir), "steps": result.steps,
            "device": str(resolve_device(cfg.device)),
            "final": {k: final.get(k) for k in ("eval_return_mean", "eval_return_std",
                                                 "eval_normalised", "wall_clock_s")}}


def _report(payload: dict[str, Any]) -> dict[str, Any]:
    from pipelines.reporting import write_report

    return write_report(payload)


RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "behaviour": _behaviour, "dataset": _dataset, "pretrain": _pretrain, "policy": _policy,
    "report": _report}


# ============================================================================= entry point
def run_step(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one step to completion (or failure) and return its ``step.json`` record."""
    step_dir = Path(payload["dir"])
    step_dir.mkdir(parents=True, exist_ok=True)
    previous = read_step_file(step_dir) or {}
    attempts = []
    if previous.get("identity") == payload["identity"]:
        attempts = list(previous.get("attempts", []))
        if previous.get("status") == "running":  # killed: it never wrote its end
            attempts.append({"started_at": previous.get("started_at"), "finished_at": None,
                             "duration_s": None, "status": "interrupted",
                             "host": previous.get("host")})
    record = {
        "name": payload["name"], "kind": payload["kind"], "pipeline": payload["pipeline"],
        "identity": payload["identity"], "status": "running",
        "inputs": {n: info["identity"] for n, info in payload["inputs"].items()},
        "params": payload["params"], "resources": payload["resources"], "outputs": None,
        "started_at": _now(), "finished_at": None, "duration_s": None,
        "host": socket.gethostname(), "pid": os.getpid(), "attempts": attempts,
        "log": str(step_dir / "log.txt"),
    }
    try:
        with _locked(step_dir):
            write_record(step_dir, record)
            started = time.perf_counter()
            with _output_to(step_dir / "log.txt"), _threads(payload["resources"]["cpus"]):
                print(f"== {record['started_at']} {payload['kind']} {payload['name']} "
                      f"(attempt {len(attempts) + 1}, pid {os.getpid()})")
                try:
                    outputs = RUNNERS[payload["kind"]](payload)
                    status, error = "complete", None
                except Exception as err:  # recorded, reported by the executor; log has the rest
                    traceback.print_exc()
                    outputs, status = None, "failed"
                    error = f"{type(err).__name__}: {' '.join(str(err).split())}"[:2000]
            duration = time.perf_counter() - started
            record |= {"status": status, "outputs": outputs, "error": error,
                       "finished_at": _now(), "duration_s": round(duration, 3)}
            record["attempts"] = attempts + [{
                "started_at": record["started_at"], "finished_at": record["finished_at"],
                "duration_s": record["duration_s"], "status": status, "host": record["host"]}]
            record["total_s"] = round(sum(a["duration_s"] or 0.0 for a in record["attempts"]), 3)
            write_record(step_dir, record)
    except StepBusy as err:
        return {**record, "status": "failed", "error": str(err)}
    return record
