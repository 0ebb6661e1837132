"""MERLION (pseudometric action representations) and the joint-action baselines: the joint
action set, the pseudometric's parts, the encoder against the maze's true dynamics, the lookup,
each method learning a real maze dataset, resume, refusals, and the report's trend check."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from spin_data.envs.maze import BatchedMaze, maze_config
from spin_train.algos import MerlionBCQ, MerlionBCQOptions
from spin_train.cli import main as spin_train_main
from spin_train.data import ObservationNormaliser, TransitionBuffer, materialise
from spin_train.models.joint import JointActionSpace, check_enumerable
from spin_train.models.merlion import (PseudometricRepresentation, out_of_distribution,
                                       w2_diagonal_gaussians)
from spin_train.policy import PolicyConfig, train_policy
from spin_train.policy.trainer import build_learner, default_reward_scale
from spin_train.runs import load_checkpoint, read_metrics


# ------------------------------------------------------------------------------ joint actions
def test_joint_indices_count_in_mixed_radix_and_round_trip():
    space = JointActionSpace((2, 3, 2))
    every = torch.tensor(list(itertools.product(range(2), range(3), range(2))))
    assert space.size == 12
    assert torch.equal(space.table, every)  # itertools.product order = index order
    assert torch.equal(space.encode(every), torch.arange(12))
    assert torch.equal(space.decode(torch.arange(12)), every)
    features = space.features(every)
    assert features.shape == (12, 7) and torch.equal(features.sum(-1), torch.full((12,), 3.0))
    assert torch.equal(features[5], torch.tensor([1., 0., 0., 0., 1., 0., 1.]))  # (0, 2, 1)


def test_too_many_joint_actions_are_refused_naming_the_size():
    assert check_enumerable((2,) * 12) == 4096
    with pytest.raises(ValueError, match=r"humanoid has 3\^21 = 10,460,353,203 joint actions; "
                                         r"the joint-action methods .* at most 65,536"):
        check_enumerable((3,) * 21, "humanoid")


# ------------------------------------------------------------------------------ the pseudometric
def test_w2_of_diagonal_gaussians_matches_the_one_dimensional_quantile_coupling():
    """In 1-D, W2 is the L2 distance between quantile functions; per dimension of a diagonal
    Gaussian that is sqrt((mu_a - mu_b)^2 + (sigma_a - sigma_b)^2): checked on quantiles."""
    from statistics import NormalDist

    mean_a, std_a = torch.tensor([0.3, -1.0]), torch.tensor([0.5, 2.0])
    mean_b, std_b = torch.tensor([1.1, 0.5]), torch.tensor([1.5, 0.25])
    u = (np.arange(20_000) + 0.5) / 20_000

    def quantiles(mean, std):
        return np.array([NormalDist(float(mean), float(std)).inv_cdf(p) for p in u])

    squared = sum(np.mean((quantiles(mean_a[i], std_a[i]) - quantiles(mean_b[i], std_b[i]))
                          ** 2) for i in range(2))
    w2 = w2_diagonal_gaussians(mean_a, std_a, mean_b, std_b)
    assert float(w2) == pytest.approx(np.sqrt(squared), rel=1e-3)


def test_the_bcq_prior_clip_bounds_the_spread_of_decoded_latent_actions():
    """``--merlion-prior-clip`` reaches the VAE: at one state, decodes from a wider clip of the
    prior spread further (the authors' 0.5 keeps them near the behaviour's mean); 0 decodes
    one point."""
    torch.manual_seed(0)
    learner = MerlionBCQ(2, (2, 2, 2), MerlionBCQOptions(critic_hidden=32))
    obs = torch.zeros(4000, 2)

    def spread(clip):
        learner.vae.prior_clip = clip
        decoded = learner.decode(obs, torch.Generator().manual_seed(1))
        return float(decoded.std(0).sum())

    assert spread(0.0) < 1e-6 < spread(0.5) < spread(3.0)
    cfg = dict(dataset="x", actor="merlion", merlion_prior_clip=2.0)
    assert build_learner(PolicyConfig(**cfg, algo="bcq"), 2, (2, 2)).vae.prior_clip == 2.0
    assert not hasattr(build_learner(PolicyConfig(**cfg, algo="cql"), 2, (2, 2)), "vae")
    assert MerlionBCQ(2, (2, 2), MerlionBCQOptions(merlion_prior_clip=2.0)).vae.prior_clip == 2.0
    with pytest.raises(ValueError, match="merlion_prior_clip must be >= 0"):
        PolicyConfig(**(cfg | {"merlion_prior_clip": -1.0}), algo="bcq")


def test_lookup_returns_the_true_nearest_action_by_brute_force():
    torch.manual_seed(0)
    rep = PseudometricRepresentation(obs_dim=3, bins=(2, 3, 2, 2), latent_dim=3, hidden=32,
                                     penalty=0.3, ood_threshold=0.3, transition_loss="gaussian")
    obs, latent = torch.randn(70, 3), torch.randn(70, 3)
    found = rep.nearest(obs, latent, chunk=16)  # chunks of 16 cover 70 states
    with torch.no_grad():
        brute = [[float((rep.encode(obs[b:b + 1], a[None]) - latent[b]).abs().sum())
                  for a in rep.space.table] for b in range(70)]
    assert found.tolist() == [int(np.argmin(row)) for row in brute]


def _maze_batches(store):
    cached = materialise(str(store))
    bins = tuple(int(b) for b in cached.bin_grid.counts)
    normaliser = ObservationNormaliser.from_cached(cached)
    norm = normaliser.on(torch.device("cpu"))
    scale = default_reward_scale(cached)
    buffer = TransitionBuffer(cached, device=torch.device("cpu"), seed=0)

    def sample(n):
        batch = buffer.sample(n)
        raw = batch.observations.clone()
        batch.observations = norm(batch.observations)
        batch.next_observations = norm(batch.next_observations)
        batch.rewards = batch.rewards * scale
        return batch, raw

    return bins, sample, norm, scale


def test_encoder_distances_track_the_pseudometric_of_the_real_maze(maze_medium_expert):
    """Algorithm 2 on a real maze-5 store, then, at dataset states and random action pairs,
    the l1 distance of the representations against (a) the target the models estimate and (b)
    the pseudometric computed from the maze itself: each action stepped from the state without
    action noise (so W2 of the two next-state Diracs is their Euclidean distance)."""
    store, _ = maze_medium_expert
    bins, sample, norm, scale = _maze_batches(store)
    torch.manual_seed(0)
    learner = MerlionBCQ(2, bins, MerlionBCQOptions(critic_hidden=64))
    generator = torch.Generator().manual_seed(0)
    for _ in range(1500):
        learner.update_representation(sample(128)[0], generator)
    rep = learner.representation

    batch, raw = sample(512)
    j = rep.space.sample(512, generator)
    with torch.no_grad():
        e_i, e_j = rep.encode(batch.observations, batch.actions), rep.encode(
            batch.observations, rep.space.table[j])
        l1 = (e_i - e_j).abs().sum(-1).numpy()
        estimated = rep.target_distance(batch.observations, batch.rewards, e_i, e_j, j).numpy()
        ood = rep.penalty * out_of_distribution(rep.behaviour_log_probs(batch.observations), j,
                                                rep.ood_threshold).numpy()

    maze = BatchedMaze(dataclasses.replace(maze_config(5), noise_prob=0.0), 512, autoreset=False)
    outcomes = []
    for actions in (batch.actions.numpy(), rep.space.table[j].numpy()):
        maze.reset(seed=0)
        for b in range(512):
            maze.start_episode(b, np.random.default_rng(b), position=tuple(raw[b, :2].tolist()))
        next_obs, reward, *_ = maze.step(actions)
        outcomes.append((norm(torch.as_tensor(next_obs)).numpy(), reward * scale))
    (next_i, r_i), (next_j, r_j) = outcomes
    true = np.abs(r_i - r_j) + rep.discount * np.linalg.norm(next_i - next_j, axis=1) + ood

    assert np.corrcoef(l1, estimated)[0, 1] > 0.8
    assert np.corrcoef(l1, true)[0, 1] > 0.7
    assert np.corrcoef(estimated, true)[0, 1] > 0.7


# ------------------------------------------------------------------------------ training
def _cfg(store, tmp_path, name, **kw):
    base = dict(dataset=str(store), out=str(tmp_path / name), cache_dir=str(tmp_path / "cache"),
                device="cpu", progress=False, batch_size=128, critic_hidden=64, seed=0,
                merlion_steps=1000)
    return PolicyConfig(**(base | kw))


@pytest.mark.parametrize("algo", ["bcq", "cql", "bc"])
def test_each_joint_baseline_learns_the_maze_above_random(maze_deterministic, tmp_path, algo):
    """A short CPU run of each baseline on whole joint actions (real maze-5 medium-expert data,
    behaviour policies acting with their mode): the uniform-random policy scores normalised 0
    (every episode -7.5). Greedy Q-policies on the maze either reach the goal or stick at a
    wall, so the bar is the mean of the last two evaluations. On the sampled-action store the
    Q-learners swing between the two for thousands of steps (said in the README)."""
    store, _ = maze_deterministic
    result = train_policy(_cfg(store, tmp_path, algo, actor="joint", algo=algo, steps=2000,
                               eval_every=500, eval_episodes=10))
    rows = read_metrics(result.run_dir)
    assert [r["step"] for r in rows] == [0, 500, 1000, 1500, 2000]
    assert rows[0]["eval_normalised"] < 0.05, rows
    assert np.mean([r["eval_normalised"] for r in rows[-2:]]) > 0.5, rows


def _check_both_phases(run_dir) -> list[dict]:
    """A MERLION run's rows, after checking that it records phase 1's time and loss, counts it
    in the wall-clock and measured its latent box."""
    rows = read_metrics(run_dir)
    assert rows[0]["representation_s"] > 0 and np.isfinite(rows[0]["representation_loss"])
    assert rows[0]["wall_clock_s"] == pytest.approx(rows[0]["representation_s"])
    assert all(np.isfinite(r["q_loss"]) for r in rows[1:])
    assert all(r["eval_return_mean"] >= -7.5 - 1e-6 for r in rows)  # real maze returns
    weights = load_checkpoint(run_dir / "policy.pt")["algo"]
    low, high = weights["low"], weights["high"]
    assert torch.all(high - low > 2e-3)  # a measured box, not the (-1, 1) placeholder
    assert not torch.equal(low, torch.full_like(low, -1.0))
    return rows


def test_merlion_bcq_learns_the_maze_above_random(maze_medium_expert, tmp_path):
    """Both phases on real maze-5 medium-expert data (sampled actions), evaluated through the
    lookup: the policy reaches the goal in most episodes at some evaluation, which the
    uniform-random policy never does (-7.5 every episode). Like every greedy Q-policy here it
    swings between the goal and a wall from one evaluation to the next (README), so the bar is
    the best evaluation and the mean of those from 1,500 steps on; seeds 0, 1 and 2 all clear
    it (measured: means 0.38, 0.34, 0.37), while at p = 0.01 seeds 1 and 2 do not (best
    evaluations -7.5 and 23.4)."""
    store, _ = maze_medium_expert
    result = train_policy(_cfg(store, tmp_path, "bcq", actor="merlion", algo="bcq",
                               steps=5000, eval_every=500, eval_episodes=10,
                               merlion_steps=2000, critic_hidden=256))
    rows = _check_both_phases(result.run_dir)
    assert [r["step"] for r in rows] == list(range(0, 5001, 500))
    assert rows[0]["eval_normalised"] < 0.05, rows
    later = [r["eval_normalised"] for r in rows if r["step"] >= 1500]
    assert max(later) > 0.5 and np.mean(later) > 0.2, later


def test_merlion_cql_runs_both_phases(maze_medium_expert, tmp_path):
    """MERLION-CQL end to end (whether it learns the maze: see the README, it mostly does not
    at this size)."""
    store, _ = maze_medium_expert
    result = train_policy(_cfg(store, tmp_path, "cql", actor="merlion", algo="cql", steps=200,
                               eval_every=100, eval_episodes=4, merlion_steps=300))
    assert [r["step"] for r in _check_both_phases(result.run_dir)] == [0, 100, 200]


def test_a_merlion_run_resumes_exactly(maze_medium_expert, tmp_path):
    store, _ = maze_medium_expert
    kw = dict(actor="merlion", algo="cql", steps=60, eval_every=20, eval_episodes=3,
              merlion_steps=50)
    straight = train_policy(_cfg(store, tmp_path, "straight", **kw))
    train_policy(_cfg(store, tmp_path, "resumed", **(kw | {"steps": 20})))
    resumed = train_policy(_cfg(store, tmp_path, "resumed", **kw))
    a = load_checkpoint(straight.run_dir / "policy.pt")["algo"]
    b = load_checkpoint(resumed.run_dir / "policy.pt")["algo"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "actor" not in load_checkpoint(resumed.run_dir / "policy.pt")
    ra, rb = read_metrics(straight.run_dir), read_metrics(resumed.run_dir)
    assert [r["eval_return_mean"] for r in ra] == [r["eval_return_mean"] for r in rb]
    res = CliRunner().invoke(spin_train_main, ["compare", str(straight.run_dir),
                                               str(resumed.run_dir), "--plot",
                                               str(tmp_path / "cmp.png")])
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if " merlion " in f" {line} ")
    assert " cql " in f" {row} " and f"{ra[-1]['eval_return_mean']:.2f}" in row


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("args, message", [
    (["--actor", "joint", "--algo", "iql"], "the joint actor trains with --algo bcq, cql, bc, "
                                            "not 'iql'"),
    (["--actor", "merlion", "--algo", "bc"], "the merlion actor trains with --algo bcq, cql, "
                                             "not 'bc'"),
    (["--actor", "factored", "--algo", "cql"], "the factored actor trains with --algo iql, "
                                               "awac, bcq, not 'cql'"),
    (["--actor", "merlion", "--algo", "cql", "--merlion-threshold", "1.5"],
     "merlion_threshold must be in [0, 1]"),
])
def test_joint_policy_usage_errors(args, message):
    res = CliRunner().invoke(spin_train_main, ["policy", "--dataset", "x", *args])
    assert res.exit_code == 2 and message in res.output, res.output


def test_a_task_too_large_to_enumerate_is_refused_before_anything_is_written(tmp_path):
    from spin_data.generate import generate
    from spin_data.recipe import Recipe

    generate(Recipe(env="maze-17", quality="random", size=200, seed=0, episodes_per_task=4),
             str(tmp_path / "maze17"), workers=1, progress=False)
    res = CliRunner().invoke(spin_train_main, [
        "policy", "--dataset", str(tmp_path / "maze17"), "--actor", "joint", "--algo", "bc",
        "--device", "cpu", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert "2^17 = 131,072 joint actions" in res.output
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ report
def test_the_report_checks_the_merlion_papers_trends():
    from pipelines.paper import compare_with_paper, method_label

    assert [method_label(*m) for m in [("merlion", "bcq"), ("joint", "cql"), ("joint", "bc")]] \
        == ["MERLION-BCQ", "Discrete CQL", "BC"]

    def group(actor, algo, mean, std):
        return {"dataset_id": "maze-12-2bins-medium", "actor": actor, "algo": algo,
                "final_return_mean": mean, "final_return_std": std}

    groups = [group("merlion", "bcq", 80.0, 5.0), group("joint", "bcq", 60.0, 5.0),
              group("merlion", "cql", 50.0, 10.0), group("joint", "cql", 45.0, 10.0),
              group("joint", "bc", 55.0, 1.0)]
    lines = compare_with_paper("merlion_fig2", groups).splitlines()
    verdicts = {line.split("  ")[1].strip(): line.split()[-1] for line in lines
                if line.startswith("maze-12")}
    assert verdicts == {"MERLION-BCQ > Discrete BCQ": "clearly",
                        "MERLION-CQL > Discrete CQL": "holds",
                        "MERLION-BCQ > BC": "clearly", "MERLION-CQL > BC": "reversed"}


def test_the_paper_units_measure_the_distance_in_raw_observations_and_rewards():
    """``--merlion-units raw``: d^'s next-state distance is taken on raw coordinates (the
    normaliser's std times the learner's) and its reward difference on raw rewards (divided by
    the reward scale); ``learner`` keeps the learner's units. With the squared-error P^ (the
    paper's), W2 of two point predictions is the distance of their means."""
    torch.manual_seed(0)
    obs, latent_i, latent_j = torch.randn(6, 3), torch.randn(6, 2), torch.randn(6, 2)
    rewards, index_j = torch.rand(6), torch.randint(0, 8, (6,))
    std, scale = torch.tensor([2.0, 0.5, 3.0]), 0.25
    for units in ("raw", "learner"):
        learner = MerlionBCQ(3, (2, 2, 2), MerlionBCQOptions(
            critic_hidden=16, merlion_units=units, merlion_transition_loss="mse",
            merlion_penalty=0.0))
        learner.set_data_scale(std, scale)
        rep = learner.representation
        with torch.no_grad():
            mean_i, sd_i = rep.predict_next(obs, latent_i)
            mean_j, _ = rep.predict_next(obs, latent_j)
            reward_gap = (rewards - rep.predict_reward(obs, latent_j)).abs()
            got = rep.target_distance(obs, rewards, latent_i, latent_j, index_j)
        assert torch.equal(sd_i, torch.zeros_like(sd_i))  # a point prediction
        f, c = (std, 1 / scale) if units == "raw" else (torch.ones(3), 1.0)
        expected = reward_gap * c + 0.99 * ((mean_i - mean_j) * f).norm(dim=-1)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="merlion_units must be one of raw, learner, got 'si'"):
        PolicyConfig(dataset="x", actor="merlion", algo="cql", merlion_units="si")
    with pytest.raises(ValueError, match="merlion_transition_loss must be one of mse, gaussian"):
        PolicyConfig(dataset="x", actor="merlion", algo="cql", merlion_transition_loss="l1")


def test_discrete_cql_can_use_the_dqn_recipes_huber_loss_and_hard_target_copies():
    """``--cql-td-loss huber --cql-target-every 3``: the reported TD loss is the Huber loss of
    the batch (recomputed here), and the target network stays put between copies, then equals
    Q after every third update."""
    import copy

    from spin_train.algos import DiscreteCQL
    from spin_train.algos.joint import DiscreteCQLOptions
    from spin_train.data import Batch

    torch.manual_seed(0)
    learner = DiscreteCQL(3, (2, 2), DiscreteCQLOptions(critic_hidden=16, cql_td_loss="huber",
                                                        cql_target_every=3))
    g = torch.Generator().manual_seed(1)
    batch = Batch(observations=torch.randn(32, 3, generator=g),
                  actions=torch.randint(0, 2, (32, 2), generator=g),
                  rewards=5 * torch.randn(32, generator=g),  # TD errors beyond Huber's knee
                  next_observations=torch.randn(32, 3, generator=g), not_done=torch.ones(32))
    start = {k: v.clone() for k, v in learner.q_target.state_dict().items()}
    for step in (1, 2, 3, 4):
        with torch.no_grad():
            target = batch.rewards + 0.99 * learner.q_target(batch.next_observations).amax(-1)
            q = learner.q(batch.observations).gather(
                1, learner.space.encode(batch.actions)[:, None])[:, 0]
        stats = learner.update(batch)
        assert float(stats["q_loss"]) == pytest.approx(
            float(torch.nn.functional.smooth_l1_loss(q, target)), rel=1e-5)
        held = all(torch.equal(v, start[k]) for k, v in learner.q_target.state_dict().items())
        copied = all(torch.equal(v, learner.q.state_dict()[k])
                     for k, v in learner.q_target.state_dict().items())
        assert (held, copied) == ((True, False) if step in (1, 2) else (False, step == 3))
    resumed = DiscreteCQL(3, (2, 2), learner.options)  # the clock resumes with the weights
    resumed.load_full_state(copy.deepcopy(learner.full_state()))  # as from a checkpoint file
    for _ in range(2):  # update 6 copies on both
        learner.update(batch), resumed.update(batch)
    for k, v in learner.q_target.state_dict().items():
        assert torch.equal(v, learner.q.state_dict()[k])
        assert torch.equal(v, resumed.q_target.state_dict()[k])
    with pytest.raises(ValueError, match="cql_td_loss must be one of squared, huber"):
        PolicyConfig(dataset="x", actor="joint", algo="cql", cql_td_loss="l2")


def test_merlion_cql_bc_warm_start_clones_the_data_then_hands_over_to_the_critic():
    """``--merlion-cql-bc-steps N``: the first N updates fit the latent policy to the data's
    ``phi(a; s)`` (the CQL authors' warm start), so acting through ``g`` returns the data's
    action; without it the same updates follow an untrained critic. The count resumes with the
    weights, and update N + 1 is the critic's."""
    import copy

    from spin_train.algos import MerlionCQL
    from spin_train.algos.merlion import MerlionCQLOptions
    from spin_train.data import Batch

    g = torch.Generator().manual_seed(0)
    obs = torch.randn(256, 3, generator=g)
    space = JointActionSpace((2, 2, 2))
    data_action = space.decode(torch.full((256,), 5))  # one action everywhere: (1, 0, 1)
    batch = Batch(observations=obs, actions=data_action, rewards=torch.zeros(256),
                  next_observations=obs.roll(1, 0), not_done=torch.ones(256))

    def trained(bc_steps):
        torch.manual_seed(0)
        learner = MerlionCQL(3, (2, 2, 2), MerlionCQLOptions(critic_hidden=32, lr=3e-3,
                                                             merlion_cql_bc_steps=bc_steps))
        every = space.table.repeat(32, 1)  # the box spans every action's representation
        learner.freeze_representation(obs[:32].repeat_interleave(8, 0), every)
        with torch.no_grad():
            before = float(learner.log_prob(obs, learner.latent(obs, data_action)).mean())
        for _ in range(300):
            learner.update(batch, g)
        with torch.no_grad():
            after = float(learner.log_prob(obs, learner.latent(obs, data_action)).mean())
        picked = (learner.eval_actions(obs) == data_action).all(-1).float().mean()
        return learner, before, after, float(picked)

    # Measured: log-likelihood 1.97 -> 6.7 and 0.92 of the states act with the data's action
    # after the warm start; 3.8 and 0.6 after the same updates following the critic.
    cloned, before, after, picked = trained(300)
    assert after > before + 3 and picked > 0.85, (before, after, picked)
    _, _, after_rl, picked_rl = trained(0)
    assert after_rl < after - 1.5 and picked_rl < picked - 0.15, (after_rl, picked_rl)

    learner = MerlionCQL(3, (2, 2, 2), MerlionCQLOptions(critic_hidden=32,
                                                         merlion_cql_bc_steps=301))
    learner.load_full_state(copy.deepcopy(cloned.full_state()))  # as from a checkpoint file
    assert learner.updates.value == 300
    with torch.no_grad():
        q_before = learner.critic_values(obs, learner.latent(obs, data_action))
    stats = learner.update(batch, torch.Generator().manual_seed(1))  # update 301: still BC
    reference = MerlionCQL(3, (2, 2, 2), MerlionCQLOptions(critic_hidden=32,
                                                           merlion_cql_bc_steps=300))
    reference.load_full_state(copy.deepcopy(cloned.full_state()))
    stats_rl = reference.update(batch, torch.Generator().manual_seed(1))  # 301: the critic's
    assert learner.updates.value == reference.updates.value == 301
    assert float(stats["actor_loss"]) != pytest.approx(float(stats_rl["actor_loss"]), abs=1e-3)
    assert torch.isfinite(q_before).all()
    with pytest.raises(ValueError, match="merlion_cql_bc_steps must be >= 0"):
        PolicyConfig(dataset="x", actor="merlion", algo="cql", merlion_cql_bc_steps=-1)


def test_merlion_cqls_entropy_target_does_not_depend_on_the_size_of_the_latent_box():
    """SAC's target entropy -k is for actions in [-1, 1]^k, so MERLION-CQL applies it in the
    box's unit coordinates: the same policy in a box of side 0.2 and of side 20 moves the
    entropy weight identically (on the box's own density a 0.2 box cannot reach -k, and the
    weight grew without bound: 1 -> 17 in 1,000 updates, measured)."""
    from spin_train.algos import MerlionCQL
    from spin_train.algos.merlion import MerlionCQLOptions

    obs = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    alphas = []
    for side in (0.2, 20.0):
        torch.manual_seed(0)
        learner = MerlionCQL(3, (2, 2), MerlionCQLOptions(critic_hidden=16))
        learner.low.fill_(-side / 2), learner.high.fill_(side / 2)
        for step in range(5):
            learner._update_policy(obs, torch.Generator().manual_seed(step))
        alphas.append(float(learner.log_entropy_alpha))
    assert alphas[0] == pytest.approx(alphas[1], abs=1e-6) and alphas[0] != 0.0
