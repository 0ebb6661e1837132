"""Where MERLION loses the return on a maze store: the representation, or the way back to actions.

    python -m experiments.merlion.diagnosis STORE [--steps 2000] [--vae-steps 4000]
        [--penalty P] [--episodes 20] [--seed 0] [--out FILE.json] [--cache-dir DIR]

(from the repository root: ``experiments`` is not installed). Notes and recorded results:
``experiments/merlion/README.md``.

Trains MERLION's representation (phase 1, as ``spin-train policy --actor merlion`` does: the
trainer's observation normaliser and reward scale) and latent BCQ's VAE, then measures

- how well phi encodes what an action does in the maze: the median over states of the R^2 of a
  linear fit of each joint action's true motion (its actuators' vector sum, norm <= 1) from
  ``phi(a; s)``, and the correlation of l1 latent distances with motion distances;
- crowding: the median l1 distance from a dataset action's latent to the nearest *other*
  action's latent, beside the VAE's median reconstruction error (when the error is larger, the
  lookup g returns a neighbour, not the decoded action);
- returns in the real maze of four policies that differ only in how they pick a latent (or an
  action), all but the first acted through g: the behaviour model's mode (argmax G, no
  lookup), a sample of G, the behaviour's latent mean ``E_G[phi(a; s)]``, and BCQ's VAE decode
  (its clipped prior, no critic). Without a critic, the last two are the best a behaviour-
  regularised latent policy starts from.

Prints a table and writes JSON (``--out``). No timings: run it anywhere.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch

from experiments.merlion.common import play, report
from spin_data.envs.maze import actuator_motions
from spin_train.algos.merlion import DISTANCE_UNITS, MerlionBCQ, MerlionBCQOptions
from spin_train.models.merlion import TRANSITION_LOSSES
from spin_train.data.buffer import ObservationNormaliser, PhaseData, TransitionBuffer
from spin_train.data.cache import materialise
from spin_train.policy.trainer import default_reward_scale, env_from_metadata

#: The diagnosis's own evaluation episodes start at environment seed ``EPISODE_SEED + --seed``:
#: this script's choice (not a run's evaluation seeds, ``evaluation_seeds``), kept so that the
#: recorded results replay.
EPISODE_SEED = 1_000_000


def motion_fit(latents: torch.Tensor, motion: torch.Tensor) -> float:
    """R^2 of the least-squares affine map ``latent (A, k) -> motion (A, 2)`` at one state."""
    design = torch.cat([latents, torch.ones(latents.shape[0], 1)], -1).double()
    target = motion.double()
    fit = design @ torch.linalg.lstsq(design, target).solution
    return float(1 - (fit - target).pow(2).sum() / (target - target.mean(0)).pow(2).sum())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("--steps", type=int, default=2000, help="representation steps")
    parser.add_argument("--vae-steps", type=int, default=4000, help="VAE steps (frozen phi)")
    parser.add_argument("--penalty", type=float, default=None,
                        help="MERLION's p (default: the one a run uses)")
    parser.add_argument("--units", choices=DISTANCE_UNITS, default=None,
                        help="where d^ is measured (default: the one a run uses)")
    parser.add_argument("--transition-loss", choices=TRANSITION_LOSSES, default=None,
                        help="how P^ is fitted (default: the one a run uses)")
    parser.add_argument("--lr", type=float, default=None,
                        help="the representation's Adam rate (default: the one a run uses)")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file to write")
    parser.add_argument("--cache-dir", default=None, help="dataset cache (default: spin's)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed + 1)

    cached = materialise(args.store, cache_dir=args.cache_dir)
    env_name, env_kwargs = env_from_metadata(cached.metadata)
    if not (env_name.startswith("maze") or env_name == "merlion"):
        parser.error(f"needs a maze store (maze-N or merlion), got env {env_name!r}")
    bins = tuple(int(b) for b in cached.bin_grid.counts)
    norm = ObservationNormaliser.from_cached(cached)
    scale = default_reward_scale(cached)
    buffer = TransitionBuffer(cached, device=torch.device("cpu"), seed=args.seed)

    def batch(n: int):
        b = buffer.sample(n)
        b.observations, b.next_observations = norm(b.observations), norm(b.next_observations)
        b.rewards = b.rewards * scale
        return b

    given = {"merlion_penalty": args.penalty, "merlion_units": args.units,
             "merlion_transition_loss": args.transition_loss, "merlion_lr": args.lr}
    options = MerlionBCQOptions(merlion_steps=args.steps,
                                **{k: v for k, v in given.items() if v is not None})
    algo = MerlionBCQ(cached.obs_dim, bins, options)
    algo.set_data_scale(torch.as_tensor(norm.std), scale)  # as the trainer does
    algo.first_phase(PhaseData(sample=batch, batch_size=options.merlion_batch,
                               generator=generator, progress=False))
    for _ in range(args.vae_steps):
        algo.update_vae(batch(options.merlion_batch), generator)
    algo.eval()
    rep, table = algo.representation, algo.representation.space.table

    vectors, peak = actuator_motions(len(bins))
    motion = torch.as_tensor(table.numpy() @ vectors / peak, dtype=torch.float32)  # (A, 2)
    probe = batch(256)
    with torch.no_grad():
        every = rep.encode_all(probe.observations)  # (B, A, k)
        r2 = [motion_fit(every[i], motion) for i in range(32)]
        pairs = torch.randint(0, table.shape[0], (2, 256, 64), generator=generator)
        rows = torch.arange(256)[:, None]
        l1 = (every[rows, pairs[0]] - every[rows, pairs[1]]).abs().sum(-1).flatten()
        moved = (motion[pairs[0]] - motion[pairs[1]]).norm(dim=-1).flatten()
        own = rep.space.encode(probe.actions)
        latent = every[torch.arange(256), own]
        gaps = (every - latent[:, None]).abs().sum(-1)
        gaps[torch.arange(256), own] = float("inf")
        decoded = algo.decode(probe.observations, generator)
    found = {
        "env": env_name, "dataset_id": cached.metadata.get("dataset_id"),
        "joint_actions": int(table.shape[0]), "args": vars(args), "penalty": rep.penalty,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
                   f"torch threads",
        "motion_r2_median": float(np.median(r2)),
        "l1_vs_motion_corr": float(np.corrcoef(l1.numpy(), moved.numpy())[0, 1]),
        "nearest_other_action_l1_median": float(gaps.amin(-1).median()),
        "vae_error_l1_median": float((decoded - latent).abs().sum(-1).median()),
    }

    def through(pick):
        result = play(lambda obs: table[pick(obs)], norm, env_name, env_kwargs, args.episodes,
                      EPISODE_SEED + args.seed)
        return {"mean": float(result.mean), "std": float(result.std)}

    def mean_latent(obs):
        weights = rep.behaviour_log_probs(obs).exp()[..., None]
        return rep.nearest(obs, (weights * rep.encode_all(obs)).sum(1))

    found["returns"] = {
        "mode of G (no lookup)": through(lambda o: rep.behaviour_log_probs(o).argmax(-1)),
        "sample of G (no lookup)": through(lambda o: torch.multinomial(
            rep.behaviour_log_probs(o).exp(), 1, generator=generator)[:, 0]),
        "g(E_G[phi])": through(mean_latent),
        "g(VAE decode)": through(lambda o: rep.nearest(o, algo.decode(o, generator))),
    }
    for key, value in found.items():
        if key not in ("args", "returns"):
            print(f"{key:34s} {value}")
    return report(found, args.out, prefix="return ")


if __name__ == "__main__":
    main()
