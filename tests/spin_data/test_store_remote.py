"""Stores outside a local directory: S3 (a real S3 server on 127.0.0.1), zip files, file:// URLs,
and reading a store with plain zarr (no spin installed).

The S3 server is moto's ``ThreadedMotoServer`` started by this module on a free local port with
dummy credentials; nothing here talks to real AWS or leaves 127.0.0.1. Skipped cleanly where the
``dev`` extra (s3fs, moto) is not installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from spin_data import open_dataset
from spin_data.envs import make_env
from spin_data.store import (
    DatasetOpenError,
    DatasetWriter,
    StoreLocationError,
    publish,
    schema,
)
from tests.episodes import assert_same_transitions, maze_episodes

ENV = "maze-5"
GRID = make_env(ENV).bin_grid
OBS_DIM = 2
METADATA = {"dataset_id": "maze-5-remote-test-v1", "env": {"name": ENV, "kwargs": {}}}
#: Starting just below the goal, about half of these random episodes terminate at the goal.
#: Dummy credentials: the local server accepts any; real AWS is never contacted.
KEY, SECRET = "spin-test-key", "spin-test-secret"


def assert_matches_episodes(ds, episodes) -> None:
    """The store holds exactly these episodes: arrays, seeds and recorded checksums."""
    assert_same_transitions(ds, episodes)
    assert ds.array("episodes/seeds").tolist() == [e[5] for e in episodes]
    steps = ds.transitions()
    for name in ("observations", "actions", "rewards", "terminations", "truncations"):
        assert ds.checksums[f"steps/{name}"] == schema.array_checksum(steps[name])


@pytest.fixture(scope="module")
def episodes():
    eps = maze_episodes(range(6), near_goal=True)
    assert any(e[3] for e in eps) and any(e[4] for e in eps)  # both endings are exercised
    return eps


def collect(location, episodes, staging_dir, storage_options=None) -> DatasetWriter:
    writer = DatasetWriter(location, obs_dim=OBS_DIM, bin_grid=GRID, staging_dir=staging_dir,
                           storage_options=storage_options)
    for obs, act, rew, te, tr, seed in episodes:
        writer.add_episode(obs, act, rew, terminated=te, truncated=tr, source="random", seed=seed)
    writer.close()
    return writer


@pytest.fixture(scope="module")
def local_store(tmp_path_factory, episodes) -> Path:
    """The reference: the same episodes published to a local directory."""
    root = tmp_path_factory.mktemp("local")
    writer = collect(root / "ds", episodes, root / "staging")
    writer.publish(METADATA)
    return root / "ds"


def assert_same_dataset(ds, reference) -> None:
    """Every array, the checksums and the metadata (but its creation time) are identical."""
    assert (ds.n_steps, ds.n_episodes) == (reference.n_steps, reference.n_episodes)
    for path in schema.ARRAY_PATHS:
        a, b = ds.array(path), reference.array(path)
        assert a.dtype == b.dtype, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    assert ds.checksums == reference.checksums
    assert ds.content_checksum == reference.content_checksum
    drop = {"created"}
    assert ({k: v for k, v in ds.metadata.items() if k not in drop}
            == {k: v for k, v in reference.metadata.items() if k not in drop})


# ============================================================================= S3 server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def s3_options(endpoint: str, key: str = KEY, secret: str = SECRET) -> dict:
    """storage_options for s3fs: explicit credentials and endpoint, one attempt, short timeouts
    (an unreachable endpoint must fail fast, not retry for minutes)."""
    return {
        "key": key,
        "secret": secret,
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2,
                          "read_timeout": 10},
    }


@pytest.fixture(scope="module")
def s3_endpoint():
    """A local S3 server for this module; the environment points nowhere near real AWS."""
    pytest.importorskip("s3fs", reason="needs the remote extra: pip install -e '.[dev]'")
    moto_server = pytest.importorskip("moto.server", reason="needs the dev extra (moto)")
    mp = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        mp.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        mp.delenv(name, raising=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        mp.undo()


@pytest.fixture
def bucket(s3_endpoint, request) -> str:
    """A fresh, empty bucket for one test."""
    import s3fs

    name = "spin-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    # No region here: s3fs would send a LocationConstraint, which us-east-1 refuses.
    fs = s3fs.S3FileSystem(key=KEY, secret=SECRET, client_kwargs={"endpoint_url": s3_endpoint},
                           skip_instance_cache=True)
    fs.mkdir(name)
    return name


@pytest.fixture
def options(s3_endpoint) -> dict:
    return s3_options(s3_endpoint)


def s3fs_for(options: dict):
    import s3fs

    return s3fs.S3FileSystem(**options, skip_instance_cache=True)


# ============================================================================= S3 tests
def test_s3_round_trip_identical_to_local(tmp_path, bucket, options, episodes, local_store):
    url = f"s3://{bucket}/datasets/maze-5-random"
    writer = collect(url, episodes, tmp_path / "staging", storage_options=options)
    assert not s3fs_for(options).exists(f"{bucket}/datasets/maze-5-random/zarr.json")
    assert writer.publish(METADATA, storage_options=options) == url
    assert not (tmp_path / "staging").exists()  # staging cleaned up after the upload

    objects = s3fs_for(options).find(f"{bucket}/datasets/maze-5-random")
    assert f"{bucket}/datasets/maze-5-random/zarr.json" in objects
    assert f"{bucket}/datasets/maze-5-random/steps/observations/zarr.json" in objects

    ds = open_dataset(url, storage_options=options)
    reference = open_dataset(local_store)
    assert_same_dataset(ds, reference)
    assert_matches_episodes(ds, episodes)
    for i, (obs, act, rew, te, tr, seed) in enumerate(episodes):
        episode = ds.episode(i)
        np.testing.assert_array_equal(episode.observations, obs)
        np.testing.assert_array_equal(episode.actions, act)
        assert (bool(episode.terminations[-1]), bool(episode.truncations[-1])) == (te, tr)
        assert episode.seed == seed


def test_s3_trailing_slash_and_credentials_from_environment(tmp_path, bucket, s3_endpoint,
                                                            episodes):
    """Only the endpoint in storage_options: credentials come from the (dummy) environment."""
    options = s3_options(s3_endpoint)
    del options["key"], options["secret"]
    url = f"s3://{bucket}/env-creds/"
    collect(url, episodes[:2], tmp_path / "staging", storage_options=options).publish(
        METADATA, storage_options=options)
    ds = open_dataset(url.rstrip("/"), storage_options=options)
    assert ds.n_episodes == 2
    assert_matches_episodes(ds, episodes[:2])


def test_s3_publish_again_is_refused_and_first_store_intact(tmp_path, bucket, options,
                                                            episodes):
    url = f"s3://{bucket}/immutable"
    first = collect(url, episodes[:3], tmp_path / "first", storage_options=options)
    # A second writer of the same location, collecting while the first has not published yet.
    second = collect(url, episodes[3:], tmp_path / "second", storage_options=options)
    first.publish(METADATA, storage_options=options)
    fs = s3fs_for(options)
    before = {p: fs.cat_file(p) for p in fs.find(f"{bucket}/immutable")}

    with pytest.raises(StoreLocationError, match="already exists"):
        second.publish(METADATA, storage_options=options)
    with pytest.raises(StoreLocationError, match="already exists"):
        DatasetWriter(url, obs_dim=OBS_DIM, bin_grid=GRID, staging_dir=tmp_path / "third",
                      storage_options=options)
    assert (tmp_path / "second" / "parts").exists()  # the refused collection is not lost

    fs = s3fs_for(options)
    after = {p: fs.cat_file(p) for p in fs.find(f"{bucket}/immutable")}
    assert after == before  # not one object replaced or added
    ds = open_dataset(url, storage_options=options)
    assert ds.n_episodes == 3
    assert_matches_episodes(ds, episodes[:3])


def test_s3_missing_bucket_is_named(tmp_path, s3_endpoint, options):
    url = "s3://spin-no-such-bucket/datasets/x"
    with pytest.raises(StoreLocationError, match="spin-no-such-bucket") as err:
        open_dataset(url, storage_options=options)
    assert "does not exist" in str(err.value)
    with pytest.raises(StoreLocationError, match="spin-no-such-bucket"):
        DatasetWriter(url, obs_dim=OBS_DIM, bin_grid=GRID, staging_dir=tmp_path / "s",
                      storage_options=options)


def test_s3_missing_store_in_existing_bucket(bucket, options):
    with pytest.raises((StoreLocationError, DatasetOpenError), match="nothing-here") as err:
        open_dataset(f"s3://{bucket}/nothing-here", storage_options=options)
    assert "does not exist" not in str(err.value)  # the bucket is there; the store is not


def test_s3_bad_credentials_give_a_clear_error(tmp_path, bucket, s3_endpoint, monkeypatch,
                                               episodes):
    """With authentication switched on, unknown keys are refused with a credentials error."""
    import moto.settings

    options = s3_options(s3_endpoint, key="AKIAWRONGWRONGWRONG", secret="wrong")
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    start = time.monotonic()
    with pytest.raises(StoreLocationError, match="(?i)access denied|credentials") as err:
        open_dataset(f"s3://{bucket}/ds", storage_options=options)
    assert bucket in str(err.value)
    assert "does not exist" not in str(err.value)  # not mistaken for a missing bucket
    with pytest.raises(StoreLocationError, match="(?i)access denied|credentials"):
        DatasetWriter(f"s3://{bucket}/ds", obs_dim=OBS_DIM, bin_grid=GRID,
                      staging_dir=tmp_path / "s", storage_options=options)
    assert time.monotonic() - start < 20


def test_s3_unreachable_endpoint_fails_fast(tmp_path):
    pytest.importorskip("s3fs", reason="needs the remote extra")
    options = s3_options(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    start = time.monotonic()
    with pytest.raises(StoreLocationError, match="(?i)cannot reach") as err:
        open_dataset("s3://spin-bucket/ds", storage_options=options)
    assert "does not exist" not in str(err.value)
    with pytest.raises(StoreLocationError, match="(?i)cannot reach"):
        DatasetWriter("s3://spin-bucket/ds", obs_dim=OBS_DIM, bin_grid=GRID,
                      staging_dir=tmp_path / "s", storage_options=options)
    assert time.monotonic() - start < 30


def test_s3_interrupted_upload_is_not_a_store(tmp_path, bucket, options, local_store):
    """Every object uploaded but the root zarr.json (the last one publishing writes)."""
    fs = s3fs_for(options)
    prefix = f"{bucket}/cut-short"
    files = sorted(f for f in local_store.rglob("*") if f.is_file())
    for file in files:
        if file != local_store / "zarr.json":
            fs.put_file(str(file), f"{prefix}/{file.relative_to(local_store).as_posix()}")
    assert fs.exists(f"{prefix}/steps/observations/zarr.json")

    with pytest.raises(DatasetOpenError, match="not a spin dataset") as err:
        open_dataset(f"s3://{prefix}", storage_options=options)
    assert "cut-short" in str(err.value)


# ============================================================================= zip and file://
def test_zip_store_round_trip(tmp_path, episodes, local_store):
    target = tmp_path / "out" / "ds.zip"
    collect(target, episodes, tmp_path / "staging").publish(METADATA)
    assert target.is_file() and not (tmp_path / "staging").exists()
    assert not list((tmp_path / "out").glob(".spin-*"))  # no temporary zip left behind
    ds = open_dataset(target)
    assert_same_dataset(ds, open_dataset(local_store))
    assert_matches_episodes(ds, episodes)
    assert open_dataset(f"file://{target}").content_checksum == ds.content_checksum


def test_zip_publish_onto_existing_zip_is_refused(tmp_path, episodes):
    target = tmp_path / "ds.zip"
    first = collect(target, episodes[:2], tmp_path / "first")
    second = collect(target, episodes[2:], tmp_path / "second")
    first.publish(METADATA)
    before = target.read_bytes()
    with pytest.raises(StoreLocationError, match="already exists"):
        second.publish(METADATA)
    with pytest.raises(StoreLocationError, match="already exists"):
        publish(target, METADATA, staging_dir=tmp_path / "second")
    with pytest.raises(StoreLocationError, match="already exists"):
        DatasetWriter(target, obs_dim=OBS_DIM, bin_grid=GRID, staging_dir=tmp_path / "third")
    assert target.read_bytes() == before
    assert open_dataset(target).n_episodes == 2


def test_zip_location_that_is_not_a_zip(tmp_path):
    bogus = tmp_path / "bogus.zip"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(StoreLocationError, match="not a zip"):
        open_dataset(bogus)


def test_file_url_of_directory_store(local_store, episodes):
    ds = open_dataset(f"file://{local_store}")
    assert_same_dataset(ds, open_dataset(local_store))
    assert_matches_episodes(ds, episodes)


def test_file_url_publish(tmp_path, episodes, local_store):
    target = tmp_path / "via-url"
    collect(f"file://{target}", episodes, tmp_path / "staging").publish(METADATA)
    assert (target / "zarr.json").is_file()
    assert_same_dataset(open_dataset(target), open_dataset(local_store))


# ============================================================================= plain zarr
PLAIN_ZARR_READER = textwrap.dedent("""
    import sys
    sys.modules["spin_data"] = None  # any import of spin fails from here on
    sys.modules["spin_train"] = None
    import hashlib, json
    import numpy as np
    import zarr

    try:
        import spin_data  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("spin_data is importable")
    group = zarr.open_group(sys.argv[1], mode="r")
    obs = group["steps/observations"][...]
    ends = group["episodes/ends"][...]
    actions = group["steps/actions"][...]
    print(json.dumps({
        "obs_shape": list(obs.shape), "obs_dtype": str(obs.dtype),
        "obs_sha256": hashlib.sha256(np.ascontiguousarray(obs).tobytes()).hexdigest(),
        "obs_sum": float(obs.astype(np.float64).sum()),
        "ends": ends.tolist(),
        "actions_dtype": str(actions.dtype), "actions_sum": int(actions.sum()),
        "format": group.attrs["spin"]["format"],
        "dataset_id": group.attrs["metadata"]["dataset_id"],
        "spin_loaded": any(m.startswith("spin") and sys.modules[m] is not None
                           for m in sys.modules),
    }))
""")


def test_plain_zarr_reads_the_store_without_spin(tmp_path, local_store, episodes):
    script = tmp_path / "plain_reader.py"
    script.write_text(PLAIN_ZARR_READER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, str(script), str(local_store)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])

    obs = np.concatenate([e[0][:-1] for e in episodes]).astype(np.float32)
    actions = np.concatenate([e[1] for e in episodes])
    assert out["obs_shape"] == list(obs.shape) and out["obs_dtype"] == "float32"
    assert out["obs_sha256"] == hashlib.sha256(obs.tobytes()).hexdigest()
    assert out["obs_sum"] == pytest.approx(float(obs.astype(np.float64).sum()))
    assert out["ends"] == np.cumsum([len(e[2]) for e in episodes]).tolist()
    assert out["actions_dtype"] == "uint8" and out["actions_sum"] == int(actions.sum())
    assert out["format"] == schema.FORMAT_NAME
    assert out["dataset_id"] == METADATA["dataset_id"]
    assert out["spin_loaded"] is False
