"""The SPIN reference code on spin's store (experiments/spin_drift/reference): the stand-in
``dmc_datasets`` serves exactly a store's transitions and spin's env for its task."""

import numpy as np
import pytest

from experiments.spin_drift.reference.dmc_datasets.environment_utils import (STORE_VARIABLE,
                                                                             make_env)
from spin_data import open_dataset
from spin_data.envs import make_env as spin_make_env
from spin_data.store import DatasetWriter, publish
from tests.episodes import maze_episodes, random_episode
from tests.spin_data.test_store import METADATA, write_maze


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
