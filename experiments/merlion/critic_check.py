"""Is a finished MERLION run's shortfall in its critic or in its latent policy?

    python -m experiments.merlion.critic_check RUN_DIR [--episodes N] [--out FILE.json]

(from the repository root: ``experiments`` is not installed). Notes and recorded results:
``experiments/merlion/README.md``.

Loads a ``spin-train policy --actor merlion`` run's final weights (``policy.pt``, tensors only)
and plays the run's maze with three ways of acting, on the environment seeds of the run's own
evaluations:

- ``policy``: the run's latent policy through the lookup g, exactly as its evaluations act
  (same sampling seed as its last one, so its mean return is that evaluation's);
- ``critic argmax``: ``argmax_a min_k Q_k(s, phi(a; s))`` over every joint action, what a latent
  policy that found its critic's maximum among the actions g can return would do;
- ``critic argmax in data``: the same argmax over the actions the behaviour model keeps
  (``G(a|s) / max G >= tau``, the support MERLION's penalty calls in data).

Reading it: ``critic argmax`` failing where ``critic argmax in data`` succeeds means the critic
rates out-of-data actions above the data's; ``policy`` failing where ``critic argmax`` succeeds
means the latent policy does not find its critic's maximum. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from experiments.merlion.common import play, report
from spin_train.algos import MerlionLearner
from spin_train.data import ObservationNormaliser, materialise
from spin_train.models.support import ratio_constrained_argmax
from spin_train.policy import PolicyConfig
from spin_train.policy.evaluate import evaluation_seeds
from spin_train.policy.trainer import build_learner
from spin_train.runs import load_checkpoint, read_metrics


@torch.no_grad()
def critic_argmax(algo: MerlionLearner, obs: torch.Tensor, in_data: bool = False) -> torch.Tensor:
    """Joint indices ``(B,)`` maximising the twin critics' minimum over every action's
    representation at each state; with ``in_data``, over the actions G keeps only (discrete
    BCQ's ratio test ``G(a|s) / max G >= tau``, i.e. not out of data for MERLION's penalty)."""
    rep = algo.representation
    every = rep.encode_all(obs).float()  # (B, A, k)
    B, A, k = every.shape
    q = algo.critic_values(obs.repeat_interleave(A, 0), every.reshape(B * A, k)).view(B, A)
    if in_data:
        return ratio_constrained_argmax(rep.behaviour_log_probs(obs), q, rep.ood_threshold)
    return q.argmax(-1)


def load_run(run_dir: Path) -> tuple[PolicyConfig, dict, MerlionLearner, ObservationNormaliser]:
    """The run's config, its resolved ``config.json``, and its learner with the final weights
    (the dataset is opened for its bin grid and observation width)."""
    resolved = json.loads((run_dir / "config.json").read_text())
    if resolved.get("actor") != "merlion":
        raise SystemExit(f"error: {run_dir} is a {resolved.get('actor')!r} run, not merlion")
    names = {f.name for f in dataclasses.fields(PolicyConfig)}
    cfg = PolicyConfig(**{k: v for k, v in resolved.items() if k in names})
    cached = materialise(cfg.dataset, cache_dir=cfg.cache_dir)
    bins = tuple(int(b) for b in cached.bin_grid.counts)
    algo = build_learner(cfg, cached.obs_dim, bins)
    algo.load_state_dict(load_checkpoint(run_dir / "policy.pt")["algo"])
    algo.freeze_representation()
    algo.eval()
    return cfg, resolved, algo, ObservationNormaliser.from_dict(resolved["normaliser"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=None,
                        help="episodes per way of acting (default: the run's eval_episodes)")
    parser.add_argument("--out", default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    cfg, resolved, algo, norm = load_run(args.run_dir)
    rows = read_metrics(args.run_dir)
    step = int(rows[-1]["step"])
    episodes = args.episodes or cfg.eval_episodes
    env_seed, sampling_seed = evaluation_seeds(cfg.seed, step)
    generator = torch.Generator().manual_seed(sampling_seed)

    def through(choose) -> dict:
        result = play(choose, norm, resolved["env"], resolved["env_kwargs"], episodes, env_seed)
        return {"mean": float(result.mean), "std": float(result.std),
                "normalised": result.normalised}

    table = algo.representation.space.table
    found = {
        "run": str(args.run_dir), "algo": cfg.algo, "dataset_id": resolved.get("dataset_id"),
        "step": step, "episodes": episodes, "run_eval_return_mean": rows[-1]["eval_return_mean"],
        "returns": {
            "policy": through(lambda o: algo.eval_actions(o, generator)),
            "critic argmax": through(lambda o: table[critic_argmax(algo, o)]),
            "critic argmax in data": through(lambda o: table[critic_argmax(algo, o, True)]),
        },
    }
    print(f"{found['run']} ({cfg.algo}, step {step}, {episodes} episodes)")
    return report(found, args.out, prefix="  ")


if __name__ == "__main__":
    main()
