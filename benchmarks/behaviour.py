"""Behaviour-policy learners side by side: env steps/s and return vs env steps.

Every candidate trains on the same task view (the continuous view snapped to the bin grid, the
benchmark's [-1, 1] grid by default), with the same seeds, one torch/XLA thread each, and is
scored the way ladders score it: the stored actor (exported to spin's checkpoint format) acting
stochastically on fixed evaluation seeds of the true task.

Candidates (``--candidates``, default all):
  sb3-sac      stable-baselines3 SAC as spin configured it before (SAC_DEFAULTS, 1 env,
               1 gradient step per env step)
  sb3-sac-vec  the same with 4 envs and 4 gradient steps per vector step (the same update-to-data
               ratio, a quarter of the policy calls and train() entries)
  sb3-tqc      sb3-contrib TQC (torch)
  sbx-sac      sbx SAC (JAX), SAC_DEFAULTS
  sbx-tqc      sbx TQC
  sbx-crossq   sbx CrossQ (CROSSQ_DEFAULTS: 256-wide critics)

    python benchmarks/behaviour.py [--env cheetah] [--steps 20000] [--eval-every 5000]
        [--seeds 0] [--candidates sb3-sac,sbx-sac]

Prints a table (steps/s min / median over the evaluation intervals, return at each evaluation)
and writes ``benchmarks/results/behaviour-<env>-<host>-<time>.json``, a CSV of every evaluation
and a PNG (return vs env steps and vs wall-clock).
"""

from __future__ import annotations

import os

# Before JAX is imported: one XLA thread, as behaviour runs use (spin_data.behaviour.learners).
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import csv  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spin_data  # noqa: E402,F401  (before numpy: pins its BLAS kernels, spin_data/blas.py)
from common import write_results  # noqa: E402

from spin_data.behaviour import BehaviourConfig, BehaviourPolicy  # noqa: E402
from spin_data.behaviour import learners  # noqa: E402
from spin_data.behaviour.policy import build_policy_module, load_into, make_policy_spec  # noqa: E402
from spin_data.behaviour.evaluation import bin_grid_of, evaluate_returns  # noqa: E402
from spin_data.behaviour.train import _new_model, make_training_env  # noqa: E402
from spin_data.envs import registry  # noqa: E402

#: name -> (algorithm, library, n_envs, extra hyperparameters)
CANDIDATES: dict[str, tuple[str, str, int, dict]] = {
    "sb3-sac": ("sac", "sb3", 1, {}),
    "sb3-sac-vec": ("sac", "sb3", 4, {"gradient_steps": 4}),
    "sb3-tqc": ("tqc", "sb3", 1, {}),
    "sbx-sac": ("sac", "sbx", 1, {}),
    "sbx-tqc": ("tqc", "sbx", 1, {}),
    "sbx-crossq": ("crossq", "sbx", 1, {}),
}


def run_candidate(name: str, args: argparse.Namespace, seed: int) -> list[dict]:
    """Train one candidate for ``args.steps`` env steps; one row per evaluation."""
    algorithm, library, n_envs, extra = CANDIDATES[name]
    config = BehaviourConfig(env=args.env, bins=args.bins, grid=args.grid, algorithm=algorithm,
                             library=library, budget=args.steps, eval_every=args.eval_every,
                             eval_episodes=args.eval_episodes, n_envs=n_envs, seed=seed,
                             hyperparameters={"learning_starts": args.learning_starts, **extra})
    venv = make_training_env(config)
    model = _new_model(config, venv, "cpu")
    spec = make_policy_spec("sac", venv.observation_space, venv.action_space,
                            config.hyperparameters["net_arch"],
                            config.hyperparameters["activation_fn"], bin_grid_of(config))
    policy = BehaviourPolicy(build_policy_module(spec), spec)
    ref = registry.reference_score(config.env, config.bins)
    rows, wall = [], 0.0
    while model.num_timesteps < config.budget:
        target = min(config.budget, model.num_timesteps + config.eval_every)
        before, start = model.num_timesteps, time.perf_counter()
        model.learn(target - model.num_timesteps, reset_num_timesteps=False, progress_bar=False)
        seconds = time.perf_counter() - start
        wall += seconds
        load_into(policy.module, spec, learners.actor_state_dict(model, algorithm, library))
        returns = evaluate_returns(config, policy)
        mean = float(returns.mean())
        rows.append({"candidate": name, "seed": seed, "step": int(model.num_timesteps),
                     "steps_per_s": (model.num_timesteps - before) / seconds,
                     "wall_s": round(wall, 2), "mean_return": mean,
                     "normalised": None if ref is None else ref.normalise(mean),
                     # the first interval includes learning_starts random steps (no updates)
                     "includes_warmup": before < args.learning_starts})
        print(f"  {name} seed {seed}: step {rows[-1]['step']:,} "
              f"{rows[-1]['steps_per_s']:.0f} steps/s return {mean:.1f}", flush=True)
    venv.close()
    return rows


def summarise(rows: list[dict]) -> dict:
    """Steps/s min / median over the training intervals after warm-up; final return."""
    rates = [r["steps_per_s"] for r in rows if not r["includes_warmup"]] or [
        r["steps_per_s"] for r in rows]
    finals = [r["mean_return"] for r in rows if r["step"] == max(x["step"] for x in rows)]
    return {"steps_per_s_min": min(rates), "steps_per_s_median": statistics.median(rates),
            "final_return_min": min(finals), "final_return_median": statistics.median(finals),
            "wall_s_median": statistics.median(
                [r["wall_s"] for r in rows if r["step"] == max(x["step"] for x in rows)])}


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in dict.fromkeys(r["candidate"] for r in rows):
        mine = [r for r in rows if r["candidate"] == name]
        for seed in sorted({r["seed"] for r in mine}):
            pts = [r for r in mine if r["seed"] == seed]
            label = name if seed == min(r["seed"] for r in mine) else None
            line, = axes[0].plot([r["step"] for r in pts], [r["mean_return"] for r in pts],
                                 label=label, marker="o", ms=3)
            axes[1].plot([r["wall_s"] / 60 for r in pts], [r["mean_return"] for r in pts],
                         color=line.get_color(), marker="o", ms=3)
    axes[0].set_xlabel("env steps")
    axes[1].set_xlabel("training wall-clock (min, evaluation excluded)")
    for ax in axes:
        ax.set_ylabel("mean return (stochastic policy)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="cheetah")
    parser.add_argument("--bins", type=int, default=3)
    parser.add_argument("--grid", choices=["unit", "actuator"], default="unit")
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per candidate")
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--learning-starts", type=int, default=5_000)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--note", default="", help="e.g. what else ran on the machine")
    args = parser.parse_args()
    names = args.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidate {unknown[0]!r}: accepted {', '.join(CANDIDATES)}")
    if any(CANDIDATES[n][1] == "sbx" for n in names) and not learners.sbx_installed():
        parser.error("sbx candidates need the JAX learners: pip install -e '.[sbx]'")
    learners.pin_threads()
    # The devices JAX trains the sbx candidates on: it takes a GPU whenever its CUDA plugin is
    # installed, and a steps/s figure means little without knowing which.
    jax_devices = None
    if any(CANDIDATES[n][1] == "sbx" for n in names):
        import jax

        jax_devices = [str(d) for d in jax.devices()]
        print(f"JAX devices: {', '.join(jax_devices)}", flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict] = []
    # Seeds outermost, candidates inner: drift of a shared host touches every candidate.
    for seed in seeds:
        for name in names:
            print(f"{name}, seed {seed} ...", flush=True)
            rows.extend(run_candidate(name, args, seed))
    table = {name: summarise([r for r in rows if r["candidate"] == name]) for name in names}
    base = table.get("sb3-sac")
    print(f"\n{'candidate':<12} {'steps/s min':>11} {'median':>8} {'x sb3-sac':>9} "
          f"{'return@end':>10} {'train min':>9}")
    for name, t in table.items():
        speedup = t["steps_per_s_median"] / base["steps_per_s_median"] if base else float("nan")
        print(f"{name:<12} {t['steps_per_s_min']:>11.0f} {t['steps_per_s_median']:>8.0f} "
              f"{speedup:>9.2f} {t['final_return_median']:>10.1f} {t['wall_s_median'] / 60:>9.1f}")
    path = write_results(f"behaviour-{args.env}", {"args": vars(args), "summary": table,
                                                     "rows": rows, "note": args.note,
                                                     "jax_devices": jax_devices})
    with open(path.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, path.with_suffix(".png"),
         f"{args.env} {args.bins} bins ({args.grid} grid), seeds {args.seeds}; {args.note}")
    print(f"\nwrote {path} (+ .csv, .png)")


if __name__ == "__main__":
    main()
