"""The SPIN reference code on spin's store (experiments/spin_drift/reference): the stand-in
``dmc_datasets`` serves exactly a store's transitions and spin's env for its task, the runner
passes the drift lab's sizes as the reference's flags, and - where the reference's git mirror
is on this machine - the authors' scripts run end to end on a small store."""

import csv
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from experiments.spin_drift.reference import run
from experiments.spin_drift.reference.dmc_datasets.environment_utils import (STORE_VARIABLE,
                                                                             make_env)
from spin_data import open_dataset
from spin_data.envs import make_env as spin_make_env
from spin_data.store import DatasetWriter, publish
from tests.episodes import maze_episodes, random_episode
from tests.spin_data.test_store import METADATA, write_maze

#: The reference implementation's bare git mirror (github.com/matthewlanders/SPIN).
MIRROR = Path(os.environ.get("SPIN_REFERENCE_CODE", "/work/.mirror/matthewlanders+SPIN/repo"))


@pytest.fixture(scope="module")
def cheetah(tmp_path_factory):
    """A cheetah-run store on the benchmark's grid: 2 uniform-random episodes (2,000 steps).
    Returns ``(store, episodes)``."""
    env = spin_make_env("cheetah", grid="unit")
    episodes = [random_episode(env, seed) for seed in (3, 4)]
    store = tmp_path_factory.mktemp("reference") / "cheetah"
    writer = DatasetWriter(store, obs_dim=17, bin_grid=env.bin_grid)
    for obs, act, rew, te, tr, seed in episodes:
        writer.add_episode(obs, act, rew, terminated=te, truncated=tr, source="medium",
                           seed=seed)
    writer.publish({"dataset_id": "cheetah-reference-test", "quality": "medium-expert",
                    "env": {"name": "cheetah", "kwargs": {"bins": 3, "grid": "unit"}},
                    "observation_keys": [list(k) for k in env.obs_keys]})
    return store, episodes


@pytest.fixture(scope="module")
def maze(tmp_path_factory):
    """A maze-5 store whose episodes end both ways (goal terminations and time limits)."""
    store = tmp_path_factory.mktemp("reference") / "maze"
    write_maze(store, maze_episodes(range(12), near_goal=True))
    publish(store, {**METADATA, "quality": "medium-expert"})
    return store


def _as_the_reference_reads(raw):
    """The arrays IQL.py's OfflineReplayBuffer builds from load_dataset's tuples."""
    return (np.array([t[0] for t in raw], dtype=np.float32),
            np.array([t[1] for t in raw], dtype=np.int64),
            np.array([t[2] for t in raw], dtype=np.float32).reshape(-1, 1),
            np.array([t[3] for t in raw], dtype=np.float32),
            np.array([t[4] for t in raw], dtype=np.float32).reshape(-1, 1))


def test_load_dataset_is_the_stores_transitions(cheetah, monkeypatch):
    store, episodes = cheetah
    monkeypatch.setenv(STORE_VARIABLE, str(store))
    env = make_env(task_name="cheetah", task="run", factorised=True, bin_size=3)
    raw = env.load_dataset(level="medium-expert", data_dir=str(store))
    assert len(raw) == 2000 and raw
    s, a, r, s2, done = raw[1999]
    assert (s.dtype, s.shape, a.dtype, a.shape) == (np.float32, (17,), np.int64, (6,))
    assert isinstance(r, np.float32) and isinstance(done, np.bool_)
    obs, actions, rewards, next_obs, dones = _as_the_reference_reads(raw)
    np.testing.assert_array_equal(obs, np.concatenate([e[0][:-1] for e in episodes]))
    # the next observation of each episode's last step is its final observation
    np.testing.assert_array_equal(next_obs, np.concatenate([e[0][1:] for e in episodes]))
    np.testing.assert_array_equal(actions, np.concatenate([e[1] for e in episodes]))
    assert set(np.unique(actions)) == {0, 1, 2}  # bin indices, not bin values
    np.testing.assert_array_equal(rewards[:, 0], np.concatenate([e[2] for e in episodes]))
    # both episodes end at the time limit (truncations): no done, bootstrapping goes on
    assert open_dataset(store).array("steps/truncations").sum() == 2
    assert not dones.any()


def test_done_is_the_termination_never_the_time_limit(maze, monkeypatch):
    monkeypatch.setenv(STORE_VARIABLE, str(maze))
    raw = make_env("maze", "5", bin_size=2).load_dataset("medium-expert")
    steps = open_dataset(maze).transitions()
    assert steps["terminations"].any() and steps["truncations"].any()
    np.testing.assert_array_equal(_as_the_reference_reads(raw)[4][:, 0],
                                  steps["terminations"])


def test_make_env_is_spins_env_for_the_stores_task(cheetah, monkeypatch):
    store, episodes = cheetah
    monkeypatch.setenv(STORE_VARIABLE, str(store))
    env = make_env(task_name="cheetah", task="run", factorised=True, bin_size=3)
    assert env.observation_space.shape == (17,)
    assert env.action_space.nvec.tolist() == [3] * 6 and env._max_episode_steps == 1000
    # replaying a stored episode from its reset seed gives its rewards, as spin's env does
    spin_env = spin_make_env("cheetah", grid="unit")
    obs, act, rew, _, _, seed = episodes[0]
    ours, _ = env.reset(seed=seed)
    theirs, _ = spin_env.reset(seed=seed)
    np.testing.assert_array_equal(ours, obs[0])
    np.testing.assert_array_equal(theirs, obs[0])
    for t in range(200):
        stepped = env.step(act[t].astype(np.int64))
        expected = spin_env.step(act[t])
        assert stepped[1] == expected[1] and np.float32(stepped[1]) == rew[t]  # as stored
        np.testing.assert_array_equal(stepped[0], obs[t + 1])


def test_the_stand_in_refuses_what_the_store_is_not(cheetah, maze, monkeypatch):
    store, _ = cheetah
    monkeypatch.delenv(STORE_VARIABLE, raising=False)
    with pytest.raises(ValueError, match=r"\$SPIN_REFERENCE_STORE is not set"):
        make_env("cheetah", "run")
    monkeypatch.setenv(STORE_VARIABLE, str(store))
    with pytest.raises(ValueError, match="finger-spin asked for, the store .* holds cheetah-run"):
        make_env("finger", "spin")
    with pytest.raises(ValueError, match="bin_size 5 asked for, .* has 3 bins per dimension"):
        make_env("cheetah", "run", bin_size=5)
    with pytest.raises(ValueError, match="only factorised"):
        make_env("cheetah", "run", factorised=False)
    env = make_env("cheetah", "run")
    with pytest.raises(ValueError, match="level 'expert' asked for, .* holds 'medium-expert'"):
        env.load_dataset("expert")
    with pytest.raises(ValueError, match="is another store than"):
        env.load_dataset("medium-expert", data_dir=str(maze))


def _lab(store, tmp_path, *extra):
    reference = tmp_path / "reference"
    reference.mkdir(exist_ok=True)
    for script in run.SCRIPTS:
        (reference / script).touch()
    return run.make_lab(run.build_parser().parse_args(
        ["--reference", str(reference), "--store", str(store), "--out", str(tmp_path / "out"),
         *extra]))


def test_the_runner_passes_the_drift_labs_sizes(cheetah, tmp_path):
    store, _ = cheetah
    lab = _lab(store, tmp_path)
    assert lab.seeds == (0, 1)
    asm = run.flag_values(run.asm_args(lab, tmp_path))
    assert {k: asm[k] for k in ("--domain-name", "--task-name", "--bin-size",
                                "--dataset-level", "--dataset-root-dir")} == {
        "--domain-name": "cheetah", "--task-name": "run", "--bin-size": "3",
        "--dataset-level": "medium-expert", "--dataset-root-dir": str(store.resolve())}
    assert {k: asm[k] for k in ("--d-model", "--num-heads", "--num-transformer-blocks",
                                "--num-epochs", "--batch-size", "--learning-rate", "--seed",
                                "--masking-prob", "--no-cuda", "--no-track")} == {
        "--d-model": "128", "--num-heads": "4", "--num-transformer-blocks": "2",
        "--num-epochs": "2", "--batch-size": "1024", "--learning-rate": "0.0004",
        "--seed": "0", "--masking-prob": "0.15", "--no-cuda": True, "--no-track": True}
    iql = run.flag_values(run.iql_args(lab, 1, Path("final.pt"), tmp_path))
    assert {k: iql[k] for k in ("--seed", "--num-gradient-steps", "--eval-freq",
                                "--eval-episodes", "--batch-size", "--learning-rate",
                                "--iql-beta", "--iql-expectile", "--gamma", "--tau",
                                "--actor-type", "--asm-model-path", "--actor-d-model",
                                "--actor-num-tf-blocks", "--actor-num-heads",
                                "--freeze-asm-loaded-parts")} == {
        "--seed": "1", "--num-gradient-steps": "10001", "--eval-freq": "500",
        "--eval-episodes": "10", "--batch-size": "256", "--learning-rate": "0.0003",
        "--iql-beta": "3.0", "--iql-expectile": "0.8", "--gamma": "0.99", "--tau": "0.005",
        "--actor-type": "saint", "--asm-model-path": "final.pt", "--actor-d-model": "128",
        "--actor-num-tf-blocks": "2", "--actor-num-heads": "4",
        "--freeze-asm-loaded-parts": True}
    small = _lab(store, tmp_path, "--steps", "200", "--eval-every", "100", "--asm-epochs", "1",
                 "--seeds", "5")
    assert run.flag_values(run.iql_args(small, 5, Path("a"), tmp_path))[
        "--num-gradient-steps"] == "201"
    assert run.flag_values(run.asm_args(small, tmp_path))["--num-epochs"] == "1"
    assert small.seeds == (5,)


def test_evaluations_are_read_from_the_references_output():
    lines = ["Starting training for 3 gradient steps...", "", "--- Evaluating at step 0 ---",
             "Eval: 10 eps: Avg Reward 12.500 +/- 1.250", "Saved checkpoint to x",
             "--- Evaluating at step 500 ---", "Eval: 10 eps: Avg Reward -3.000 +/- 0.000"]
    assert run.parse_evaluations(lines) == [
        {"step": 0, "eval_episodes": 10, "eval_return_mean": 12.5, "eval_return_std": 1.25},
        {"step": 500, "eval_episodes": 10, "eval_return_mean": -3.0, "eval_return_std": 0.0}]


@pytest.mark.parametrize("flags, message", [
    (["--store", "{tmp}/none"], "no such store directory"),
    (["--reference", "{tmp}/none"], "--reference .*/none: no such folder"),
    (["--reference", "{tmp}"], "holds neither ASM.py and IQL.py nor a bare git repository"),
    (["--group", "missing"], "has no policy group 'missing'"),
])
def test_bad_input_is_one_line(cheetah, tmp_path, capsys, flags, message):
    store, _ = cheetah
    reference = tmp_path / "code"
    reference.mkdir()
    for script in run.SCRIPTS:
        (reference / script).touch()
    given = {"--reference": str(reference), "--store": str(store)}
    given.update(zip(flags[::2], (f.format(tmp=tmp_path) for f in flags[1::2])))
    with pytest.raises(SystemExit):
        run.main([x for kv in given.items() for x in kv] + ["--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(rf"\S+: error: .*{message}", error), error
    assert not (tmp_path / "out").exists()


TINY_LAB = """
name: reference-tiny
datasets:
  maze:
    env: maze-5
    quality: medium-expert
pretrain:
  asm: {epochs: 1, batch_size: 256, d_model: 16, n_layers: 1}
policies:
  small:
    actors: [spin]
    algos: [iql]
    asm: asm
    seeds: 1
    steps: 4
    eval_every: 2
    eval_episodes: 2
"""


def _snapshot(out):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file()}


@pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no reference mirror at {MIRROR}")
def test_the_reference_runs_on_a_spin_store(maze, tmp_path, capsys):
    pytest.importorskip("tyro")
    pytest.importorskip("tensorboard")
    (tmp_path / "tiny.yaml").write_text(TINY_LAB)
    out = tmp_path / "out"
    flags = ["--reference", str(MIRROR), "--store", str(maze), "--out", str(out),
             "--pipeline", str(tmp_path / "tiny.yaml"), "--no-progress"]
    run.main(flags)
    config = json.loads((out / "policy" / "reference-s0" / "config.json").read_text())
    assert (config["actor"], config["seed"]) == ("reference-spin", 0)
    assert "[ASM] SAINT actor warm-started from ASM." in (
        out / "policy" / "reference-s0" / "stdout.log").read_text()
    rows = list(csv.DictReader(open(out / "evaluations.csv")))
    assert [(r["seed"], r["step"], r["episodes"]) for r in rows] == [
        ("0", "0", "2"), ("0", "2", "2"), ("0", "4", "2")]
    curves = list(csv.DictReader(open(out / "curves.csv")))
    assert [(c["group"], c["step"]) for c in curves] == [("reference", s) for s in "024"]
    assert [float(c["return_mean"]) for c in curves] == [float(r["return_mean"]) for r in rows]
    # run again: every stage is finished, nothing is rewritten but the summaries
    before = _snapshot(out / "policy") | _snapshot(out / "asm")
    capsys.readouterr()
    run.main(flags)
    printed = capsys.readouterr().out
    assert "asm: finished" in printed and "seed 0: finished" in printed
    assert _snapshot(out / "policy") | _snapshot(out / "asm") == before
    with pytest.raises(SystemExit):
        run.main(flags + ["--asm-epochs", "2"])
    assert "was run with --num-epochs 1, this run asks for 2" in capsys.readouterr().err
