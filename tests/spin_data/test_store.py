"""The Zarr store on local disk: round trips, atomic publish, interruption, several writers."""

import json
import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from spin_data import open_dataset
from spin_data.envs import BinGridError, make_env
from spin_data.store import (
    DatasetOpenError,
    DatasetWriteError,
    DatasetWriter,
    StagingExists,
    StoreLocationError,
    discard,
    publish,
    schema,
)
from tests.episodes import maze_episodes, random_episode

MAZE_GRID = make_env("maze-5").bin_grid
METADATA = {"dataset_id": "maze-5-test-v1", "env": {"name": "maze-5", "kwargs": {}}}


def write_maze(location, episodes, *, part=0, staging_dir=None, resume=False, source="random"):
    writer = DatasetWriter(location, obs_dim=2, bin_grid=MAZE_GRID, part=part, resume=resume,
                           staging_dir=staging_dir)
    for obs, act, rew, te, tr, seed in episodes:
        writer.add_episode(obs, act, rew, terminated=te, truncated=tr, source=source, seed=seed)
    writer.close()
    return writer


@pytest.fixture(scope="module")
def cheetah_episodes():
    env = make_env("cheetah")
    return [random_episode(env, s, policy_seed=100 + s) for s in range(3)]


def test_round_trip_identical_arrays_and_metadata(tmp_path, cheetah_episodes):
    env = make_env("cheetah")
    location = tmp_path / "cheetah-random"
    writer = DatasetWriter(location, obs_dim=17, bin_grid=env.bin_grid)
    for i, (obs, act, rew, te, tr, _) in enumerate(cheetah_episodes):
        writer.add_episode(obs, act, rew, terminated=te, truncated=tr,
                           source=["random", "medium", "expert"][i], seed=i)
    assert not location.exists()  # nothing visible before publishing
    writer.publish({**METADATA, "dataset_id": "cheetah-test", "observation_keys": env.obs_keys})
    assert not Path(str(location) + ".partial").exists()  # staging cleaned up

    ds = open_dataset(location)
    assert (ds.n_steps, ds.n_episodes, ds.obs_dim, ds.n_actions) == (3000, 3, 17, 6)
    assert ds.bin_grid == env.bin_grid
    steps = ds.transitions()
    np.testing.assert_array_equal(steps["observations"],
                                  np.concatenate([e[0][:-1] for e in cheetah_episodes]))
    np.testing.assert_array_equal(steps["next_observations"],
                                  np.concatenate([e[0][1:] for e in cheetah_episodes]))
    np.testing.assert_array_equal(steps["actions"],
                                  np.concatenate([e[1] for e in cheetah_episodes]))
    np.testing.assert_array_equal(steps["rewards"],
                                  np.concatenate([e[2] for e in cheetah_episodes]).astype(np.float32))
    assert steps["actions"].dtype == np.uint8 and steps["observations"].dtype == np.float32
    assert steps["truncations"].sum() == 3 and not steps["terminations"].any()
    np.testing.assert_array_equal(np.flatnonzero(steps["truncations"]), [999, 1999, 2999])
    for i, (obs, act, rew, te, tr, _) in enumerate(cheetah_episodes):
        episode = ds.episode(i)
        np.testing.assert_array_equal(episode.observations, obs)
        np.testing.assert_array_equal(episode.actions, act)
        assert episode.seed == i and episode.source == ["random", "medium", "expert"][i]
        assert episode.episode_return == pytest.approx(float(np.sum(rew)), rel=1e-6)

    md = ds.metadata
    assert md["dataset_id"] == "cheetah-test"
    assert md["totals"] == {"steps": 3000, "episodes": 3, "terminated_episodes": 0,
                            "truncated_episodes": 3}
    assert md["returns"]["expert"]["episodes"] == 1
    assert md["returns"]["all"]["max"] == pytest.approx(max(float(np.sum(e[2]))
                                                            for e in cheetah_episodes))
    assert md["observation_keys"] == [["position", 8], ["velocity", 9]]
    assert md["bin_grid"]["values"][0] == [-1.0, 0.0, 1.0]
    assert md["versions"]["zarr"] == zarr.__version__ and md["created"].endswith("+00:00")
    for path in schema.ARRAY_PATHS:
        assert ds.checksums[path] == schema.array_checksum(ds.array(path)), path
    assert ds.content_checksum == schema.content_checksum(ds.checksums)


def test_layout_of_a_million_step_store():
    """>= 4 MiB chunks along time inside 2**18-row shards: 4 shard files per array for 1M steps."""
    for spec in schema.ARRAYS:
        if spec.per != "step":
            continue
        shape = schema.array_shape(spec, 1_000_000, 67, 21)
        dtype = schema.array_dtype(spec, [3] * 21)
        chunks, shards = schema.layout(spec, shape, dtype)
        row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        assert chunks[0] * row_bytes >= min(schema.MIN_CHUNK_BYTES, schema.SHARD_ROWS * row_bytes)
        assert shards[0] == schema.SHARD_ROWS and shards[0] % chunks[0] == 0
        assert -(-shape[0] // shards[0]) == 4
    assert schema.action_dtype([3] * 21) == np.uint8
    assert schema.action_dtype([300, 2]) == np.uint16


def test_terminations_are_recorded_apart_from_truncations(tmp_path):
    episodes = maze_episodes(range(6), near_goal=True)  # even seeds start below the goal
    assert any(e[3] for e in episodes) and any(e[4] for e in episodes)
    write_maze(tmp_path / "m", episodes)
    publish(tmp_path / "m", METADATA)
    ds = open_dataset(tmp_path / "m")
    ends = ds.episode_ends - 1
    np.testing.assert_array_equal(ds.array("steps/terminations")[ends], [e[3] for e in episodes])
    np.testing.assert_array_equal(ds.array("steps/truncations")[ends], [e[4] for e in episodes])
    assert ds.array("steps/terminations").sum() + ds.array("steps/truncations").sum() == 6
    assert ds.metadata["totals"]["terminated_episodes"] == sum(e[3] for e in episodes)


def test_same_episodes_give_the_same_bytes(tmp_path):
    episodes = maze_episodes(range(4))
    for name in ("a", "b"):
        write_maze(tmp_path / name, episodes)
        publish(tmp_path / name, METADATA)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                     if p.is_file() and p.name != "zarr.json")
    assert files_a and any("c" in p.parts for p in files_a)
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert open_dataset(tmp_path / "a").content_checksum == open_dataset(
        tmp_path / "b").content_checksum


def test_published_stores_are_never_replaced(tmp_path):
    episodes = maze_episodes(range(2))
    write_maze(tmp_path / "m", episodes)
    publish(tmp_path / "m", METADATA)
    before = open_dataset(tmp_path / "m").content_checksum
    with pytest.raises(StoreLocationError, match="already exists"):
        DatasetWriter(tmp_path / "m", obs_dim=2, bin_grid=MAZE_GRID)
    # a store published at m while another write (staged elsewhere) was under way
    write_maze(tmp_path / "m2", episodes, staging_dir=tmp_path / "other-staging")
    with pytest.raises(StoreLocationError, match="already exists"):
        publish(tmp_path / "m", METADATA, staging_dir=tmp_path / "other-staging")
    assert open_dataset(tmp_path / "m").content_checksum == before


def test_bad_episodes_are_refused_and_nothing_is_committed(tmp_path):
    (obs, act, rew, te, tr, seed), = maze_episodes(range(1))
    writer = DatasetWriter(tmp_path / "m", obs_dim=2, bin_grid=MAZE_GRID)
    cases = [
        (dict(observations=obs[:-1]), DatasetWriteError, r"\(L \+ 1, D\)"),
        (dict(actions=act[:, :4]), BinGridError, r"shape \(\.\.\., 5\)"),
        (dict(actions=act + 1), BinGridError, "out of range"),
        (dict(rewards=np.full_like(rew, np.nan)), DatasetWriteError, "finite"),
        (dict(terminated=True, truncated=True), DatasetWriteError, "exactly one"),
        (dict(source="great"), DatasetWriteError, "unknown source 'great'"),
    ]
    good = dict(observations=obs, actions=act, rewards=rew, terminated=te, truncated=tr,
                source="random", seed=seed)
    for change, error, message in cases:
        with pytest.raises(error, match=message):
            writer.add_episode(**{**good, **change})
    assert writer.n_episodes == 0
    writer.add_episode(**good)
    writer.publish(METADATA)
    ds = open_dataset(tmp_path / "m")
    assert ds.n_episodes == 1 and ds.n_steps == len(rew)


def test_open_refuses_what_is_not_a_complete_known_store(tmp_path):
    with pytest.raises(StoreLocationError, match="no such store"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hello")
    with pytest.raises(DatasetOpenError, match="not a spin dataset"):
        open_dataset(tmp_path / "plain")
    zarr.open_group(str(tmp_path / "other-zarr"), mode="w").attrs["x"] = 1
    with pytest.raises(DatasetOpenError, match="not a spin dataset"):
        open_dataset(tmp_path / "other-zarr")

    write_maze(tmp_path / "m", maze_episodes(range(1)))
    publish(tmp_path / "m", METADATA)
    root = tmp_path / "m" / "zarr.json"
    original = json.loads(root.read_text())
    for change, message in [({"schema_version": 99}, "schema version 99, newer than this spin"),
                            ({"complete": False}, "incomplete store")]:
        doc = json.loads(json.dumps(original))
        doc["attributes"]["spin"].update(change)
        root.write_text(json.dumps(doc))
        with pytest.raises(DatasetOpenError, match=message) as info:
            open_dataset(tmp_path / "m")
        assert str(tmp_path / "m") in str(info.value)


def test_interrupted_write_resumes_from_the_last_complete_episode(tmp_path):
    episodes = maze_episodes(range(5))
    location = tmp_path / "m"
    writer = write_maze(location, episodes[:3])
    # A crash while episode 4 was being written: some of its bytes and half a journal line.
    part = Path(str(location) + ".partial") / "parts" / "part-00000"
    with open(part / "observations.bin", "ab") as fh:
        fh.write(np.ones((7, 2), np.float32).tobytes())
    with open(part / "journal.jsonl", "ab") as fh:
        fh.write(b'{"steps": 7, "ret')
    assert writer.n_episodes == 3

    with pytest.raises(StagingExists, match="3 complete episodes.*resume=True"):
        DatasetWriter(location, obs_dim=2, bin_grid=MAZE_GRID)
    resumed = DatasetWriter(location, obs_dim=2, bin_grid=MAZE_GRID, resume=True)
    assert (resumed.n_episodes, resumed.n_steps) == (3, sum(len(e[2]) for e in episodes[:3]))
    for obs, act, rew, te, tr, seed in episodes[3:]:
        resumed.add_episode(obs, act, rew, terminated=te, truncated=tr, source="random", seed=seed)
    resumed.publish(METADATA)

    write_maze(tmp_path / "reference", episodes)
    publish(tmp_path / "reference", METADATA)
    assert open_dataset(location).checksums == open_dataset(tmp_path / "reference").checksums


def test_a_resumed_part_must_match_its_grid(tmp_path):
    write_maze(tmp_path / "m", maze_episodes(range(1)))
    with pytest.raises(DatasetWriteError, match="cannot resume"):
        DatasetWriter(tmp_path / "m", obs_dim=3, bin_grid=MAZE_GRID, resume=True)


def test_discard_removes_an_interrupted_write(tmp_path):
    write_maze(tmp_path / "m", maze_episodes(range(2)))
    assert discard(tmp_path / "m") is True
    assert not Path(str(tmp_path / "m") + ".partial").exists()
    assert discard(tmp_path / "m") is False
    write_maze(tmp_path / "m", maze_episodes(range(1)))  # a fresh start is allowed again
    publish(tmp_path / "m", METADATA)
    assert open_dataset(tmp_path / "m").n_episodes == 1


KILL_SCRIPT = """
import sys, numpy as np
from spin_data.envs import make_env
from spin_data.store import DatasetWriter
env = make_env("cheetah")
writer = DatasetWriter(sys.argv[1], obs_dim=17, bin_grid=env.bin_grid)
rng = np.random.default_rng(0)
for seed in range(1000):
    obs, _ = env.reset(seed=seed)
    o, a, r = [obs], [], []
    done = False
    while not done:
        act = rng.integers(0, 3, 6)
        obs, rew, te, tr, _ = env.step(act)
        o.append(obs); a.append(act); r.append(rew); done = te or tr
    writer.add_episode(np.stack(o), np.stack(a), np.array(r), terminated=te, truncated=tr,
                       source="random", seed=seed)
"""


def test_killed_writer_process_resumes_cleanly(tmp_path):
    """SIGKILL a real writer mid-run; the staging area holds only whole, correct episodes."""
    location = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(location)])
    journal = Path(str(location) + ".partial") / "parts" / "part-00000" / "journal.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    writer = DatasetWriter(location, obs_dim=17, bin_grid=make_env("cheetah").bin_grid,
                           resume=True)
    n = writer.n_episodes
    assert n >= 3 and writer.n_steps == 1000 * n
    writer.publish(METADATA)
    ds = open_dataset(location)
    # the committed episodes are exactly what the script generated for seeds 0..n-1
    env = make_env("cheetah")
    rng = np.random.default_rng(0)
    for seed in range(n):
        obs, _ = env.reset(seed=seed)
        episode = ds.episode(seed)
        np.testing.assert_array_equal(episode.observations[0], obs)
        actions = [rng.integers(0, 3, 6) for _ in range(1000)]
        np.testing.assert_array_equal(episode.actions, np.stack(actions))


def _write_part(args):
    location, part, first_seed, n = args
    write_maze(location, maze_episodes(range(first_seed, first_seed + n)), part=part)
    return part


def test_several_writers_equal_one_writer(tmp_path):
    """Three processes each own a part; two publish workers own disjoint shards; the store is
    identical to one writer writing the same episodes in part order."""
    plan = [(0, 0, 700), (1, 700, 700), (2, 1400, 700)]  # (part, first seed, episodes)
    location = str(tmp_path / "multi")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        assert sorted(pool.map(_write_part, [(location, *p) for p in plan])) == [0, 1, 2]
    publish(location, METADATA, workers=2)
    multi = open_dataset(location)
    assert multi.n_steps > schema.SHARD_ROWS  # at least two shards, so both workers wrote

    write_maze(tmp_path / "single", maze_episodes(range(2100)))
    publish(tmp_path / "single", METADATA)
    single = open_dataset(tmp_path / "single")
    assert multi.checksums == single.checksums
    for path in schema.ARRAY_PATHS:
        np.testing.assert_array_equal(multi.array(path), single.array(path))
    shard_files = sorted((tmp_path / "single" / "steps" / "observations").rglob("c/*/*"))
    assert len(shard_files) == 2
    for f in shard_files:
        twin = Path(location) / f.relative_to(tmp_path / "single")
        assert f.read_bytes() == twin.read_bytes()
    assert [e.seed for e in [multi.episode(0), multi.episode(700), multi.episode(-1)]] == [
        0, 700, 2099]
