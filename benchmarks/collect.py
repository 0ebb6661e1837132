"""Collection throughput: spin's collector against raw stepping, and 1 vs 2 workers.

Measured side by side in one run, with the same policy and the same batched inference:
  - raw: ``n_envs`` environments stepped in lockstep with one batched policy call per step,
    nothing recorded (the physical ceiling of this loop);
  - collect: ``spin_data.collect.collect_episodes`` (records every episode) feeding a
    ``DatasetWriter`` (appends and commits every episode);
  - generate-style collection with 1 and with 2 worker processes (tasks writing store parts).

    python benchmarks/collect.py [--env cheetah] [--episodes 16] [--policy random|CHECKPOINT]

Prints steps/s (min / median) and writes ``benchmarks/results/collect-<host>-<time>.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import spin_data  # noqa: F401  (first: pins numpy's BLAS kernels, spin_data/blas.py)
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed, write_results  # noqa: E402

from spin_data.collect import UniformRandomPolicy, collect_episodes, episode_rng  # noqa: E402
from spin_data.envs import make_env  # noqa: E402
from spin_data.generate import Recipe, TaskPool, collect_source  # noqa: E402
from spin_data.store import DatasetWriter  # noqa: E402


def load_policy(name: str, grid):
    if name == "random":
        return UniformRandomPolicy(grid)
    from spin_data.behaviour import load_policy as load_checkpoint

    return load_checkpoint(name)


def raw_stepping(env_name: str, policy, seeds: list[int], n_envs: int) -> int:
    """Step envs in lockstep with batched inference; record nothing. Returns steps taken."""
    envs = [make_env(env_name) for _ in range(n_envs)]
    steps = 0
    for start in range(0, len(seeds), n_envs):
        block = seeds[start : start + n_envs]
        obs = [envs[i].reset(seed=s)[0] for i, s in enumerate(block)]
        rngs = [episode_rng(s) for s in block]
        alive = list(range(len(block)))
        while alive:
            actions = policy.act(np.stack([obs[i] for i in alive]), [rngs[i] for i in alive])
            still = []
            for row, i in enumerate(alive):
                obs[i], _, terminated, truncated, _ = envs[i].step(actions[row])
                steps += 1
                if not (terminated or truncated):
                    still.append(i)
            alive = still
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="cheetah")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--policy", default="random", help="random or a behaviour checkpoint")
    args = parser.parse_args()
    grid = make_env(args.env).bin_grid
    obs_dim = make_env(args.env).observation_space.shape[0]
    policy = load_policy(args.policy, grid)
    seeds = list(range(args.episodes))
    work = Path(tempfile.mkdtemp(prefix="spin-collect-"))
    steps = raw_stepping(args.env, policy, seeds[:1], 1)  # warm-up, and episode length

    def collect_and_write():
        out = work / f"store-{time.monotonic_ns()}"
        writer = DatasetWriter(out, obs_dim=obs_dim, bin_grid=grid)
        for ep in collect_episodes(lambda: make_env(args.env), policy, seeds,
                                   n_envs=args.n_envs):
            writer.add_episode(ep.observations, ep.actions, ep.rewards,
                               terminated=ep.terminated, truncated=ep.truncated,
                               source="other", seed=ep.seed)
        writer.close()

    def with_workers(workers: int):
        def run():
            out = work / f"gen-{workers}-{time.monotonic_ns()}"
            recipe = Recipe(env=args.env, quality="random", size=args.episodes * steps)
            staging = Path(str(out) + ".partial")
            pool = TaskPool("local", workers)
            try:
                collect_source(recipe, str(out), staging, "random", None, pool=pool,
                               n_envs=args.n_envs)
            finally:
                pool.close()
        return run

    total = args.episodes * steps
    results = {
        "raw stepping": timed(lambda: raw_stepping(args.env, policy, seeds, args.n_envs),
                              args.repeats),
        "collect + write": timed(collect_and_write, args.repeats),
    }
    if args.policy == "random":  # generate-style tasks run the recipe's own (random) policy
        results["tasks, 1 worker"] = timed(with_workers(1), args.repeats)
        results["tasks, 2 workers"] = timed(with_workers(2), args.repeats)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{args.env}, {args.episodes} episodes x {steps} steps, policy {args.policy}, "
          f"{args.n_envs} envs in lockstep")
    raw = total / results["raw stepping"]["median_s"]
    for name, r in results.items():
        rate = total / r["median_s"]
        print(f"  {name:18s} {total / r['max'] if 'max' in r else total / max(r['all_s']):9.0f}"
              f" / {rate:9.0f} steps/s (min / median)  {rate / raw:6.1%} of raw")
    path = write_results("collect", {"args": vars(args), "steps": total, "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
