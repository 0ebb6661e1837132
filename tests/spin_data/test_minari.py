"""Minari interoperability: a real maze store exported with `spin-data export --format minari`,
read and trained on through Minari's own API only, imported back byte for byte; foreign Minari
datasets with continuous actions refused unless quantised."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch

from spin_data.store import open_dataset
from spin_data.tools import verify
from tests.spin_data.test_store_tools import run_cli

minari = pytest.importorskip("minari")

MAZE_ID = "spin/maze-5-2bins/medium-expert-v0"


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture
def exported(maze_medium_expert, minari_root):
    store, _ = maze_medium_expert
    result = run_cli("export", store, "--format", "minari", "--out", minari_root)
    assert result.exit_code == 0, result.output
    assert f"wrote Minari dataset {MAZE_ID}" in result.output
    return store, minari.load_dataset(MAZE_ID)


def test_export_loads_in_minari_with_the_stores_arrays_and_scores(exported):
    store, dataset = exported
    ds = open_dataset(store)
    assert (dataset.total_episodes, dataset.total_steps) == (ds.n_episodes, ds.n_steps)
    assert dataset.action_space == gym.spaces.MultiDiscrete([2] * 5)
    assert dataset.observation_space.shape == (ds.obs_dim,)
    md = dataset.storage.metadata
    assert (md["ref_min_score"], md["ref_max_score"]) == (-5.62, 99.34)  # the benchmark's
    assert md["spin"]["content_checksum"] == ds.content_checksum
    assert md["data_format"] == "hdf5"
    ends = ds.episode_ends
    obs, actions = ds.array("steps/observations"), ds.array("steps/actions")
    sources, seeds = ds.array("episodes/sources"), ds.array("episodes/seeds")
    finals = ds.array("episodes/final_observations")
    episode_md = list(dataset.storage.get_episode_metadata(range(dataset.total_episodes)))
    for e, episode in enumerate(dataset.iterate_episodes()):
        start, stop = (0 if e == 0 else ends[e - 1]), ends[e]
        np.testing.assert_array_equal(episode.observations[:-1], obs[start:stop])
        np.testing.assert_array_equal(episode.observations[-1], finals[e])
        np.testing.assert_array_equal(episode.actions, actions[start:stop])
        np.testing.assert_array_equal(episode.rewards, ds.array("steps/rewards")[start:stop])
        assert episode.terminations[-1] == ds.array("steps/terminations")[stop - 1]
        assert episode_md[e]["seed"] == seeds[e]
        assert episode_md[e]["spin_source"] == ["random", "medium", "expert", "other"][sources[e]]
    assert {m["spin_source"] for m in episode_md} == {"medium", "expert"}
    env = dataset.recover_environment(eval_env=True)
    assert env.spec.id == "spin/maze-5-2bins-v0" and env.action_space == dataset.action_space


def test_a_policy_trains_on_the_export_through_minari_alone(exported):
    """What a Minari user does: sample episodes, behaviour-clone, evaluate in the recovered env,
    normalise with Minari's own helper. Greedy BC on medium-expert maze data reaches the goal."""
    _, dataset = exported
    obs = np.concatenate([ep.observations[:-1] for ep in dataset.iterate_episodes()])
    act = np.concatenate([ep.actions for ep in dataset.iterate_episodes()])
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(obs.shape[1], 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, act.shape[1]))  # one on/off logit per actuator
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = torch.as_tensor(obs), torch.as_tensor(act, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    for _ in range(1500):
        idx = torch.randint(len(x), (256,), generator=gen)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    env = dataset.recover_environment(eval_env=True)
    returns = []
    for seed in range(10):
        o, _ = env.reset(seed=10_000 + seed)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                a = (net(torch.as_tensor(o[None], dtype=torch.float32))[0] > 0).numpy()
            o, r, terminated, truncated, _ = env.step(a.astype(np.int64))
            total, done = total + r, terminated or truncated
        returns.append(total)
    score = minari.get_normalized_score(dataset, np.asarray(returns)).mean()
    assert score > 0.5, returns


def test_import_brings_the_export_back_byte_for_byte(exported, tmp_path, minari_root):
    store, _ = exported
    result = run_cli("import", minari_root / MAZE_ID, "--format", "minari",
                     "--out", tmp_path / "back")
    assert result.exit_code == 0, result.output
    original, back = open_dataset(store), open_dataset(tmp_path / "back")
    assert back.content_checksum == original.content_checksum
    assert verify(tmp_path / "back").ok
    for key in ("dataset_id", "env", "quality", "recipe", "reference_scores", "returns"):
        assert back.metadata[key] == original.metadata[key], key
    assert back.metadata["imported_from"]["minari_dataset_id"] == MAZE_ID
    # By local id as well (MINARI_DATASETS_PATH), and never over an existing store.
    again = run_cli("import", MAZE_ID, "--format", "minari", "--out", tmp_path / "back")
    assert again.exit_code != 0 and "already exists" in again.output
    assert open_dataset(tmp_path / "back").content_checksum == original.content_checksum


def test_export_never_replaces_a_minari_dataset(exported, minari_root):
    store, dataset = exported
    before = sorted(p for p in (minari_root / MAZE_ID).rglob("*"))
    result = run_cli("export", store, "--format", "minari", "--out", minari_root)
    assert result.exit_code != 0 and "exports never replace one" in result.output
    assert result.output.count("\n") == 1  # one line, no traceback
    assert sorted(p for p in (minari_root / MAZE_ID).rglob("*")) == before
    assert not [p for p in minari_root.iterdir() if p.name.startswith(".spin-minari-")]


def test_continuous_actions_are_refused_unless_quantised(minari_root, tmp_path):
    """A foreign dataset (not spin's) on the maze with Box actions in [0, 1]: refused by default
    (the store holds bin indices), snapped to the nearest on/off bins with --quantise."""
    from minari.data_collector import EpisodeBuffer

    from spin_data.envs import make_env

    env = make_env("maze-5")
    rng = np.random.default_rng(0)
    buffers = []
    for e in range(3):
        o, _ = env.reset(seed=e)
        observations, actions, rewards, terms, truncs = [o], [], [], [], []
        for _ in range(20):
            a = rng.uniform(0, 1, 5)
            o, r, te, tr, _ = env.step((a > 0.5).astype(np.int64))
            observations.append(o), actions.append(a), rewards.append(r)
            terms.append(te), truncs.append(tr or len(actions) == 20)
            if te:
                break
        buffers.append(EpisodeBuffer(id=e, observations=np.array(observations),
                                     actions=np.array(actions, dtype=np.float32),
                                     rewards=np.array(rewards), terminations=np.array(terms),
                                     truncations=np.array(truncs), infos={}))
    minari.create_dataset_from_buffers(
        "foreign/maze/box-v0", buffers, data_format="hdf5",
        observation_space=env.observation_space,
        action_space=gym.spaces.Box(0.0, 1.0, (5,), np.float32))
    path = minari_root / "foreign" / "maze" / "box-v0"

    refused = run_cli("import", path, "--format", "minari", "--env", "maze-5",
                      "--out", tmp_path / "s")
    assert refused.exit_code != 0 and "continuous" in refused.output
    assert "--quantise" in refused.output and not (tmp_path / "s").exists()
    no_env = run_cli("import", path, "--format", "minari", "--out", tmp_path / "s")
    assert no_env.exit_code != 0 and "not exported by spin; name its task with --env" in no_env.output

    result = run_cli("import", path, "--format", "minari", "--env", "maze-5", "--quantise",
                     "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    n_steps = sum(len(b.rewards) for b in buffers)
    assert f"quantised {n_steps:,} of {n_steps:,} continuous actions" in result.output
    assert "lossy" in result.output
    ds = open_dataset(tmp_path / "s")
    snapped = np.concatenate([np.round(b.actions) for b in buffers]).astype(np.int64)
    np.testing.assert_array_equal(ds.array("steps/actions"), snapped)
    assert ds.metadata["imported_from"]["quantised_actions"] == n_steps
    assert set(ds.array("episodes/seeds")) == {-1}  # unknown: Minari stored none
    assert os.environ["MINARI_DATASETS_PATH"] == str(minari_root)


def test_export_to_a_relative_directory(maze_medium_expert, tmp_path, monkeypatch):
    """--out given relative to the working directory (it once came out as a doubled path)."""
    store, _ = maze_medium_expert
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", "relative-minari")
    result = run_cli("export", store, "--format", "minari", "--out", "relative-minari")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "relative-minari" / MAZE_ID / "data" / "main_data.hdf5").is_file()
    assert minari.load_dataset(MAZE_ID).total_steps == open_dataset(store).n_steps
