"""Behaviour learners beyond SB3's SAC/PPO: sbx (JAX) SAC/TQC/CrossQ and sb3-contrib TQC.

Real learners on real simulators: the exported actor (spin's checkpoint format, loaded without
unpickling and without JAX) must act exactly as the learner's own actor does, an sbx run must
learn through ``train_behaviour``, and the run-time estimate must be measured and advise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spin_data.behaviour import BehaviourConfig, load_policy, preset, run_directory, train_behaviour
from spin_data.behaviour import learners
from spin_data.behaviour.estimate import LONG_RUN_S, TrainingEstimate, estimate_training, format_duration
from spin_data.behaviour.policy import make_policy_spec, save_state
from spin_data.envs import make_env, reference_score

pytestmark = pytest.mark.skipif(not learners.sbx_installed(), reason="needs the .[sbx] extra")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with learners.one_thread():
        yield


def _trained_learner(algorithm: str, library: str, env, steps: int = 700):
    cls = learners.algorithm_class(algorithm, library)
    kwargs = {"device": "cpu"} if library == "sb3" else {}
    model = cls("MlpPolicy", env, learning_starts=100, batch_size=64, seed=0, verbose=0,
                policy_kwargs={"net_arch": [64, 64]}, **kwargs)
    model.learn(steps)  # CrossQ: 600 updates move its batch-renorm statistics off their init
    return model


def _random_observations(env, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    out = []
    for _ in range(n):
        out.append(obs)
        obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
    return np.stack(out).astype(np.float32)


@pytest.mark.parametrize("algorithm,library", [("sac", "sbx"), ("tqc", "sbx"), ("crossq", "sbx"),
                                               ("tqc", "sb3")])
def test_exported_actor_acts_exactly_as_the_learner(algorithm, library, tmp_path):
    env = make_env("cheetah", continuous=True)
    model = _trained_learner(algorithm, library, env)
    state = learners.actor_state_dict(model, algorithm, library)
    assert all(k.startswith("actor.") for k in state) and "actor.mu.weight" in state
    spec = make_policy_spec("sac", env.observation_space, env.action_space, [64, 64], "ReLU",
                            env.get_wrapper_attr("bin_grid"))
    (tmp_path / "policy.json").write_text(json.dumps(spec))
    save_state(state, tmp_path / "checkpoints" / "step-0.safetensors")
    policy = load_policy(tmp_path / "checkpoints" / "step-0.safetensors")  # torch, no JAX
    obs = _random_observations(env, 200)
    learner_actions = np.asarray(model.predict(obs, deterministic=True)[0])  # in Box bounds
    dist = policy.distribution(obs)
    ours = dist.low + 0.5 * (np.tanh(dist.mean) + 1.0) * (dist.high - dist.low)
    np.testing.assert_allclose(ours, learner_actions, atol=2e-5)
    # The spread is real (not every action at one value), so the comparison means something.
    assert learner_actions.std(axis=0).min() > 1e-3


def test_crossq_folding_uses_the_batch_statistics():
    env = make_env("cheetah", continuous=True)
    model = _trained_learner("crossq", "sbx", env)
    stats = model.policy.actor_state.batch_stats
    means = np.concatenate([np.asarray(v["mean"]).ravel() for v in stats.values()])
    assert np.abs(means).max() > 1e-3  # the running means moved: folding them is not a no-op


def test_sbx_sac_run_learns_above_random_through_train_behaviour(tmp_path):
    config = preset("cheetah", "test", library="sbx")
    assert (config.algorithm, config.library) == ("sac", "sbx")
    ladder = train_behaviour(config, cache_dir=tmp_path, progress=False)
    ref = reference_score("cheetah", 3)
    assert ladder.complete and [r.step for r in ladder.rungs] == list(range(0, 6001, 1000))
    expert = ladder.expert()
    assert expert.step > 0 and expert.mean_return > 2 * ref.random
    assert expert.mean_return > ladder.rungs[0].mean_return + 3
    run = run_directory(config, tmp_path)
    spec = json.loads((run / "policy.json").read_text())
    assert spec["learner"] == {"algorithm": "sac", "library": "sbx"}
    # The stored checkpoint reproduces the rung's score (same seeds, same sampling).
    from spin_data.behaviour.evaluation import evaluate_returns

    policy = load_policy(run / expert.checkpoint)
    assert evaluate_returns(config, policy).mean() == pytest.approx(expert.mean_return)


def test_learner_choice_is_checked_and_part_of_the_cache_key():
    assert BehaviourConfig("cheetah", library="sbx").cache_key() != BehaviourConfig(
        "cheetah", library="sb3").cache_key()
    assert BehaviourConfig("cheetah").library == "sbx"  # installed: the measured faster one
    assert BehaviourConfig("maze").library == "sb3"
    assert BehaviourConfig("cheetah", algorithm="crossq").library == "sbx"
    with pytest.raises(ValueError, match="crossq is not offered with sb3"):
        BehaviourConfig("cheetah", algorithm="crossq", library="sb3")
    with pytest.raises(ValueError, match="unknown library 'jax': accepted sb3, sbx"):
        BehaviourConfig("cheetah", library="jax")


def test_estimate_is_measured_and_advises_on_long_runs():
    config = preset("cheetah", "test", library="sbx")
    est = estimate_training(config, measure_s=1.0)
    assert est.steps_per_s > 1 and est.eval_s > 0
    assert est.steps_left == 6_000 and est.rungs_left == 7
    assert est.total_s == pytest.approx(6_000 / est.steps_per_s + 7 * est.eval_s)
    assert "6,000 env steps left" in est.describe() and est.advice() is None
    # Half-way through a resumed run only the rest is projected.
    assert estimate_training(config, steps_done=3_000, rungs_done=4, measure_s=0.5).rungs_left == 3
    slow_sb3 = TrainingEstimate(preset("cheetah", "default", library="sb3"), 600_000, 60.0, 25,
                                5.0, "cpu")
    assert slow_sb3.total_s > LONG_RUN_S
    assert "sbx" in slow_sb3.advice() and "2 h 48 min" in slow_sb3.advice()
    slow_sbx = TrainingEstimate(preset("cheetah", "default", library="sbx"), 600_000, 150.0, 25,
                                5.0, "cpu")
    assert "GPU" in slow_sbx.advice()
    assert [format_duration(s) for s in (42, 600, 3 * 3600 + 300, 3 * 86400)] == [
        "42 s", "10 min", "3 h 05 min", "3.0 days"]


def test_an_interrupted_sbx_run_resumes_from_its_last_rung(tmp_path):
    config = preset("cheetah", "test", algorithm="crossq")  # sbx: the only CrossQ offered

    class Interrupt(Exception):
        pass

    seen = []

    def interrupt(rung):
        seen.append(rung.step)
        if len(seen) == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_behaviour(config, cache_dir=tmp_path, progress=False, on_rung=interrupt)
    run = run_directory(config, tmp_path)
    assert (run / "resume" / "step-2000" / "replay_buffer.pkl").is_file()
    ladder = train_behaviour(config, cache_dir=tmp_path, progress=False)
    assert [r.step for r in ladder.rungs] == list(range(0, 6001, 1000)) and ladder.complete
    assert [r.step for r in ladder.rungs[:3]] == seen  # the committed rungs were kept
    assert (run / "ladder.png").is_file()
    from tests.spin_train.test_report import curve_colours

    # Drawn: the rungs (C0), the confirmed candidates' crosses (C1), the medium rung's diamond
    # (C2, where a rung precedes the expert: CrossQ barely learns in 6k steps, so the confirmed
    # expert may be the untrained rung) and the expert rung's star (C3).
    try:
        ladder.medium()
        drawn = {0, 1, 2, 3}
    except ValueError:
        drawn = {0, 1, 3}
    assert curve_colours(run / "ladder.png", min_pixels=20) == drawn
    # Only the final state is kept (a larger budget extends the run from it).
    assert sorted(p.name for p in (run / "resume").iterdir()) == ["step-6000"]
    assert (run / "resume" / "step-6000" / "replay_buffer.pkl").is_file()
