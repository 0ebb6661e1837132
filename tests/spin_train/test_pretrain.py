"""SPIN stage 1: the ASM, masked action modelling and its alternatives, the trainer (metrics,
resume, early stop, checkpoints), the probe, and the spin-train pretrain/probe commands."""

import json
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from spin_train.cli import main as spin_train_main
from spin_train.models import ActionStructureModel, ASMConfig
from spin_train.pretrain import PretrainConfig, load_asm, mask_actions, pretrain
from spin_train.pretrain.objectives import MaskedActionModelling
from spin_train.probe import ProbeConfig, probe
from spin_train.runs import load_checkpoint, read_metrics

#: A small ASM for CPU tests (the defaults are d 256, 3 blocks, batch 1024).
SMALL = dict(d_model=64, n_heads=4, n_layers=2, head_hidden=64, batch_size=256)


def small_config(store, tmp_path, name="run", **overrides):
    kw = dict(dataset=str(store), out=str(tmp_path / name), cache_dir=str(tmp_path / "cache"),
              device="cpu", progress=False, **SMALL)
    kw.update(overrides)
    return PretrainConfig(**kw)


# ------------------------------------------------------------------------------ the model
def test_asm_is_permutation_equivariant():
    torch.manual_seed(0)
    bins = (3, 5, 2, 4)
    cfg = ASMConfig(obs_dim=7, bins=bins, d_model=32, n_heads=4, n_layers=2, head_hidden=16)
    asm = ActionStructureModel(cfg).eval()
    perm = [2, 0, 3, 1]
    permuted = ActionStructureModel(ASMConfig(**{**cfg.to_dict(), "bins": [bins[p] for p in perm]}))
    state = asm.state_dict()
    new = dict(state)
    # Each dimension's embedding rows (bins + mask token) and head weights move with it.
    offsets = np.concatenate([[0], np.cumsum([b + 1 for b in bins])])
    table = state["action_tokens.table.weight"]
    new["action_tokens.table.weight"] = torch.cat(
        [table[offsets[p]:offsets[p + 1]] for p in perm])
    for name in ("heads.hidden.weight", "heads.hidden.bias", "heads.out.weight",
                 "heads.out.bias"):
        new[name] = state[name][perm]
    permuted.load_state_dict(new)
    permuted.eval()
    obs = torch.randn(16, 7)
    actions = torch.stack([torch.randint(0, b + 1, (16,)) for b in bins], 1)  # mask ids too
    with torch.no_grad():
        out = asm(obs, actions)
        out_p = permuted(obs, actions[:, perm])
        emb, emb_p = asm.embed(obs, actions), permuted.embed(obs, actions[:, perm])
    torch.testing.assert_close(emb_p, emb[:, perm], rtol=1e-5, atol=1e-5)
    for j, p in enumerate(perm):  # logits over each dimension's real bins
        torch.testing.assert_close(out_p[:, j, :bins[p]], out[:, p, :bins[p]], rtol=1e-5,
                                   atol=1e-5)
    # padded bins of narrow dimensions never win
    assert (out[:, 2, 2:] < -1e8).all()
    # and the model is not trivially symmetric: different dimensions give different outputs
    assert not torch.allclose(emb[:, 0], emb[:, 1])


def test_masking_follows_80_10_10():
    gen = torch.Generator().manual_seed(0)
    bins = torch.tensor([3, 30, 2, 7])
    actions = torch.stack([torch.randint(0, int(b), (200_000,)) for b in bins], 1)
    tokens, selected = mask_actions(actions, bins, gen, 0.15)
    assert abs(selected.float().mean().item() - 0.15) < 0.003
    masked = tokens == bins
    assert not (masked & ~selected).any() and (tokens[~selected] == actions[~selected]).all()
    n = selected.sum().item()
    assert abs(masked.sum().item() / n - 0.8) < 0.01
    changed = (tokens != actions) & ~masked
    # 10% get a uniform random bin, which differs from the original with prob (b - 1) / b
    expected = 0.1 * ((bins - 1) / bins.float())
    for d in range(4):
        frac = (changed[:, d].sum() / selected[:, d].sum()).item()
        assert abs(frac - expected[d].item()) < 0.01
        assert tokens[:, d].max() <= bins[d]
    # a batch that draws no selection still gets exactly one
    one, sel = mask_actions(actions[:4], bins, gen, 1e-12)
    assert sel.sum().item() == 1 and (one[sel] == bins.expand(4, -1)[sel]).item()


def test_mam_loss_is_cross_entropy_on_selected_tokens_only():
    torch.manual_seed(0)
    cfg = ASMConfig(obs_dim=3, bins=(3, 4, 2), d_model=32, n_heads=2, n_layers=1, dropout=0.0)
    asm = ActionStructureModel(cfg)
    mam = MaskedActionModelling(asm, select_prob=0.5)
    obs, actions = torch.randn(64, 3), torch.stack([torch.randint(0, b, (64,)) for b in cfg.bins], 1)
    loss, stats = mam.loss(asm, obs, actions, torch.Generator().manual_seed(5))
    tokens, selected = mask_actions(actions, asm.mask_ids, torch.Generator().manual_seed(5), 0.5)
    logits = asm(obs, tokens)
    want = F.cross_entropy(logits[selected], actions[selected])
    torch.testing.assert_close(loss, want)
    acc = (logits[selected].argmax(-1) == actions[selected]).float().mean()
    torch.testing.assert_close(stats["masked_acc"], acc)


# ------------------------------------------------------------------------------ training
def test_pretraining_beats_a_random_trunk_on_the_probe(maze_deterministic, tmp_path):
    """The issue's acceptance test: on a maze-5 medium-expert dataset made by generate, a short
    pre-training run gives a probe exact-match above a randomly initialised ASM's.

    The store is collected with --deterministic: with sampled actions a state's best guess is
    capped by the behaviour policies' own randomness, which any features of the 2-D state
    reach (measured: pre-trained and random trunks tie at 0.17-0.18 exact-match, at the cap).
    With the policies' modes, measured here: 0.98 pre-trained vs 0.85 random with one behaviour
    run, 0.963 vs 0.918 with another (the same recipe trained with one torch thread, which moves
    PPO's numerics): how close the random trunk comes to the ceiling depends on the data, so the
    test asks for a share of the random trunk's errors removed rather than a fixed margin."""
    store, _ = maze_deterministic
    result = pretrain(small_config(store, tmp_path, epochs=6))
    rows = read_metrics(result.run_dir)
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_masked_acc"] > 0.8  # 2-bin dims: chance 0.5
    assert 0 < rows[-1]["val_exact_match"] <= rows[-1]["val_slot_acc"] <= 1
    assert len(rows[-1]["val_slot_acc_per_dim"]) == 5
    assert result.wall_clock_s > 0 and result.chosen_epoch == 6
    info = json.loads((result.run_dir / "asm.json").read_text())
    assert info["dataset"]["content_checksum"].startswith("sha256:")
    assert info["wall_clock_s"] == pytest.approx(result.wall_clock_s)
    assert info["normaliser"] is not None and info["asm_config"]["d_model"] == 64
    assert (result.run_dir / "metrics.csv").read_text().startswith("epoch,step,train_loss")
    assert (result.run_dir / "checkpoints" / "epoch-5.pt").exists()

    probes = {}
    for random_init in (False, True):
        probes[random_init] = probe(ProbeConfig(
            asm=str(result.run_dir), dataset=str(store), random_init=random_init, steps=300,
            batch_size=256, cache_dir=str(tmp_path / "cache"), device="cpu", progress=False))
    trained, rand = probes[False], probes[True]
    # Pre-training removes at least 40% of the random trunk's exact-match errors (measured:
    # 87% and 55% on the two runs above).
    assert 1 - trained["exact_match"] < 0.6 * (1 - rand["exact_match"]), (trained, rand)
    assert trained["slot_accuracy"] > rand["slot_accuracy"]
    for p in probes.values():
        assert p["exact_match"] <= min(p["slot_accuracy_per_dim"]) + 1e-9
        assert p["exact_match_if_independent"] == pytest.approx(
            np.prod(p["slot_accuracy_per_dim"]))
    assert json.loads((result.run_dir / "probe-random.json").read_text())["random_init"]


def test_resume_continues_exactly_where_it_stopped(maze_medium_expert, tmp_path):
    store, _ = maze_medium_expert
    straight = pretrain(small_config(store, tmp_path, "straight", epochs=3))
    pretrain(small_config(store, tmp_path, "resumed", epochs=1))
    resumed = pretrain(small_config(store, tmp_path, "resumed", epochs=3))
    a = load_checkpoint(straight.asm_path)["model"]
    b = load_checkpoint(resumed.asm_path)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in read_metrics(resumed.run_dir)] == [1, 2, 3]
    assert resumed.wall_clock_s > 0
    # config.json describes the run as extended, not as first started
    assert json.loads((resumed.run_dir / "config.json").read_text())["epochs"] == 3
    # finished: running again trains nothing and reports the same run
    again = pretrain(small_config(store, tmp_path, "resumed", epochs=3))
    assert again.epochs_run == 3 and again.final_metrics["epoch"] == 3
    # another run's directory is refused, not overwritten
    with pytest.raises(ValueError, match="different run"):
        pretrain(small_config(store, tmp_path, "resumed", epochs=3, lr=1e-3))


def test_a_killed_cli_run_resumes(maze_medium_expert, tmp_path):
    store, _ = maze_medium_expert
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "spin_train.cli", "pretrain", "--dataset", str(store),
            "--out", str(out), "--epochs", "40", "--cache-dir", str(tmp_path / "cache"),
            "--device", "cpu", "--no-progress", "--d-model", "64", "--n-layers", "2",
            "--head-hidden", "64", "--batch-size", "256"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and len(read_metrics(out)) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(read_metrics(out))
    assert 2 <= done < 40
    args[args.index("40")] = str(done + 2)
    finished = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    epochs = [r["epoch"] for r in read_metrics(out)]
    assert epochs == list(range(1, done + 3))  # nothing redone twice, nothing skipped
    assert f"epoch {done + 2} of {done + 2}" in finished.stdout


def test_early_stop_keeps_the_best_epoch(maze_medium_expert, tmp_path):
    store, _ = maze_medium_expert
    # An improvement of 2.0 in exact-match is impossible: every validation after the first
    # counts against the patience, so the run stops at epoch 1 + patience and keeps epoch 1.
    result = pretrain(small_config(store, tmp_path, epochs=20, early_stop_patience=2,
                                   early_stop_min_delta=2.0))
    assert result.stopped_early and result.epochs_run == 3 and result.chosen_epoch == 1
    best = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    final = load_checkpoint(result.asm_path)["model"]
    assert best["epoch"] == 1 and all(torch.equal(best["model"][k], final[k]) for k in final)
    info = json.loads((result.run_dir / "asm.json").read_text())
    assert info["chosen_epoch"] == 1 and info["early_stop"]["monitor"] == "val_exact_match"


@pytest.mark.parametrize("objective", ["vam", "cam"])
def test_alternative_objectives_train(maze_medium_expert, tmp_path, objective):
    store, _ = maze_medium_expert
    result = pretrain(small_config(store, tmp_path, objective=objective, epochs=3))
    rows = read_metrics(result.run_dir)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    if objective == "vam":
        assert rows[-1]["train_kl"] >= 0 and 0 < rows[-1]["val_exact_match"] <= 1
    else:
        assert "val_exact_match" not in rows[-1]
        # InfoNCE over a batch of 256 starts near log(256) and must fall below it
        assert rows[-1]["val_loss"] < np.log(256)
    asm, info = load_asm(result.asm_path)
    assert info["objective"] == objective and isinstance(asm, ActionStructureModel)


# ------------------------------------------------------------------------------ CLI
def test_cli_pretrain_and_probe(maze_medium_expert, tmp_path):
    store, _ = maze_medium_expert
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(spin_train_main, [
        "pretrain", "--dataset", str(store), "--out", str(out), "--epochs", "2", "--device",
        "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--d-model", "32",
        "--n-layers", "1", "--batch-size", "512"])
    assert res.exit_code == 0, res.output
    assert f"run directory: {out}" in res.output and "val_exact_match" in res.output
    res = runner.invoke(spin_train_main, [
        "probe", "--asm", str(out / "asm.pt"), "--dataset", str(store), "--steps", "20",
        "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "exact-match accuracy" in res.output and (out / "probe.json").exists()
    # What the commands wrote: two epochs of metrics, an ASM of the asked sizes, and a probe
    # report whose accuracies are fractions that the printed line repeats.
    rows = read_metrics(out)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["step"] > rows[0]["step"]
    asm, info = load_asm(out / "asm.pt")
    assert asm.config.d_model == 32 and asm.config.n_layers == 1 and info["epochs_run"] == 2
    probe = json.loads((out / "probe.json").read_text())
    exact = probe["exact_match"]
    assert 0.0 <= exact <= 1.0 and len(probe["slot_accuracy_per_dim"]) == 5
    assert probe["asm_epochs"] == 2 and probe["chance_exact_match"] == pytest.approx(0.5 ** 5)
    assert f"exact-match accuracy:       {exact:.4f}" in res.output


@pytest.mark.parametrize("args, code, message", [
    (["pretrain"], 2, "Missing option '--dataset'"),
    (["pretrain", "--dataset", "x", "--objective", "bert"], 2, "'bert' is not one of"),
    (["pretrain", "--dataset", "x", "--epochs", "0"], 2, "epochs must be >= 1"),
    (["pretrain", "--dataset", "x", "--val-fraction", "1.5"], 2, "val_fraction must be in"),
    (["probe", "--dataset", "x"], 2, "Missing option '--asm'"),
])
def test_cli_usage_errors(args, code, message):
    res = CliRunner().invoke(spin_train_main, args)
    assert res.exit_code == code and message in res.output, res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], "lr must be a finite number, got nan"),
    (["--d-model", "30", "--n-heads", "4"], "d_model must be a multiple of n_heads"),
])
def test_bad_options_are_refused_before_anything_is_written(maze_medium_expert, tmp_path,
                                                            args, message):
    """They once exited 1 after writing config.json, which then refused the corrected command
    as 'a different run'."""
    store, _ = maze_medium_expert
    out = tmp_path / "run"
    res = CliRunner().invoke(spin_train_main, ["pretrain", "--dataset", str(store), "--out",
                                               str(out), "--device", "cpu", *args])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_cli_refusals_are_one_line(maze_medium_expert, tmp_path):
    store, _ = maze_medium_expert
    runner = CliRunner()
    res = runner.invoke(spin_train_main, ["pretrain", "--dataset", str(tmp_path / "nothing"),
                                          "--device", "cpu"])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and res.output.count("\n") == 1
    if not torch.cuda.is_available():
        res = runner.invoke(spin_train_main, ["pretrain", "--dataset", str(store), "--device",
                                              "cuda"])
        assert res.exit_code == 2 and "CUDA is not available" in res.output
    # a checkpoint that would unpickle code is refused, not loaded
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(Exception("boom")))
    res = runner.invoke(spin_train_main, ["probe", "--asm", str(evil), "--dataset", str(store),
                                          "--device", "cpu"])
    assert res.exit_code == 1 and "loads as plain weights" in res.output
    assert "weights_only" not in res.output  # torch's advice to load it unsafely is not passed on


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pretrain_on_cuda_with_bf16(maze_medium_expert, tmp_path):
    store, _ = maze_medium_expert
    result = pretrain(small_config(store, tmp_path, epochs=2, device="cuda"))
    rows = read_metrics(result.run_dir)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and rows[-1]["val_masked_acc"] > 0.6


def test_vam_loss_is_the_elbo_computed_independently():
    """VAM's loss = mean per-slot cross-entropy of the decoder at z ~ q(z|s,a) + beta x
    KL(q || N(0, I)), recomputed here with torch.distributions and log_softmax; predict() gives
    the decoder's logits at the prior's mean z = 0."""
    from torch.distributions import Normal, kl_divergence

    from spin_train.pretrain.objectives import make_objective

    torch.manual_seed(0)
    cfg = ASMConfig(obs_dim=5, bins=(3, 2, 4), d_model=16, n_heads=2, n_layers=1,
                    head_hidden=16, dropout=0.0)
    asm = ActionStructureModel(cfg).eval()
    vam = make_objective("vam", asm, latent_dim=4, beta=0.3).eval()
    obs = torch.randn(32, 5)
    actions = torch.stack([torch.randint(0, b, (32,)) for b in cfg.bins], 1)
    with torch.no_grad():
        loss, stats = vam.loss(asm, obs, actions, torch.Generator().manual_seed(11))
        mu, logvar = vam.posterior(asm.embed(obs, actions).mean(1)).chunk(2, -1)
        std = torch.exp(0.5 * logvar)
        z = mu + torch.randn(mu.shape, generator=torch.Generator().manual_seed(11)) * std
        logits = vam._decode(asm, obs, z)
        nll = -torch.stack([torch.log_softmax(logits[:, i, :b], -1)[torch.arange(32),
                                                                    actions[:, i]]
                            for i, b in enumerate(cfg.bins)], 1)
        kl = kl_divergence(Normal(mu, std), Normal(0.0, 1.0)).sum(-1).mean()
        torch.testing.assert_close(stats["kl"], kl, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats["recon"], nll.mean(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(loss, nll.mean() + 0.3 * kl, rtol=1e-5, atol=1e-6)
        assert kl > 0  # an untrained posterior is not the prior
        prior = vam._decode(asm, obs, torch.zeros(32, 4))
        assert torch.equal(vam.predict(asm, obs), prior)  # logits of the decoder at z = 0
        assert not torch.equal(prior, logits)
