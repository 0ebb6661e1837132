"""SPIN stage 2: actors, objectives, the trainer (evaluation, resume, wall-clock), the
spin-train policy / compare commands and their refusals."""

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from spin_train.algos import ALGORITHMS
from spin_train.cli import main as spin_train_main
from spin_train.data import TransitionBuffer, materialise
from spin_train.models import ActionStructureModel, ASMConfig
from spin_train.models.actors import ACTORS, make_actor
from spin_train.policy import PolicyConfig, train_policy
from spin_train.pretrain import PretrainConfig, pretrain
from spin_train.runs import load_checkpoint, read_metrics

SMALL_ASM = dict(d_model=32, n_heads=2, n_layers=1, head_hidden=32, dropout=0.0)


@pytest.fixture(scope="module")
def maze_asm(maze_medium_expert, tmp_path_factory):
    """A short pre-training run on the maze dataset (its ASM feeds the spin/distill actors)."""
    store, _ = maze_medium_expert
    root = tmp_path_factory.mktemp("asm")
    result = pretrain(PretrainConfig(dataset=str(store), out=str(root / "asm"), epochs=4,
                                     batch_size=256, cache_dir=str(root / "cache"), device="cpu",
                                     progress=False, d_model=64, n_layers=2, head_hidden=64,
                                     dropout=0.0))
    return result


def _joint_actions(bins):
    return torch.tensor(list(itertools.product(*[range(b) for b in bins])))


# ------------------------------------------------------------------------------ actors
@pytest.mark.parametrize("kind", ACTORS)
def test_every_actor_is_a_normalised_distribution_over_joint_actions(kind):
    torch.manual_seed(0)
    bins = (3, 2, 4)
    asm = ActionStructureModel(ASMConfig(obs_dim=5, bins=bins, **SMALL_ASM))
    actor = make_actor(kind, obs_dim=5, bins=bins, asm=asm,
                       asm_config=ASMConfig(obs_dim=5, bins=bins, **SMALL_ASM)).eval()
    obs = torch.randn(3, 5)
    joint = _joint_actions(bins)  # all 24 joint actions
    with torch.no_grad():
        logp = torch.stack([actor.log_prob(obs[i:i + 1].expand(len(joint), -1), joint)
                            for i in range(3)])
    torch.testing.assert_close(logp.exp().sum(1), torch.ones(3), rtol=1e-5, atol=1e-5)
    # samples follow the distribution (per-state frequency of the most likely joint action)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        draws = actor.sample(obs[:1].expand(20_000, -1), gen)
        assert ((draws >= 0) & (draws < torch.tensor(bins))).all()
        best = logp[0].argmax()
        freq = (draws == joint[best]).all(1).float().mean()
        assert abs(freq.item() - logp[0, best].exp().item()) < 0.02
        greedy = actor.greedy(obs)
    if kind == "autoregressive":  # greedy decodes step by step: a_i = argmax pi_i(. | a_<i)
        logits = actor.logits(obs, greedy)
        assert (logits.argmax(-1) == greedy).all()
    else:  # independent given the state: the mode of the joint is the greedy action
        for i in range(3):
            assert (joint[logp[i].argmax()] == greedy[i]).all()


@pytest.mark.parametrize("kind", ["factored", "autoregressive"])
def test_constrained_argmax_keeps_only_likely_bins(kind):
    torch.manual_seed(0)
    bins = (4, 4)
    actor = make_actor(kind, obs_dim=3, bins=bins).eval()
    obs = torch.randn(64, 3)
    scores = torch.randn(64, 2, 4)
    with torch.no_grad():
        chosen = actor.constrained_argmax(obs, scores, 0.3)
        probs = (torch.softmax(actor.logits(obs, chosen), -1) if kind == "autoregressive"
                 else actor.policy_probs(obs))
    ratio = probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1) / probs.amax(-1)
    assert (ratio >= 0.3 - 1e-6).all()
    # Computed independently: among the bins with pi(b)/max pi >= 0.3, the best-scoring one.
    allowed = probs / probs.amax(-1, keepdim=True) >= 0.3
    expected = scores.masked_fill(~allowed, float("-inf")).argmax(-1)
    assert torch.equal(chosen, expected)
    assert (allowed.sum(-1) > 1).any()  # the threshold let several bins compete somewhere
    with torch.no_grad():  # threshold 1: only the mode; threshold 0: the best score
        mode = actor.constrained_argmax(obs, scores, 1.0)
        mode_probs = (torch.softmax(actor.logits(obs, mode), -1) if kind == "autoregressive"
                      else probs)
        assert torch.equal(mode, mode_probs.argmax(-1))
        assert (actor.constrained_argmax(obs, scores, 0.0) == scores.argmax(-1)).all()


def _n_params_changed(before, module):
    return sum(not torch.equal(before[k], v) for k, v in module.state_dict().items())


@pytest.mark.parametrize("kind, algo", list(itertools.product(ACTORS, ALGORITHMS)))
def test_every_actor_trains_with_every_objective(maze_medium_expert, maze_asm, tmp_path, kind,
                                                 algo):
    """A few real updates on real maze batches: the critic fits its targets, the actor's
    log-likelihood of the dataset's actions rises, and a frozen trunk stays frozen."""
    store, _ = maze_medium_expert
    cached = materialise(store, cache_dir=tmp_path)
    bins = tuple(cached.bin_grid.counts)
    torch.manual_seed(0)
    from spin_train.pretrain import load_asm
    asm = load_asm(maze_asm.asm_path)[0] if kind in ("spin", "distill") else None
    actor = make_actor(kind, obs_dim=cached.obs_dim, bins=bins, asm=asm,
                       asm_config=ASMConfig(obs_dim=cached.obs_dim, bins=bins, **SMALL_ASM))
    if kind == "distill":
        actor.freeze_student()
    trunk = {k: v.clone() for k, v in actor.state_dict().items()
             if k.startswith(("net.asm.state_encoder", "net.asm.blocks", "teacher.", "student."))}
    algorithm = ALGORITHMS[algo](actor, cached.obs_dim, bins,
                                 ALGORITHMS[algo].Options(critic_hidden=64))
    # One fixed batch, updated on repeatedly: the critic must fit it and the actor's
    # likelihood of its actions must rise (sampling noise would hide both in 40 steps).
    probe = TransitionBuffer(cached, normalise=True, seed=0).sample(256)
    with torch.no_grad():
        logp_before = actor.log_prob(probe.observations, probe.actions)
    gen = torch.Generator().manual_seed(0)
    losses = [algorithm.update(probe, gen) for _ in range(40)]
    assert all(torch.isfinite(v).all() for s in losses for v in s.values())
    q_first = np.mean([float(s["q_loss"]) for s in losses[:5]])
    q_last = np.mean([float(s["q_loss"]) for s in losses[-5:]])
    assert q_last < q_first
    with torch.no_grad():
        logp_after = actor.log_prob(probe.observations, probe.actions)
    # the objective's weighted log-likelihood (weights as the trained critic gives them) rose
    weights = algorithm.actor_weights(probe.observations, probe.actions, gen)
    assert (weights >= 0).all()
    assert (weights * logp_after).mean() > (weights * logp_before).mean()
    state = actor.state_dict()
    unchanged = [torch.equal(state[k], v) for k, v in trunk.items()]
    if kind in ("spin", "distill"):  # the frozen representation stays as pre-trained
        assert unchanged and all(unchanged)
    elif kind == "saint":  # the same network trained from scratch: its trunk learns
        assert unchanged and not any(unchanged)
    with torch.no_grad():
        acts = algorithm.eval_actions(probe.observations[:8], gen)
    assert acts.shape == (8, 5) and ((acts == 0) | (acts == 1)).all()


def test_distill_student_regresses_the_teacher(maze_medium_expert, maze_asm, tmp_path):
    store, _ = maze_medium_expert
    from spin_train.pretrain import load_asm
    cached = materialise(store, cache_dir=tmp_path)
    actor = make_actor("distill", obs_dim=2, bins=(2,) * 5, asm=load_asm(maze_asm.asm_path)[0])
    buffer = TransitionBuffer(cached, normalise=True, seed=0)
    opt = torch.optim.Adam(actor.student.parameters(), lr=1e-3)
    held = buffer.sample(1024).observations
    with torch.no_grad():
        before = actor.distill_loss(held).item()
    for _ in range(300):
        loss = actor.distill_loss(buffer.sample(256).observations)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = actor.distill_loss(held).item()
    assert after < 0.2 * before


# ------------------------------------------------------------------------------ the trainer
def _policy_cfg(store, tmp_path, name, **kw):
    base = dict(dataset=str(store), out=str(tmp_path / name), cache_dir=str(tmp_path / "cache"),
                device="cpu", progress=False, batch_size=256, critic_hidden=64)
    return PolicyConfig(**(base | kw))


def test_spin_reaches_well_above_random_and_factored_runs_the_same_way(
        maze_medium_expert, maze_asm, tmp_path):
    """The issue's acceptance test on maze-5 medium-expert: a short CPU run of the spin actor
    scores well above the random-policy level (normalised 0); F-IQL goes through the same
    command."""
    store, _ = maze_medium_expert
    runner = CliRunner()
    common = ["--dataset", str(store), "--steps", "600", "--eval-every", "300", "--device",
              "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--batch-size",
              "256", "--critic-hidden", "64", "--seed", "0"]
    res = runner.invoke(spin_train_main, ["policy", "--actor", "spin", "--asm",
                                          str(maze_asm.run_dir), "--out", str(tmp_path / "spin"),
                                          *common])
    assert res.exit_code == 0, res.output
    rows = read_metrics(tmp_path / "spin")
    assert [r["step"] for r in rows] == [0, 300, 600]
    final = rows[-1]
    assert final["eval_normalised"] > 0.5, rows  # random policy: 0; expert: 1
    # wall-clock includes the ASM's pre-training time (the paper's time-to-target convention)
    assert rows[0]["wall_clock_s"] == pytest.approx(maze_asm.wall_clock_s)
    assert final["wall_clock_s"] > maze_asm.wall_clock_s
    assert (tmp_path / "spin" / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    weights = load_checkpoint(tmp_path / "spin" / "policy.pt")
    assert weights["step"] == 600
    config = json.loads((tmp_path / "spin" / "config.json").read_text())
    assert config["actor"] == "spin" and config["env"] == "maze-5"
    assert config["stage1_wall_clock_s"] == pytest.approx(maze_asm.wall_clock_s)
    assert config["reward_scale"] == pytest.approx(1 / 100, rel=1e-3)  # the goal: +100 -> 1

    res = runner.invoke(spin_train_main, ["policy", "--actor", "factored", "--out",
                                          str(tmp_path / "fiql"), *common])
    assert res.exit_code == 0, res.output
    assert read_metrics(tmp_path / "fiql")[-1]["eval_normalised"] > 0.3
    assert rows[0]["wall_clock_s"] > read_metrics(tmp_path / "fiql")[0]["wall_clock_s"]

    res = runner.invoke(spin_train_main, ["compare", str(tmp_path / "spin"), str(tmp_path / "fiql"),
                                          "--plot", str(tmp_path / "cmp.png"), "--at-step",
                                          "300"])
    assert res.exit_code == 0, res.output
    from spin_train import report

    dirs = [str(tmp_path / "spin"), str(tmp_path / "fiql")]
    result = report.compare(dirs, at_step=300)
    assert report.format_table(result) in res.output  # the numbers of the two runs' metrics
    spin = next(g for g in result.values() if g["actor"] == "spin")
    assert spin["final_return_mean"] == pytest.approx(final["eval_return_mean"])
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(spin_train_main, ["compare", *dirs, "--plot", str(tmp_path / "c2.png"),
                                          "--at-step", "300", "--scale", "percent"])
    assert res.exit_code == 0 and report.format_table(result, "percent") in res.output
    assert f"{100 * final['eval_normalised']:.1f} ± 0.0" in res.output


def test_resumed_run_equals_an_uninterrupted_one(maze_medium_expert, tmp_path):
    store, _ = maze_medium_expert
    straight = train_policy(_policy_cfg(store, tmp_path, "straight", actor="factored", steps=60,
                                        eval_every=20, eval_episodes=3))
    train_policy(_policy_cfg(store, tmp_path, "resumed", actor="factored", steps=20,
                             eval_every=20, eval_episodes=3))
    resumed = train_policy(_policy_cfg(store, tmp_path, "resumed", actor="factored", steps=60,
                                       eval_every=20, eval_episodes=3))
    a = load_checkpoint(straight.run_dir / "policy.pt")["algo"]
    b = load_checkpoint(resumed.run_dir / "policy.pt")["algo"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = read_metrics(straight.run_dir), read_metrics(resumed.run_dir)
    assert [r["step"] for r in rb] == [0, 20, 40, 60]
    assert [r["eval_return_mean"] for r in ra] == [r["eval_return_mean"] for r in rb]
    with pytest.raises(ValueError, match="different run"):
        train_policy(_policy_cfg(store, tmp_path, "resumed", actor="factored", steps=60,
                                 eval_every=20, eval_episodes=3, beta=1.0))


def test_a_run_stopped_after_its_critic_prefit_resumes_without_fitting_it_again(
        maze_medium_expert, tmp_path, monkeypatch):
    """Stopped (Ctrl-C) at its first actor step, a run with a critic prefit restarts from the
    checkpoint written after the prefit and ends as a straight run does."""
    from spin_train.algos import IQL

    store, _ = maze_medium_expert
    kw = dict(actor="factored", steps=40, eval_every=20, eval_episodes=3, critic_prefit=50)
    straight = train_policy(_policy_cfg(store, tmp_path, "straight", **kw))

    def stopped(self, batch, generator=None):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(IQL, "update", stopped)
        with pytest.raises(KeyboardInterrupt):
            train_policy(_policy_cfg(store, tmp_path, "resumed", **kw))
    run_dir = tmp_path / "resumed"
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 0
    assert [r["step"] for r in read_metrics(run_dir)] == [0]

    def fitted_again(self, phase):
        raise AssertionError("the critic prefit ran again")

    monkeypatch.setattr(IQL, "first_phase", fitted_again)
    resumed = train_policy(_policy_cfg(store, tmp_path, "resumed", **kw))
    a = load_checkpoint(straight.run_dir / "policy.pt")["algo"]
    b = load_checkpoint(resumed.run_dir / "policy.pt")["algo"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = read_metrics(straight.run_dir), read_metrics(resumed.run_dir)
    assert [r["step"] for r in rb] == [0, 20, 40]
    assert [r["eval_return_mean"] for r in ra] == [r["eval_return_mean"] for r in rb]
    assert rb[0]["critic_prefit_q_mean"] == ra[0]["critic_prefit_q_mean"] is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resumed_run_equals_an_uninterrupted_one_on_cuda(maze_medium_expert, tmp_path):
    """SAINT with dropout draws from the CUDA generator: its state is saved too."""
    store, _ = maze_medium_expert
    kw = dict(actor="saint", saint_dropout=0.1, d_model=32, n_heads=2, n_layers=1, steps=60,
              eval_every=20, eval_episodes=2, device="cuda", amp=False)
    straight = train_policy(_policy_cfg(store, tmp_path, "straight", **kw))
    train_policy(_policy_cfg(store, tmp_path, "resumed", **(kw | {"steps": 20})))
    resumed = train_policy(_policy_cfg(store, tmp_path, "resumed", **kw))
    a = load_checkpoint(straight.run_dir / "policy.pt")["algo"]
    b = load_checkpoint(resumed.run_dir / "policy.pt")["algo"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("args, message", [
    (["--actor", "spin"], "the spin actor needs --asm"),
    (["--actor", "distill"], "the distill actor needs --asm"),
    (["--actor", "factored", "--asm", "x"], "--asm is only for the spin and distill actors"),
    (["--actor", "transformer"], "'transformer' is not one of"),
    (["--actor", "saint", "--d-model", "30", "--n-heads", "4"],
     "d_model must be a multiple of n_heads"),
    (["--actor", "factored", "--lr", "inf"], "lr must be a finite number, got inf"),
    (["--algo", "sac"], "'sac' is not one of"),
    (["--algo", "cql"], "the spin actor trains with --algo iql, awac, bcq, not 'cql'"),
    (["--actor", "factored", "--steps", "0"], "steps must be >= 1"),
    (["--actor", "factored", "--critic-prefit", "-1"], "critic_prefit must be >= 0, got -1"),
    (["--actor", "factored", "--algo", "awac", "--critic-prefit", "100"],
     "critic_prefit is for --algo iql (its critic never reads the actor), not awac"),
])
def test_policy_cli_usage_errors(args, message):
    res = CliRunner().invoke(spin_train_main, ["policy", "--dataset", "x", *args])
    assert res.exit_code == 2 and message in res.output, res.output


def test_an_asm_of_another_task_is_refused(maze_medium_expert, maze_asm, tmp_path):
    from spin_data.generate import generate
    from spin_data.recipe import Recipe

    generate(Recipe(env="maze-7", quality="random", size=600, seed=0, episodes_per_task=8),
             str(tmp_path / "maze7"), workers=1, progress=False)
    res = CliRunner().invoke(spin_train_main, [
        "policy", "--dataset", str(tmp_path / "maze7"), "--actor", "spin", "--asm",
        str(maze_asm.asm_path), "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
        "--out", str(tmp_path / "run")])
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert "does not match" in res.output and "maze-5" in res.output
    assert not (tmp_path / "run").exists()


def test_an_asm_standardised_otherwise_than_asked_is_refused(maze_medium_expert, maze_asm,
                                                             tmp_path):
    """spin sees what its ASM saw: --no-normalise on a standardised ASM is refused, not
    silently overridden."""
    store, _ = maze_medium_expert
    res = CliRunner().invoke(spin_train_main, [
        "policy", "--dataset", str(store), "--actor", "spin", "--asm", str(maze_asm.asm_path),
        "--no-normalise", "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
        "--out", str(tmp_path / "run")])
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert ("the ASM was pre-trained on standardised observations" in res.output
            and "pass --normalise" in res.output)
    assert not (tmp_path / "run").exists()

    raw = pretrain(PretrainConfig(dataset=str(store), out=str(tmp_path / "raw-asm"), epochs=1,
                                  batch_size=256, cache_dir=str(tmp_path / "c"), device="cpu",
                                  progress=False, d_model=32, n_layers=1, head_hidden=32,
                                  normalise=False))
    common = ["policy", "--dataset", str(store), "--actor", "spin", "--asm", str(raw.asm_path),
              "--device", "cpu", "--cache-dir", str(tmp_path / "c"), "--steps", "10",
              "--eval-every", "10", "--eval-episodes", "1"]
    res = CliRunner().invoke(spin_train_main, [*common, "--out", str(tmp_path / "run")])
    assert res.exit_code == 1 and "pre-trained on raw observations" in res.output, res.output
    assert "pass --no-normalise" in res.output and not (tmp_path / "run").exists()
    res = CliRunner().invoke(spin_train_main, [*common, "--no-normalise", "--out",
                                               str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["normaliser"] is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_policy_on_cuda(maze_medium_expert, maze_asm, tmp_path):
    store, _ = maze_medium_expert
    result = train_policy(_policy_cfg(store, tmp_path, "cuda", actor="spin",
                                      asm=str(maze_asm.run_dir), steps=600, eval_every=300,
                                      device="cuda"))
    # The CPU acceptance test's bar (random policy: normalised 0, every episode -7.5; the
    # dataset's expert: about 1), reached with bf16 autocast on the GPU.
    assert np.isfinite(result.final["q_loss"]) and result.final["eval_normalised"] > 0.5


def test_queries_start_at_the_scale_asked_for():
    """``--query-init``: small N(0, 0.02^2) (the default so far, drawn as before), normal
    N(0, 1) (the reference code's) and mask (the ASM's mask-token embeddings, so that the
    trunk starts from the fully masked tuple's features); the option reaches the built actor."""
    from spin_train.models.asm import initial_queries
    from spin_train.policy.trainer import build_learner

    cfg = ASMConfig(obs_dim=4, bins=(3, 3, 3, 3), d_model=64, n_heads=2, n_layers=1)
    torch.manual_seed(0)
    asm = ActionStructureModel(cfg)
    torch.manual_seed(1)
    small = initial_queries(asm, "small")
    torch.manual_seed(1)
    assert torch.equal(small, torch.randn(4, 64) * 0.02)  # the earlier init, draw for draw
    assert 0.8 < float(initial_queries(asm, "normal").std()) < 1.2
    spin = make_actor("spin", obs_dim=4, bins=(3, 3, 3, 3), asm=asm, query_init="mask")
    obs = torch.randn(16, 4)
    with torch.no_grad():
        masked = asm.embed(obs, asm.mask_ids.expand(16, -1))
        torch.testing.assert_close(spin.net.embeddings(obs), masked, rtol=0, atol=0)
    learner = build_learner(PolicyConfig(dataset="x", actor="spin", asm="a",
                                         query_init="normal"), 4, (3, 3, 3, 3), asm)
    assert float(learner.actor.net.queries.detach().std()) > 0.5
    with pytest.raises(ValueError, match="query_init must be one of small, normal, mask"):
        PolicyConfig(dataset="x", actor="spin", asm="a", query_init="zeros")


def test_a_frozen_trunk_runs_without_dropout_while_saint_uses_its_own():
    """SPIN's frozen trunk stays in eval mode in a training actor (its ASM has dropout 0.5 here,
    so any leak would make two passes differ); SAINT's fresh trunk applies its dropout."""
    cfg = ASMConfig(obs_dim=4, bins=(3, 3), d_model=32, n_heads=2, n_layers=1, head_hidden=32,
                    dropout=0.5)
    torch.manual_seed(0)
    asm = ActionStructureModel(cfg)
    obs = torch.randn(64, 4)
    spin = make_actor("spin", obs_dim=4, bins=(3, 3), asm=asm).train()
    assert spin.training and not asm.training
    torch.testing.assert_close(spin.logits(obs), spin.logits(obs), rtol=0, atol=0)
    saint = make_actor("saint", obs_dim=4, bins=(3, 3), asm_config=cfg).train()
    assert not torch.equal(saint.logits(obs), saint.logits(obs))  # dropout 0.5 at work
    saint.eval()
    torch.testing.assert_close(saint.logits(obs), saint.logits(obs), rtol=0, atol=0)


def test_reference_dropout_in_spin_s_trunk_and_heads_when_asked():
    """``--trunk-dropout``: the frozen trunk keeps its pre-training dropout while training, as
    the reference code's SPIN does (its trunk stays in train mode), still without gradients;
    ``--head-dropout p`` puts dropout in spin's and saint's heads. Evaluation (eval mode) is
    deterministic either way, and the options reach the built learner."""
    from spin_train.policy.trainer import build_learner

    cfg = ASMConfig(obs_dim=4, bins=(3, 3), d_model=32, n_heads=2, n_layers=1, head_hidden=32,
                    dropout=0.5)
    torch.manual_seed(0)
    asm = ActionStructureModel(cfg)
    obs = torch.randn(64, 4)
    spin = make_actor("spin", obs_dim=4, bins=(3, 3), asm=asm, trunk_dropout=True).train()
    assert spin.training and asm.training
    with torch.no_grad():
        assert not torch.equal(spin.net.embeddings(obs), spin.net.embeddings(obs))
    spin.logits(obs).sum().backward()
    assert all(p.grad is None for p in asm.parameters())  # frozen all the same
    assert spin.net.queries.grad is not None
    spin.eval()
    assert not asm.training
    torch.testing.assert_close(spin.logits(obs), spin.logits(obs), rtol=0, atol=0)

    asm.eval()  # a fresh frozen trunk without the option: deterministic features, and only
    heads = make_actor("spin", obs_dim=4, bins=(3, 3), asm=asm, head_dropout=0.5).train()
    with torch.no_grad():  # the heads drop out
        torch.testing.assert_close(heads.net.embeddings(obs), heads.net.embeddings(obs),
                                   rtol=0, atol=0)
        assert not torch.equal(heads.logits(obs), heads.logits(obs))
    saint = make_actor("saint", obs_dim=4, bins=(3, 3), head_dropout=0.5,
                       asm_config=dataclasses.replace(cfg, dropout=0.0)).train()
    with torch.no_grad():
        assert not torch.equal(saint.logits(obs), saint.logits(obs))

    learner = build_learner(PolicyConfig(dataset="x", actor="spin", asm="a", trunk_dropout=True,
                                         head_dropout=0.1), 4, (3, 3), asm)
    learner.train()
    assert learner.actor.net.asm.training
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.1
               for m in learner.actor.net.heads.modules())
    with pytest.raises(ValueError, match=r"head_dropout must be in \[0, 1\), got 1.0"):
        PolicyConfig(dataset="x", actor="spin", asm="a", head_dropout=1.0)


def test_saint_dropout_reaches_the_saint_network(maze_medium_expert, tmp_path):
    store, _ = maze_medium_expert
    small = dict(actor="saint", steps=8, eval_every=8, eval_episodes=1, d_model=32, n_heads=2,
                 n_layers=1, seed=0)
    weights = {}
    for p in (0.0, 0.0, 0.3):
        train_policy(_policy_cfg(store, tmp_path, f"saint-{p}-{len(weights)}", saint_dropout=p,
                                 **small))
        run = tmp_path / f"saint-{p}-{len(weights)}"
        weights[len(weights)] = torch.load(run / "policy.pt", weights_only=True)["actor"]
    same = [torch.equal(weights[0][k], weights[1][k]) for k in weights[0]]
    differ = [torch.equal(weights[0][k], weights[2][k]) for k in weights[0]]
    assert all(same)  # seeded: dropout 0 twice gives the same weights
    assert not all(differ)  # dropout 0.3 changed the gradients, so the weights
    with pytest.raises(ValueError, match="saint_dropout"):
        _policy_cfg(store, tmp_path, "bad", actor="saint", saint_dropout=1.0)


# Discrete BCQ is not here: acting greedily on maze-5 it either reaches the goal or sticks at a
# wall for good, and a short run swings between the two (seed 0: -7.5 at 600-4,000 steps, 97.9
# at 6,000, -7.5 at 8,000 and 10,000), so no short CPU run gives it a fair, stable bar.
@pytest.mark.parametrize("actor, algo", [("factored", "awac"), ("saint", "iql"),
                                         ("autoregressive", "iql"), ("distill", "iql")])
def test_every_baseline_learns_the_maze_end_to_end(maze_medium_expert, maze_asm, tmp_path,
                                                   actor, algo):
    """A short CPU run of each remaining actor / algorithm on real maze-5 medium-expert data
    scores well above the uniform-random policy (normalised 0; the dataset's expert ~1)."""
    store, _ = maze_medium_expert
    extra = {"saint": dict(d_model=32, n_heads=2, n_layers=1),
             "distill": dict(asm=str(maze_asm.run_dir), distill_steps=300)}.get(actor, {})
    result = train_policy(_policy_cfg(store, tmp_path, actor, actor=actor, algo=algo,
                                      steps=600, eval_every=300, eval_episodes=10, seed=0,
                                      **extra))
    rows = read_metrics(result.run_dir)
    assert [r["step"] for r in rows] == [0, 300, 600]
    assert rows[-1]["eval_normalised"] > 0.3, rows
    assert rows[-1]["eval_normalised"] > rows[0]["eval_normalised"] + 0.25, rows
    if actor == "distill":
        # SPIN-Distill's clock starts after pre-training plus its distillation phase.
        config = json.loads((result.run_dir / "config.json").read_text())
        assert config["stage1_wall_clock_s"] == pytest.approx(maze_asm.wall_clock_s)
        assert rows[0]["wall_clock_s"] > maze_asm.wall_clock_s
        assert rows[0]["distill_s"] > 0 and 0 < rows[0]["distill_loss"] < float("inf")


def test_advantage_weights_match_the_papers_formulas_computed_independently():
    """IQL: min(exp(beta (min_e Q'_e(s,a) - V(s))), w_max); AWAC: min(exp((min_e Q_e(s,a) -
    min_e sum_i sum_b pi_i(b|s) Q_e,i(s,b)) / lambda), w_max), with the factored critic's
    Q_e(s,a) = sum_i Q_e,i(s, a_i) - all recomputed here dimension by dimension in plain loops."""
    torch.manual_seed(0)
    bins = (3, 2, 4)
    obs = torch.randn(16, 6)
    actions = torch.stack([torch.randint(0, b, (16,)) for b in bins], 1)
    for algo_name, kw in (("iql", dict(beta=3.0, max_weight=5.0)),
                          ("awac", dict(awac_lambda=0.3, max_weight=5.0))):
        actor = make_actor("factored", obs_dim=6, bins=bins)
        cls = ALGORITHMS[algo_name]
        algo = cls(actor, 6, bins, cls.Options(critic_hidden=32, **kw))
        with torch.no_grad():  # spread the untrained critics' values so weights vary and clamp
            for p in algo.q.parameters():
                p.mul_(4.0)
            algo.q_target.load_state_dict(algo.q.state_dict())
            got = algo.actor_weights(obs, actions)
            critic = algo.q_target if algo_name == "iql" else algo.q
            per_bin = critic.per_bin(obs)  # (E, B, N, K)
            E = per_bin.shape[0]
            q_sa = torch.tensor([[sum(float(per_bin[e, b, i, actions[b, i]])
                                      for i in range(len(bins))) for b in range(16)]
                                 for e in range(E)]).min(0).values
            if algo_name == "iql":
                baseline = algo.v(obs).float()
                scale = kw["beta"]
            else:
                probs = actor.policy_probs(obs)
                baseline = torch.tensor([[sum(float(probs[b, i, k] * per_bin[e, b, i, k])
                                              for i in range(len(bins))
                                              for k in range(bins[i])) for b in range(16)]
                                         for e in range(E)]).min(0).values
                scale = 1.0 / kw["awac_lambda"]
            want = torch.exp(scale * (q_sa - baseline)).clamp(max=kw["max_weight"])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        assert (want == kw["max_weight"]).any() and (want < kw["max_weight"]).any(), algo_name


def test_critic_prefit_fits_v_and_q_to_their_fixed_point_and_leaves_the_actor():
    """IQL's critic_prefit trains V and Q alone: on a chain paying reward 1 forever with
    gamma 0.9, Q and V go to 1 / (1 - 0.9) = 10 (target networks included), while the actor's
    weights are those it started with; without a prefit the first phase changes nothing."""
    from spin_train.data import Batch, PhaseData

    torch.manual_seed(0)
    bins, obs_dim, n = (3, 2), 4, 64

    def sample(size, g=torch.Generator().manual_seed(1)):
        obs = torch.randn(size, obs_dim, generator=g)
        actions = torch.stack([torch.randint(0, b, (size,), generator=g) for b in bins], 1)
        return Batch(obs, actions, torch.ones(size), torch.randn(size, obs_dim, generator=g),
                     torch.ones(size))

    def build(prefit):
        cls = ALGORITHMS["iql"]
        options = cls.Options(critic_hidden=32, discount=0.9, tau=0.05, lr=1e-2,
                              critic_prefit=prefit)
        return cls(make_actor("factored", obs_dim=obs_dim, bins=bins), obs_dim, bins, options)

    phase = PhaseData(sample=sample, batch_size=n, generator=torch.Generator(), progress=False)
    algo = build(600)
    actor_before = {k: v.clone() for k, v in algo.actor.state_dict().items()}
    metrics = algo.first_phase(phase)
    assert all(torch.equal(v, algo.actor.state_dict()[k]) for k, v in actor_before.items())
    batch = sample(256)
    with torch.no_grad():
        q = algo.q(batch.observations, batch.actions)
        q_target = algo.q_target(batch.observations, batch.actions)
        v = algo.v(batch.observations)
    for values in (q, q_target, v):
        assert abs(float(values.mean()) - 10.0) < 0.5, float(values.mean())
    assert abs(metrics["critic_prefit_q_mean"] - 10.0) < 0.5 and metrics["critic_prefit_s"] > 0

    untouched = build(0)
    before = {k: v.clone() for k, v in untouched.state_dict().items()}
    assert untouched.first_phase(phase) == {}
    assert all(torch.equal(v, untouched.state_dict()[k]) for k, v in before.items())
