"""What the MERLION lab scripts share: playing the maze with a chooser, and reporting returns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from spin_train.policy.evaluate import evaluate


def play(choose, norm, env_name: str, env_kwargs: dict, episodes: int, seed: int):
    """Maze episodes acting with ``choose(normalised observations (B, D)) -> bin indices
    (B, N)`` under no_grad; episode ``i`` is seeded ``seed + i``. Returns the EvalResult."""
    def act(observations: np.ndarray) -> np.ndarray:
        obs = norm(torch.as_tensor(observations, dtype=torch.float32))
        with torch.no_grad():
            return choose(obs).numpy()
    return evaluate(act, env_name, env_kwargs, episodes=episodes, seed=seed)


def report(found: dict, out: str | Path | None, prefix: str = "") -> dict:
    """Print ``found["returns"]`` (``{name: {"mean", "std", ...}}``) one row each, write
    ``found`` as JSON to ``out`` when given, and return it."""
    for name, r in found["returns"].items():
        print(f"{prefix}{name:27s} {r['mean']:8.2f} +- {r['std']:6.2f}")
    if out:
        Path(out).write_text(json.dumps(found, indent=2) + "\n")
    return found
