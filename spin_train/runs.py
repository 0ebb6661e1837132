"""Run directories: resolved config, metrics files, checkpoints that load without unpickling.

A run directory holds::

    config.json          the resolved config (and what the run was made from)
    metrics.jsonl        one JSON object per logged row (the complete record)
    metrics.csv          the same rows as CSV (columns fixed by the run's metric names)
    checkpoints/         step-N.pt: tensors, numbers, strings, lists and dicts only,
                         loaded with ``torch.load(..., weights_only=True)``; last.pt is the newest
    events.*             TensorBoard events, when the tensorboard package is installed

Checkpoints are written to a temporary name and renamed, so a killed run never leaves a
half-written checkpoint; on resume the metrics files are cut back to the checkpoint's step.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import torch

from spin_data.files import replace_atomically, write_text_atomic


class RunError(ValueError):
    """A run directory that cannot be used as asked (holds another run, missing files)."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically (temporary file + rename)."""
    return replace_atomically(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` without unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a foreign or corrupt file: say which, not a pickle traceback
        # torch's own text goes on to suggest weights_only=False, i.e. running the file's code:
        # only its first sentence is kept.
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:200]
        raise RunError(f"{path} is not a spin checkpoint that loads as plain weights "
                       f"({type(exc).__name__}: {first}); nothing was run from it") from None


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends metric rows to ``metrics.jsonl`` and ``metrics.csv`` (and TensorBoard if present).

    ``columns`` fixes the CSV header; rows may omit columns (empty cells). ``resume_step``
    drops rows logged after that step (work the resumed run will redo).
    """

    def __init__(self, run_dir: Path, columns: Iterable[str], resume_step: int | None = None,
                 tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.columns = list(columns)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.csv = self.run_dir / "metrics.csv"
        rows = read_metrics(self.run_dir) if resume_step is not None else []
        rows = [r for r in rows if r.get("step", 0) <= (resume_step or 0)]
        with open(self.jsonl, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        with open(self.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self._tb = None
        if tensorboard:
            try:  # optional: only when the tensorboard package is installed
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.run_dir))
            except Exception:
                self._tb = None

    def log(self, row: dict[str, Any]) -> None:
        row = {k: _finite(v) for k, v in row.items()}
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        with open(self.csv, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)
        if self._tb is not None:
            step = int(row.get("step", 0))
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every row of a run's ``metrics.jsonl`` (empty if there is none)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: the rest is still good
                continue
    return rows


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (indent 2)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def differing_keys(saved: dict[str, Any], config: dict[str, Any], identity_keys: Iterable[str],
                   defaults: dict[str, Any] | None = None) -> list[str]:
    """The keys of ``identity_keys`` on which a saved run's config and ``config`` disagree; a
    key the saved config lacks (a setting added after that run) takes its value from
    ``defaults``, the behaviour the older run had."""
    defaults = defaults or {}
    return [k for k in identity_keys if saved.get(k, defaults.get(k)) != config.get(k)]


def prepare_run_dir(run_dir: str | os.PathLike, config: dict[str, Any], *,
                    identity_keys: Iterable[str], defaults: dict[str, Any] | None = None
                    ) -> tuple[Path, dict | None]:
    """Create ``run_dir`` or resume it; return ``(path, last checkpoint or None)``.

    A directory that already holds a run is resumed when its ``config.json`` agrees on every
    key of ``identity_keys`` (dataset, model sizes, seed...); a different run's directory is
    refused rather than overwritten. A key the saved config lacks (a setting added to spin after
    that run was written) agrees when ``config`` holds its value from ``defaults`` - the
    behaviour the older run had. On resume ``config.json`` is rewritten with ``config``'s values
    (keys only the saved one has are kept), so that it describes the run as it goes on: a run
    extended to more epochs or steps, or moved to another directory, says so.
    """
    run_dir = Path(run_dir)
    saved_path = run_dir / "config.json"
    if saved_path.exists():
        saved = json.loads(saved_path.read_text())
        diff = differing_keys(saved, config, identity_keys, defaults)
        if diff:
            raise RunError(f"{run_dir} holds a different run ({', '.join(diff)} differ): "
                           f"choose another --out")
        if any(saved.get(k) != v for k, v in config.items()):
            write_json(saved_path, saved | config)
        last = run_dir / "checkpoints" / "last.pt"
        return run_dir, (load_checkpoint(last) if last.exists() else None)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(saved_path, config)
    return run_dir, None
