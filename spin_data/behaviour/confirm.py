"""Confirming a finished run's expert and medium picks on many fresh episodes.

A run's rungs are scored on a few fixed-seed episodes each; choosing the best among tens of
rungs by such a mean overrates the choice on noisy tasks. :func:`confirm_rungs` scores its few
best rungs, and earlier rungs by bisection towards the medium target, again on many fresh
episodes (independent of the choice) and commits the ladder with those returns.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from spin_data.behaviour.config import BehaviourConfig
from spin_data.behaviour.evaluation import evaluate_returns
from spin_data.behaviour.ladder import Ladder, Rung
from spin_data.behaviour.policy import load_policy
from spin_data.behaviour.run_dir import commit_ladder

#: First reset seed of the confirmation episodes (see :func:`confirm_rungs`).
CONFIRM_SEED_BASE = 2_000_000
#: Expert (and medium) candidates a finished run scores again on fresh episodes.
CONFIRM_RUNGS = 3
#: Confirmation episodes per candidate, as a multiple of the rungs' ``eval_episodes``.
CONFIRM_FACTOR = 10


def confirm_episodes(config: BehaviourConfig) -> int:
    """Fresh episodes each expert candidate is scored on: :data:`CONFIRM_FACTOR` x the rungs'."""
    return CONFIRM_FACTOR * config.eval_episodes


def confirm_seeds(config: BehaviourConfig) -> list[int]:
    """Reset seeds of the confirmation episodes (disjoint from
    :func:`~spin_data.behaviour.evaluation.eval_seeds`)."""
    return [CONFIRM_SEED_BASE + 100_000 * config.seed + e
            for e in range(confirm_episodes(config))]


def confirm_rungs(config: BehaviourConfig, run: Path, ladder: Ladder,
                  progress: bool = False) -> Ladder:
    """Confirm a finished run's picks on :func:`confirm_episodes` fresh episodes per rung and
    commit the ladder with those returns (see :mod:`spin_data.behaviour.ladder`).

    First the :data:`CONFIRM_RUNGS` best rungs (the expert is then the best of them by the
    fresh episodes), then earlier rungs by bisection towards the medium target that expert sets
    (:meth:`Ladder.search_medium`). Choosing among tens of rungs by a 10-episode mean overrates
    the choice on noisy tasks; the confirmation scores are independent of it. Rungs already
    confirmed are not scored again.
    """
    seeds = confirm_seeds(config)
    bar = _confirm_bar(config, progress)

    def confirm(rung: Rung) -> Rung:
        policy = load_policy(run / rung.checkpoint)
        returns = tuple(float(r) for r in evaluate_returns(config, policy, seeds))
        if bar is not None:
            bar.update(1)
        return dataclasses.replace(rung, confirm_returns=returns)

    try:
        if not ladder.confirm_episodes:
            best = {r.step for r in ladder.candidates(CONFIRM_RUNGS)}
            ladder.rungs = [confirm(r) if r.step in best and not r.confirm_returns else r
                            for r in ladder.rungs]
            ladder.confirm_episodes = len(seeds)
        if any(r.step < ladder.expert().step for r in ladder.rungs):
            ladder.search_medium(confirm)
    finally:
        if bar is not None:
            bar.close()
    ladder.medium_confirmed = True
    commit_ladder(run, ladder)
    return ladder


def _confirm_bar(config: BehaviourConfig, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=f"confirm {config.canonical_env} (rungs x {confirm_episodes(config)} "
                     "fresh episodes)", unit="rung", dynamic_ncols=True)
