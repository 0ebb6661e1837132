"""The MERLION lab scripts (``experiments/merlion/``) on real maze-5 data: the diagnosis's
crowding verdict, and the critic check replaying a run and maximising its critic."""

import json

import pytest
import torch

from experiments.merlion.critic_check import critic_argmax, load_run
from experiments.merlion.critic_check import main as check
from experiments.merlion.diagnosis import main as diagnose
from spin_train.data import TransitionBuffer, materialise
from spin_train.policy import PolicyConfig, train_policy
from spin_train.runs import read_metrics


def test_the_diagnosis_shows_the_lookup_crowding_that_the_penalty_removes(maze_deterministic,
                                                                          tmp_path):
    """``experiments/merlion/diagnosis.py`` on real maze-5 data whose actions are a function of
    the state: with p = 0.01 (in the trainer's normalised units) other actions'
    representations sit closer to a dataset action's than the VAE's decode does, so BCQ's
    decode through the lookup g may act with a neighbour; at p = 0.3 the gap exceeds the error.

    The verdict rests on that geometry (medians over 256 states), not on the returns of the
    10-episode rollouts after it: those are learning outcomes that moved with the machine (a
    clean-clone CI run measured g(VAE decode) at 65.54 for p = 0.01 and 65.92 for p = 0.3,
    where this machine had the second 20 higher), so of them only that the data's own actions
    reach the goal is asserted."""
    store, _ = maze_deterministic
    found = {p: diagnose([str(store), "--penalty", str(p), "--episodes", "10",
                          "--out", str(tmp_path / f"p{p}.json"),
                          "--cache-dir", str(tmp_path / "cache")]) for p in (0.01, 0.3)}
    tight, wide = found[0.01], found[0.3]
    assert json.loads((tmp_path / "p0.3.json").read_text())["returns"] == wide["returns"]
    assert tight["nearest_other_action_l1_median"] < tight["vae_error_l1_median"]
    assert wide["nearest_other_action_l1_median"] > 2 * wide["vae_error_l1_median"]
    mode = wide["returns"]["mode of G (no lookup)"]["mean"]
    assert mode > 50  # the data's actions, imitated without a lookup, reach the goal


@pytest.mark.parametrize("algo", ["cql", "bcq"])
def test_the_critic_check_replays_the_run_and_maximises_its_critic(maze_medium_expert, tmp_path,
                                                                    algo):
    """``experiments/merlion/critic_check.py`` rebuilds a finished run from its directory: its
    ``policy`` row is the run's last evaluation, return for return (same weights, environment
    seeds and sampling seed), and its critic argmaxes are the best actions by the twin
    critics' minimum, over all joint actions or over those G keeps."""
    store, _ = maze_medium_expert
    result = train_policy(PolicyConfig(
        dataset=str(store), out=str(tmp_path / algo), cache_dir=str(tmp_path / "cache"),
        device="cpu", progress=False, batch_size=128, critic_hidden=64, seed=0,
        actor="merlion", algo=algo, steps=100, eval_every=100, eval_episodes=4,
        merlion_steps=100))
    found = check([str(result.run_dir), "--out", str(tmp_path / "check.json")])
    last = read_metrics(result.run_dir)[-1]
    assert found["step"] == 100 and found["episodes"] == 4
    assert found["returns"]["policy"]["mean"] == pytest.approx(last["eval_return_mean"])
    assert found["returns"]["policy"]["std"] == pytest.approx(last["eval_return_std"])
    assert json.loads((tmp_path / "check.json").read_text())["returns"] == found["returns"]
    assert all(r["mean"] >= -7.5 - 1e-6 for r in found["returns"].values())

    _, _, learner, norm = load_run(result.run_dir)
    cached = materialise(store, cache_dir=str(tmp_path / "cache"))
    obs = norm(TransitionBuffer(cached, device=torch.device("cpu"), seed=3).sample(64)
               .observations)
    rep = learner.representation
    with torch.no_grad():
        every = rep.encode_all(obs).float()
        q = torch.stack([learner.critic_values(obs, every[:, a])
                         for a in range(every.shape[1])], 1)  # (64, 32), one action at a time
        ratio = (rep.behaviour_log_probs(obs)
                 - rep.behaviour_log_probs(obs).amax(-1, keepdim=True)).exp()
    rows = torch.arange(64)
    best, kept = critic_argmax(learner, obs), critic_argmax(learner, obs, in_data=True)
    assert torch.allclose(q[rows, best], q.amax(-1))
    assert torch.all(ratio[rows, kept] > rep.ood_threshold)
    assert torch.allclose(q[rows, kept], q.masked_fill(ratio <= rep.ood_threshold,
                                                       -torch.inf).amax(-1))
    assert torch.all(q[rows, kept] <= q[rows, best])
