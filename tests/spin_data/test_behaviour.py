"""Behaviour policies: real SB3 training on real simulators at small budgets, the checkpoint
ladder, loading without unpickling, numpy-seeded sampling, the cache, resuming, the CLI."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from spin_data.behaviour import (
    BehaviourConfig,
    CategoricalFactors,
    CheckpointError,
    Ladder,
    Rung,
    RunLocked,
    SquashedGaussian,
    load_policy,
    preset,
    run_directory,
    train_behaviour,
)
from spin_data.behaviour.policy import file_sha256, make_policy_spec, save_weights
from spin_data.behaviour.shaping import GeodesicDistance, PotentialShaping
from spin_data.behaviour.confirm import CONFIRM_RUNGS, confirm_seeds
from spin_data.behaviour.evaluation import eval_seeds, evaluate_returns, make_eval_env
from spin_data.behaviour.resume import find_longer_run, find_shorter_run
from spin_data.collect import collect_episodes
from spin_data.cli import main
from spin_data.envs import make_env, reference_score
from spin_data.envs.maze import maze_config


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Small MLPs run fastest on one thread, and two threads per process oversubscribe a busy
    # 2-core machine badly; one thread also keeps the seeded runs' numbers reproducible.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("behaviour-cache")


@pytest.fixture(scope="module")
def maze_run(cache):
    config = preset("maze-5", "test")
    started = time.perf_counter()
    ladder = train_behaviour(config, cache_dir=cache, progress=False)
    return config, ladder, time.perf_counter() - started


@pytest.fixture(scope="module")
def cheetah_run(cache):
    # stable-baselines3's SAC (torch), the design's named dependency: sbx has tests of its own.
    config = preset("cheetah", "test", library="sb3")
    ladder = train_behaviour(config, cache_dir=cache, progress=False)
    return config, ladder


def _unconfirmed(rungs: list[Rung]) -> list[Rung]:
    """The rungs as training scored them (a finished run adds confirmation returns to some)."""
    return [dataclasses.replace(r, confirm_returns=()) for r in rungs]


def _observations(env_name: str, n: int, seed: int = 0, **kwargs) -> np.ndarray:
    """``n`` observations visited by uniform-random bins (float32 (n, D))."""
    env = make_env(env_name, seed=seed, **kwargs)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    while len(out) < n:
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
    env.close()
    return np.stack(out).astype(np.float32)


# ============================================================================= real training
def test_sac_on_cheetah_learns_above_random(cheetah_run, cache):
    config, ladder = cheetah_run
    ref = reference_score("cheetah", 3)
    assert [r.step for r in ladder.rungs] == list(range(0, 6001, 1000))
    assert ladder.complete and ladder.algorithm == "sac" and ladder.env == "cheetah-run"
    expert = ladder.expert()
    # Learning happened: the best rung is a trained one, well above uniform-random bins and
    # above the untrained policy (seeded run, 1 torch thread: 21.5 vs 9.9 at step 0).
    assert expert.step > 0
    assert expert.mean_return > 2 * ref.random
    assert expert.mean_return > ladder.rungs[0].mean_return + 3
    assert expert.normalised == pytest.approx(ref.normalise(expert.mean_return))
    run = run_directory(config, cache)
    # The best of 7 noisy rungs is biased upwards: score the chosen checkpoint and the
    # untrained one again on 10 fresh seeds (never used for choosing) and ask the same there.
    fresh = [7_000_000 + i for i in range(10)]

    def fresh_mean(rung: Rung) -> float:
        episodes = collect_episodes(lambda: make_eval_env(config),
                                    load_policy(run / rung.checkpoint), fresh, n_envs=8)
        return float(np.mean([np.sum(ep.rewards, dtype=np.float64) for ep in episodes]))

    trained, untrained = fresh_mean(expert), fresh_mean(ladder.rungs[0])
    assert trained > 2 * ref.random and trained > untrained + 3, (trained, untrained)
    for name in ("config.json", "policy.json", "ladder.json", "ladder.csv"):
        assert (run / name).is_file()
    # Of SB3's pickles only the last rung's state stays (for extending the run), no other.
    assert sorted(os.listdir(run / "resume")) == [f"step-{ladder.rungs[-1].step}"]
    for rung in ladder.rungs:
        assert file_sha256(run / rung.checkpoint) == rung.sha256
    csv_lines = (run / "ladder.csv").read_text().splitlines()
    assert csv_lines[0] == ("step,mean_return,std_return,normalised,checkpoint,sha256,"
                            "wall_seconds,confirmed_return,confirmed_normalised")
    assert len(csv_lines) == len(ladder.rungs) + 1
    spec = json.loads((run / "policy.json").read_text())
    assert spec["action_space"]["type"] == "Box" and spec["policy_kwargs"]["net_arch"] == [64, 64]
    assert spec["observation_space"]["low"][0] == "-inf"  # JSON-safe unbounded dimensions


def test_ppo_on_maze_ladder_has_a_medium_rung_between_random_and_expert(maze_run):
    _config, ladder, _seconds = maze_run
    ref = reference_score("maze-5")
    expert, medium = ladder.expert(), ladder.medium()
    assert expert.normalised > 0.8 and ladder.warning() is None  # the test preset nearly solves it
    assert medium.step < expert.step
    assert ref.random < medium.mean_return < expert.mean_return
    assert 0.2 < ladder.score(medium) / ladder.score(expert) < 0.7
    assert ladder.random_return < 0  # uniform-random bins almost never reach the goal


def test_a_finished_run_confirms_its_best_rungs_on_fresh_episodes(maze_run, cache):
    config, ladder, _ = maze_run
    assert ladder.confirm_episodes == 10 * config.eval_episodes
    assert not set(confirm_seeds(config)) & set(eval_seeds(config))
    confirmed = [r for r in ladder.rungs if r.confirm_returns]
    assert all(len(r.confirm_returns) == ladder.confirm_episodes for r in confirmed)
    # Expert: the best by fresh episodes among the best rungs by their evaluation means.
    by_mean = sorted(ladder.rungs, key=lambda r: (-r.mean_return, r.step))[:CONFIRM_RUNGS]
    assert all(r.confirm_returns for r in by_mean)
    expert = ladder.expert()
    assert expert.estimate == max(np.mean(r.confirm_returns) for r in by_mean)
    # Medium: earlier rungs confirmed by bisection towards 0.45 x the confirmed expert score
    # (capped at 1), a few of them, bracketing the target; the medium is the closest of them.
    ref = reference_score("maze-5")
    target = 0.45 * min(ref.normalise(expert.estimate), 1.0)
    earlier = [r for r in ladder.rungs if r.step < expert.step]
    probed = [r for r in earlier if r.confirm_returns]
    assert 1 <= len(probed) <= CONFIRM_RUNGS + int(np.log2(len(earlier))) + 1
    below = [r for r in probed if ref.normalise(r.estimate) < target]
    above = [r for r in probed if ref.normalise(r.estimate) >= target]
    assert below and above  # bracketed: this ladder climbs from random past the target
    medium = ladder.medium()
    assert medium.confirm_returns and ladder.medium_confirmed
    assert abs(ref.normalise(medium.estimate) - target) == min(
        abs(ref.normalise(r.estimate) - target) for r in earlier if r.confirm_returns)
    # The confirmation returns are the checkpoint's own on those seeds.
    policy = load_policy(run_directory(config, cache) / expert.checkpoint)
    assert tuple(evaluate_returns(config, policy, confirm_seeds(config))) == expert.confirm_returns
    csv_row = (run_directory(config, cache) / "ladder.csv").read_text().splitlines()[
        1 + ladder.rungs.index(expert)]
    assert csv_row.split(",")[-2] == f"{expert.estimate:.6g}"


def test_a_finished_run_without_confirmation_is_confirmed_without_training(maze_run, cache,
                                                                          tmp_path):
    config, ladder, _ = maze_run
    run = run_directory(config, tmp_path)
    shutil.copytree(run_directory(config, cache), run)
    old = dataclasses.replace(ladder, confirm_episodes=0, medium_confirmed=False,
                              rungs=_unconfirmed(ladder.rungs))
    (run / "ladder.json").write_text(old.to_json())  # as a run finished before confirmation
    checkpoints = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    trained: list[int] = []
    again = train_behaviour(config, cache_dir=tmp_path, progress=False,
                            on_rung=lambda r: trained.append(r.step))
    assert trained == [] and again == ladder  # the same candidates, seeds and returns
    assert Ladder.from_json((run / "ladder.json").read_text()) == ladder
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == checkpoints


def test_rung_scores_are_reproduced_by_the_loaded_checkpoint(maze_run, cache):
    # The ladder scored exactly the sampler that collection will use: same seeds, same returns.
    config, ladder, _ = maze_run
    rung = ladder.medium()
    policy = load_policy(run_directory(config, cache) / rung.checkpoint)
    assert policy.sha256 == rung.sha256
    assert tuple(evaluate_returns(config, policy)) == rung.returns


# ============================================================================= the cache
def test_a_complete_run_is_returned_from_the_cache_without_training(maze_run, cache):
    config, ladder, first_seconds = maze_run
    run = run_directory(config, cache)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    ladder_bytes = (run / "ladder.json").read_bytes()
    started = time.perf_counter()
    again = train_behaviour(preset("maze", "test"), cache_dir=cache, progress=False)  # same key
    assert time.perf_counter() - started < min(2.0, first_seconds / 5)
    assert again == ladder
    assert (run / "ladder.json").read_bytes() == ladder_bytes
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


def test_a_run_in_progress_elsewhere_is_refused(cache):
    config = BehaviourConfig("maze-3", budget=4096, eval_every=4096, eval_episodes=1, n_envs=8)
    run = run_directory(config, cache)
    run.mkdir(parents=True)
    with open(run / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunLocked):
            train_behaviour(config, cache_dir=cache, progress=False)


def test_a_run_with_a_progress_bar_trains_the_same_ladder_as_one_without(tmp_path):
    # The bar's SB3 callback must return True: anything falsy stops learn() after one env step,
    # and every vector step became a rung (a regression that only showed with a bar).
    config = BehaviourConfig("maze-5", budget=8_192, eval_every=4_096, eval_episodes=4,
                             n_envs=8, seed=5)
    quiet = train_behaviour(config, cache_dir=tmp_path / "quiet", progress=False)
    shown = train_behaviour(config, cache_dir=tmp_path / "shown", progress=True)
    assert [r.step for r in shown.rungs] == [r.step for r in quiet.rungs] == [0, 4096, 8192]
    assert [r.sha256 for r in shown.rungs] == [r.sha256 for r in quiet.rungs]


# ============================================================================= resuming
def test_an_interrupted_run_resumes_from_its_last_rung(cache):
    from stable_baselines3 import PPO

    config = BehaviourConfig("maze-5", budget=16_384, eval_every=4_096, eval_episodes=4,
                             n_envs=8, seed=3)
    run = run_directory(config, cache)
    seen: list[int] = []

    def interrupt_after_second(rung: Rung) -> None:
        seen.append(rung.step)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_behaviour(config, cache_dir=cache, progress=False, on_rung=interrupt_after_second)
    partial = Ladder.from_json((run / "ladder.json").read_text())
    assert [r.step for r in partial.rungs] == [0, 4096] and not partial.complete
    assert (run / "resume" / "step-4096" / "model.zip").is_file()

    # The checkpoint rebuilt without unpickling acts exactly as SB3's own (pickled) model.
    # Loading model.zip here is fine: it is this test's own run; spin never ships resume files.
    model = PPO.load(run / "resume" / "step-4096" / "model.zip", device="cpu")
    policy = load_policy(run / "checkpoints" / "step-4096.safetensors")
    obs = _observations("maze-5", 300)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(policy.act(obs, deterministic=True), expected)

    resumed: list[int] = []
    ladder = train_behaviour(config, cache_dir=cache, progress=False, on_rung=lambda r: resumed.append(r.step))
    assert resumed == [8192, 12_288, 16_384]  # finished rungs are not redone
    assert [r.step for r in ladder.rungs] == [0, 4096, 8192, 12_288, 16_384]
    assert _unconfirmed(ladder.rungs[:2]) == partial.rungs
    # Complete: only the last rung's training state is kept (what a longer budget extends).
    assert ladder.complete and sorted(os.listdir(run / "resume")) == ["step-16384"]
    assert all(a.wall_seconds <= b.wall_seconds for a, b in zip(ladder.rungs, ladder.rungs[1:]))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        Path(r.checkpoint).name for r in ladder.rungs)


@pytest.mark.parametrize("library", ["sbx", "sb3"])
def test_a_killed_and_resumed_run_writes_the_checkpoints_of_a_straight_run(tmp_path, library):
    """Exact resume: a run killed after a rung and resumed ends with the same checkpoint bytes,
    scores and confirmations as one that never stopped. Rungs every 1,500 steps of 1,000-step
    episodes, so the kill lands mid-episode and the resume replays half an episode; learning
    started at 1,000 steps, so the learner's own generators are in play too."""
    if library == "sbx":
        pytest.importorskip("sbx")
    config = dataclasses.replace(preset("cheetah", "test", grid="unit", library=library),
                                 budget=4500, eval_every=1500)
    straight = train_behaviour(config, cache_dir=tmp_path / "straight", progress=False)

    def kill_after_1500(rung: Rung) -> None:
        if rung.step == 1500:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_behaviour(config, cache_dir=tmp_path / "killed", progress=False,
                        on_rung=kill_after_1500)
    run = run_directory(config, tmp_path / "killed")
    saved = json.loads((run / "resume" / "step-1500" / "rng.json").read_text())
    assert saved["envs"] == [{"episodes": 1, "steps": 500}]
    resumed = train_behaviour(config, cache_dir=tmp_path / "killed", progress=False)
    assert [r.step for r in straight.rungs] == [0, 1500, 3000, 4500]
    assert [(r.step, r.sha256, r.returns, r.confirm_returns) for r in resumed.rungs] == [
        (r.step, r.sha256, r.returns, r.confirm_returns) for r in straight.rungs]
    assert len({r.sha256 for r in straight.rungs}) == 4  # the weights did move between rungs


def test_a_run_whose_last_resume_state_is_lost_restarts_from_the_one_before(cache, tmp_path):
    config = BehaviourConfig("maze-5", budget=8192, eval_every=4096, eval_episodes=2, n_envs=8,
                             seed=4)
    run = run_directory(config, cache)
    stop = []

    def interrupt(rung: Rung) -> None:
        if rung.step == 4096:
            stop.append(rung.step)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_behaviour(config, cache_dir=cache, progress=False, on_rung=interrupt)
    shutil.rmtree(run / "resume" / "step-4096")  # e.g. the disk was cleaned under a live run
    ladder = train_behaviour(config, cache_dir=cache, progress=False)
    assert [r.step for r in ladder.rungs] == [0, 4096, 8192] and ladder.complete


def _run_files(run: Path) -> dict[Path, bytes]:
    """Every file of a run directory and its bytes (to show a run was left as it was)."""
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_a_larger_budget_extends_the_finished_run_instead_of_starting_over(cache):
    short = BehaviourConfig("maze-5", budget=8192, eval_every=4096, eval_episodes=2, n_envs=8,
                            seed=5)
    first = train_behaviour(short, cache_dir=cache, progress=False)
    short_run = run_directory(short, cache)
    short_files = _run_files(short_run)

    longer = dataclasses.replace(short, budget=16_384)
    assert find_shorter_run(longer, cache) == (short_run, first)
    # Not extendable: another seed, or a budget that is not larger.
    assert find_shorter_run(dataclasses.replace(longer, seed=6), cache) is None
    assert find_shorter_run(dataclasses.replace(short, budget=4096), cache) is None

    trained: list[int] = []
    ladder = train_behaviour(longer, cache_dir=cache, progress=False,
                             on_rung=lambda r: trained.append(r.step))
    assert trained == [12_288, 16_384]  # only the new rungs are trained and scored
    # The shorter run's rungs, same weights and scores; its expert is confirmed again among all.
    assert _unconfirmed(ladder.rungs[:3]) == _unconfirmed(first.rungs)
    assert ladder.confirm_episodes == 20 and ladder.medium_confirmed
    assert 3 <= sum(bool(r.confirm_returns) for r in ladder.rungs) <= 6
    assert ladder.extended_from == short.cache_key() and ladder.cache_key == longer.cache_key()
    assert ladder.complete and ladder.budget == 16_384
    # Training time accumulates over the shorter run's: it continued, it did not restart.
    assert ladder.rungs[3].wall_seconds > first.rungs[-1].wall_seconds
    run = run_directory(longer, cache)
    for rung in ladder.rungs:
        assert file_sha256(run / rung.checkpoint) == rung.sha256
    # The shorter run is left exactly as it was (and could be extended again).
    assert _run_files(short_run) == short_files
    # Once complete, the longer run is read back from the cache like any other.
    assert train_behaviour(longer, cache_dir=cache, progress=False) == ladder


def test_a_smaller_budget_is_cut_from_a_longer_run_and_equals_a_straight_run(cache, tmp_path):
    longer = BehaviourConfig("maze-5", budget=12_288, eval_every=4096, eval_episodes=2,
                             n_envs=8, seed=7)
    long_ladder = train_behaviour(longer, cache_dir=cache, progress=False)
    long_run = run_directory(longer, cache)
    long_files = _run_files(long_run)

    short = dataclasses.replace(longer, budget=8192)
    assert find_longer_run(short, cache) == (long_run, long_ladder)
    # Not cuttable: another seed, or a budget the longer run has no rung at.
    assert find_longer_run(dataclasses.replace(short, seed=8), cache) is None
    assert find_longer_run(dataclasses.replace(short, budget=6000), cache) is None

    trained: list[int] = []
    cut = train_behaviour(short, cache_dir=cache, progress=False,
                          on_rung=lambda r: trained.append(r.step))
    assert trained == []  # nothing trained: the rungs are the longer run's
    straight = train_behaviour(short, cache_dir=tmp_path / "straight", progress=False)
    # The same rungs, weights, scores and confirmation as a run trained to 8,192 alone
    # (all but the training seconds each took).
    def timeless(rungs: list[Rung]) -> list[Rung]:
        return [dataclasses.replace(r, wall_seconds=0.0) for r in rungs]

    assert timeless(cut.rungs) == timeless(straight.rungs)
    assert [r.step for r in cut.rungs] == [0, 4096, 8192]
    assert len({r.sha256 for r in cut.rungs}) == 3
    assert cut.confirm_episodes == straight.confirm_episodes and cut.medium_confirmed
    assert cut.cut_from == longer.cache_key() and straight.cut_from is None
    assert cut.cache_key == short.cache_key() and cut.budget == 8192 and cut.complete
    run = run_directory(short, cache)
    for rung in cut.rungs:
        assert file_sha256(run / rung.checkpoint) == rung.sha256
    assert json.loads((run / "policy.json").read_text()) == json.loads(
        (run_directory(short, tmp_path / "straight") / "policy.json").read_text())
    # The longer run is left exactly as it was.
    assert _run_files(long_run) == long_files


# ============================================================================= loading policies
def _saved_run(tmp_path: Path, model, algorithm: str, env) -> Path:
    """Save an SB3 model's policy the way train_behaviour does; returns the checkpoint path."""
    spec = make_policy_spec(algorithm, model.observation_space, model.action_space,
                            [64, 64], "ReLU" if algorithm == "sac" else "Tanh",
                            env.get_wrapper_attr("bin_grid"))
    (tmp_path / "policy.json").write_text(json.dumps(spec))
    path = tmp_path / "checkpoints" / "step-0.safetensors"
    save_weights(model.policy, path)
    return path


def test_load_policy_matches_sb3_sac_deterministic_actions(tmp_path):
    from stable_baselines3 import SAC

    env = make_env("cheetah", continuous=True)
    model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": [64, 64]}, seed=0, device="cpu")
    with torch.no_grad():  # untrained means sit near 0 (all middle bins): spread them out
        model.policy.actor.mu.weight.mul_(30.0)
    path = _saved_run(tmp_path, model, "sac", env)
    policy = load_policy(path)
    obs = _observations("cheetah", 300)
    expected = env.get_wrapper_attr("bin_grid").quantise(model.predict(obs, deterministic=True)[0])
    actions = policy.act(obs, deterministic=True)
    assert len(np.unique(actions)) == 3  # every bin occurs: a meaningful comparison
    np.testing.assert_array_equal(actions, expected)
    dist = policy.distribution(obs[:4])
    assert isinstance(dist, SquashedGaussian) and dist.mean.shape == (4, 6)


def test_numpy_seeded_sampling_is_reproducible_and_leaves_torch_alone(maze_run, cache):
    config, ladder, _ = maze_run
    policy = load_policy(run_directory(config, cache) / ladder.medium().checkpoint)
    obs = _observations("maze-5", 64)
    torch_state = torch.get_rng_state()
    first = policy.act(obs, np.random.default_rng(7))
    assert np.array_equal(first, policy.act(obs, np.random.default_rng(7)))
    assert not np.array_equal(first, policy.act(obs, np.random.default_rng(8)))
    assert torch.equal(torch_state, torch.get_rng_state())
    assert first.dtype == np.int64 and first.shape == (64, 5)
    # One generator per row (collect.BatchPolicy): row i depends on rngs[i] only.
    rows = policy.act(obs[:3], [np.random.default_rng(s) for s in (1, 2, 3)])
    alone = policy.act(obs[1:2], [np.random.default_rng(2)])
    np.testing.assert_array_equal(rows[1], alone[0])


def test_sampling_follows_the_distribution(maze_run, cache):
    config, ladder, _ = maze_run
    policy = load_policy(run_directory(config, cache) / ladder.medium().checkpoint)
    obs = np.repeat(_observations("maze-5", 1), 20_000, axis=0)
    dist = policy.distribution(obs[:1])
    assert isinstance(dist, CategoricalFactors) and len(dist.probs) == 5
    samples = policy.act(obs, np.random.default_rng(0))
    on = np.array([p[0, 1] for p in dist.probs])
    np.testing.assert_allclose(samples.mean(axis=0), on, atol=0.015)


def test_sac_sampling_is_the_squashed_gaussian(cheetah_run, cache):
    config, ladder = cheetah_run
    policy = load_policy(run_directory(config, cache) / ladder.expert().checkpoint)
    obs = _observations("cheetah", 8)
    dist = policy.distribution(obs)
    eps = np.random.default_rng(5).standard_normal(obs.shape[:1] + (6,))
    values = dist.low + 0.5 * (np.tanh(dist.mean + dist.std * eps) + 1) * (dist.high - dist.low)
    np.testing.assert_array_equal(policy.act(obs, np.random.default_rng(5)),
                                  policy.bin_grid.quantise(values))


def test_checkpoints_load_only_as_plain_weights(maze_run, cache, tmp_path):
    config, _ladder, _ = maze_run
    shutil.copy(run_directory(config, cache) / "policy.json", tmp_path / "policy.json")
    (tmp_path / "checkpoints").mkdir()
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):  # unpickling this would create the marker file
            return (open, (str(marker), "w"))

    evil = tmp_path / "checkpoints" / "step-0.pt"
    torch.save({"weights": Payload()}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_policy(evil)
    assert not marker.exists()
    torch.save({"not": "tensors"}, evil)
    with pytest.raises(CheckpointError):
        load_policy(evil)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_policy(tmp_path / "checkpoints" / "step-9.pt")


# ============================================================================= ladder, config
def _ladder(returns: list[float], reference: tuple[float, float] | None) -> Ladder:
    ref_expert, ref_random = reference if reference else (None, None)
    rungs = [Rung(step=1000 * i, mean_return=r, std_return=0.0,
                  normalised=None if reference is None else (r - ref_random) / (ref_expert - ref_random),
                  checkpoint=f"checkpoints/step-{1000 * i}.pt", sha256="0" * 64,
                  wall_seconds=float(i))
             for i, r in enumerate(returns)]
    return Ladder("x", 3, "sac", "k", 1000 * len(returns), ref_expert, ref_random,
                  random_return=0.0, rungs=rungs, complete=True)


def test_ladder_choices_and_round_trip():
    ladder = _ladder([0.0, 10.0, 30.0, 47.0, 100.0, 90.0], reference=(200.0, 0.0))
    assert ladder.expert().step == 4000
    assert ladder.medium().step == 3000  # normalised 0.235 is closest to 0.45 * 0.5
    assert "normalised 0.50 < 0.8" in ladder.warning()
    assert Ladder.from_json(ladder.to_json()) == ladder
    # Without a reference: scores relative to the measured random return and the ladder's expert.
    own = _ladder([0.0, 10.0, 30.0, 47.0, 100.0, 90.0], reference=None)
    assert own.medium().step == 3000 and own.warning() is None
    assert own.medium(0.3).step == 2000
    with pytest.raises(ValueError, match="no rung precedes"):
        _ladder([5.0, 1.0], reference=None).medium()
    # An expert above the published one (1.2) sets the benchmark's medium target, 0.45, not 0.54.
    strong = _ladder([0.0, 70.0, 90.0, 108.0, 240.0], reference=(200.0, 0.0))
    assert strong.medium_target() == pytest.approx(0.45) and strong.medium().step == 2000
    assert ladder.medium_target() == pytest.approx(0.225)  # a weaker one: 0.45 x its 0.5


def test_confirmed_rungs_decide_the_expert_and_the_medium():
    """fish-swim's case in numbers: the best rung by 10 episodes is not the best by 100 fresh
    ones, and a medium rung that scores 0.45 on its easy seeds is far below on fresh ones."""
    ladder = _ladder([0.0, 40.0, 90.0, 60.0, 150.0, 120.0], reference=(200.0, 0.0))
    assert (ladder.expert().step, ladder.medium().step) == (4000, 3000)  # 0.75; 0.30 ~ 0.3375
    assert ladder.candidates(3) == [ladder.rungs[4], ladder.rungs[5], ladder.rungs[2]]

    def confirm(step: int, value: float) -> None:
        ladder.rungs = [dataclasses.replace(r, confirm_returns=(value - 1.0, value + 1.0))
                        if r.step == step else r for r in ladder.rungs]

    for step, value in [(4000, 100.0), (5000, 130.0), (2000, 30.0)]:  # the expert candidates
        confirm(step, value)
    ladder.confirm_episodes = 2
    expert = ladder.expert()
    assert expert.step == 5000 and expert.estimate == 130.0  # the fresh episodes decide
    assert ladder.score(expert) == pytest.approx(0.65)
    assert "returns 130.00 over 2 episodes, normalised 0.65 < 0.8" in ladder.warning()
    # Medium: bisection over the earlier rungs by fresh scores towards 0.45 x 0.65 = 0.2925.
    fresh = {0: 0.0, 1000: 56.0, 3000: 80.0}
    probed: list[int] = []

    def score_fresh(rung: Rung) -> Rung:
        probed.append(rung.step)
        return dataclasses.replace(rung, confirm_returns=(fresh[rung.step],) * 2)

    ladder.search_medium(score_fresh)
    ladder.medium_confirmed = True
    # 2000 (fresh 0.15, already confirmed) < target -> 3000 (0.40) >= target: done; 1000, whose
    # own score 0.2 is the nearest, is never needed, nor is the unconfirmed rung 0.
    assert probed == [3000]
    assert ladder.medium().step == 3000  # |0.40 - 0.2925| < |0.15 - 0.2925|
    again = Ladder.from_json(ladder.to_json())
    assert again == ladder and again.expert().step == 5000 and again.medium().step == 3000
    csv_rows = ladder.to_csv().splitlines()
    assert csv_rows[6].endswith(",130,0.65") and csv_rows[1].endswith(",,")


def test_config_defaults_presets_and_cache_key():
    maze = BehaviourConfig("maze")
    assert maze.algorithm == "ppo" and maze.bins == 2 and maze.hyperparameters["ent_coef"] == 0.01
    cheetah = BehaviourConfig("cheetah")
    assert cheetah.algorithm == "sac" and cheetah.bins == 3
    assert "reward_shaping_scale" not in cheetah.hyperparameters
    # Same run, same key: defaults spelled out or not, short or canonical name.
    assert BehaviourConfig("maze").cache_key() == BehaviourConfig(
        "maze-5", bins=2, hyperparameters={"ent_coef": 0.01}).cache_key()
    assert BehaviourConfig("cheetah").cache_key() == BehaviourConfig("cheetah-run").cache_key()
    assert BehaviourConfig("cheetah", seed=1).cache_key() != cheetah.cache_key()
    assert BehaviourConfig("cheetah", budget=5).cache_key() != cheetah.cache_key()
    assert BehaviourConfig.from_dict(json.loads(json.dumps(cheetah.to_dict()))) == cheetah
    assert preset("cheetah", "default").budget == 500_000
    assert preset("cheetah", "default").eval_every == 25_000
    assert preset("maze-5", 20_000).eval_every == 2_000
    for bad in [{"env": "nope"}, {"env": "maze", "bins": 3}, {"env": "cheetah", "bins": 1},
                {"env": "cheetah", "algorithm": "dqn"}, {"env": "cheetah", "budget": 0},
                {"env": "cheetah", "hyperparameters": {"reward_shaping_scale": 1.0}},
                {"env": "cheetah", "hyperparameters": {"activation_fn": "os.system"}},
                {"env": "cheetah", "hyperparameters": {"batchsize": 128}},
                {"env": "cheetah", "hyperparameters": {"batch_size": 12.5}},
                {"env": "cheetah", "hyperparameters": {"learning_rate": "fast"}},
                {"env": "cheetah", "hyperparameters": {"net_arch": 256}}]:
        with pytest.raises(ValueError):
            BehaviourConfig(**bad)
    with pytest.raises(ValueError):
        preset("cheetah", "huge")


def test_reward_shaping_is_potential_based():
    distance = GeodesicDistance(maze_config(5))
    start, goal = distance(np.array([0.25, 0.10])), distance(np.array([0.275, 0.475]))
    assert goal < 0.01 and 1.3 < start < 1.5  # around the wall, not the 0.37 straight line
    env = PotentialShaping(make_env("maze-5", seed=0), gamma=0.99, scale=50.0)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        phi = env.potential(obs)
        obs, shaped, terminated, _, info = env.step(np.array([1, 1, 0, 0, 0]))
        phi_next = 0.0 if terminated else env.potential(obs)
        assert shaped == pytest.approx(info["true_reward"] + 0.99 * phi_next - phi)


# ============================================================================= CLI
@pytest.mark.parametrize("args", [
    ["--env", "nope"],
    ["--env", "cheetah", "--bins", "1"],
    ["--env", "maze", "--bins", "3"],
    ["--env", "cheetah", "--algorithm", "dqn"],
    ["--env", "cheetah", "--algorithm", "crossq", "--library", "sb3"],
    ["--env", "cheetah", "--algorithm", "ppo", "--library", "sbx"],
    ["--env", "cheetah", "--library", "jax"],
    ["--env", "cheetah", "--budget", "0"],
    ["--env", "cheetah", "--budget", "-100"],
    ["--env", "cheetah", "--budget", "lots"],
    ["--env", "cheetah", "--set", "batch_size"],
    ["--env", "cheetah", "--set", "batchsize=128"],
    ["--env", "cheetah", "--set", "batch_size=big"],
    ["--env", "cheetah", "--set", "net_arch=[0]"],
    ["--env", "cheetah", "--algorithm", "sac", "--set", "policy_delay=3"],
])
def test_cli_rejects_bad_input_with_a_usage_error(args, tmp_path):
    result = CliRunner().invoke(main, ["train-behaviour", *args, "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error:")]) == 1
    assert not any(tmp_path.iterdir())


def test_cli_prints_the_ladder_and_the_run_directory(maze_run, cache):
    config, ladder, _ = maze_run
    result = CliRunner().invoke(main, ["train-behaviour", "--env", "maze-5", "--budget", "test",
                                       "--cache-dir", str(cache), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"run: {run_directory(config, cache)}" in result.output
    assert ladder.table() in result.output  # every rung, expert and medium marked
    expert = ladder.expert()
    assert (f"expert: step {expert.step:,}, return {expert.estimate:.2f} over "
            f"{ladder.confirm_episodes} episodes, normalised "
            f"{reference_score('maze-5').normalise(expert.estimate):.3f}") in result.output


def test_hyperparameter_overrides_make_another_run_and_are_named_in_the_plan(tmp_path):
    base = preset("cheetah", "default", grid="unit")
    smaller = preset("cheetah", "default", grid="unit",
                     hyperparameters={"batch_size": 128, "buffer_size": 1e5})
    assert smaller.hyperparameters["batch_size"] == 128
    assert smaller.hyperparameters["buffer_size"] == 100_000  # a whole float: an integer
    assert isinstance(smaller.hyperparameters["buffer_size"], int)
    assert smaller.changed_hyperparameters() == {"buffer_size": 100_000, "batch_size": 128}
    assert base.changed_hyperparameters() == {}
    assert smaller.cache_key() != base.cache_key()
    result = CliRunner().invoke(main, ["train-behaviour", "--env", "maze-5", "--budget", "test",
                                       "--set", "ent_coef=0.05", "--set", "n_epochs=4",
                                       "--cache-dir", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    config = preset("maze-5", "test", hyperparameters={"ent_coef": 0.05, "n_epochs": 4})
    assert (f"behaviour: ppo (sb3, cpu) on maze-5 at 2 bins, actuator grid, n_epochs=4, "
            f"ent_coef=0.05 (cache key {config.cache_key()})") in result.output


def test_cli_dry_run_says_what_and_how_long_and_trains_nothing(tmp_path):
    result = CliRunner().invoke(main, ["train-behaviour", "--env", "maze-5", "--budget", "test",
                                       "--cache-dir", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    line = next(li for li in result.output.splitlines() if li.startswith("behaviour: ppo (sb3"))
    assert "61,440 env steps left of 61,440" in line and "a rung every 4,096 steps" in line
    rate = float(line.split("Measured here: ")[1].split(" steps/s")[0].replace(",", ""))
    assert rate > 100  # PPO on the maze: thousands of steps/s on any machine
    assert "warning" not in result.output  # minutes, not hours
    assert not any(tmp_path.iterdir())  # nothing trained, nothing cached


@pytest.mark.parametrize("scale", [0.0, 50.0])
def test_the_batched_maze_vec_env_steps_like_sb3s_dummy_vec_env(scale):
    """PPO's maze training envs as one numpy batch give SB3 exactly what DummyVecEnv over
    single mazes (Monitor inside, shaping outside) gives: observations, rewards, dones and the
    infos PPO reads (terminal_observation, TimeLimit.truncated, Monitor's true episode return)."""
    from stable_baselines3.common.env_util import make_vec_env

    from spin_data.behaviour.maze_vec_env import BatchedMazeVecEnv

    config, n = maze_config(5), 4
    wrapper = {} if not scale else {"wrapper_class": PotentialShaping,
                                    "wrapper_kwargs": {"gamma": 0.99, "scale": scale}}
    dummy = make_vec_env(lambda: make_env("maze-5"), n_envs=n, seed=3, **wrapper)
    batched = BatchedMazeVecEnv(config, n, {"gamma": 0.99, "scale": scale} if scale else None)
    batched.seed(3)
    np.testing.assert_array_equal(dummy.reset(), batched.reset())
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(400):  # several whole episodes per env (150-step limit, goals)
        actions = rng.integers(0, 2, (n, 5))
        a, b = dummy.step(actions), batched.step(actions)
        for x, y in zip(a[:3], b[:3]):
            np.testing.assert_array_equal(x, y)
        for info_a, info_b in zip(a[3], b[3]):
            assert info_a["TimeLimit.truncated"] == info_b["TimeLimit.truncated"]
            assert ("terminal_observation" in info_a) == ("terminal_observation" in info_b)
            if "terminal_observation" in info_a:
                np.testing.assert_array_equal(info_a["terminal_observation"],
                                              info_b["terminal_observation"])
                assert info_a["episode"]["r"] == info_b["episode"]["r"]
                assert info_a["episode"]["l"] == info_b["episode"]["l"]
                episodes += 1
    assert episodes >= 2 * n
