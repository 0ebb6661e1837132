"""spin_train's data path: cache, both placements, batch semantics, normalisation, checks."""

import multiprocessing
import shutil

import numpy as np
import pytest
import torch

from spin_data import make_env, open_dataset
from spin_data.store import DatasetWriter, publish
from spin_train.data import (
    ObservationNormaliser,
    SchemaMismatch,
    TransitionBuffer,
    check_env,
    load_buffer,
    materialise,
)
from spin_train.data.buffer import choose_placement, device_nbytes
from tests.episodes import maze_episodes, random_episode
from tests.spin_data.test_store import METADATA, write_maze


@pytest.fixture(scope="module")
def maze_store(tmp_path_factory):
    """A real maze-5 store whose episodes end in both terminations and truncations."""
    root = tmp_path_factory.mktemp("maze")
    episodes = maze_episodes(range(12), near_goal=True)
    assert any(e[3] for e in episodes) and any(e[4] for e in episodes)
    write_maze(root / "store", episodes)
    publish(root / "store", METADATA)
    return root / "store"


def expected_batch(location, seed, batch_size, calls=1):
    """The batch a sampler must return: indices from torch.randint with the seeded generator."""
    steps = open_dataset(location).transitions()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(calls):
        idx = torch.randint(0, len(steps["rewards"]), (batch_size,), generator=gen).numpy()
    return {k: v[idx] for k, v in steps.items()}


@pytest.mark.parametrize("placement", ["device", "host"])
def test_batches_are_the_dataset_rows_drawn_by_the_seeded_generator(maze_store, tmp_path,
                                                                    placement):
    buffer = load_buffer(maze_store, placement=placement, seed=7, cache_dir=tmp_path)
    assert buffer.placement == placement and len(buffer) == open_dataset(maze_store).n_steps
    buffer.sample(64)
    batch = buffer.sample(64)
    want = expected_batch(maze_store, 7, 64, calls=2)
    np.testing.assert_array_equal(batch.observations.numpy(), want["observations"])
    np.testing.assert_array_equal(batch.next_observations.numpy(), want["next_observations"])
    np.testing.assert_array_equal(batch.actions.numpy(), want["actions"])
    np.testing.assert_array_equal(batch.rewards.numpy(), want["rewards"])
    np.testing.assert_array_equal(batch.not_done.numpy(), 1.0 - want["terminations"])
    assert batch.actions.dtype == torch.int64 and batch.observations.dtype == torch.float32
    assert batch.not_done.dtype == torch.float32


def test_not_done_is_zero_only_for_terminations(maze_store, tmp_path):
    buffer = load_buffer(maze_store, seed=0, cache_dir=tmp_path)
    batch = buffer.sample(50_000)  # far more than T: every row, terminal ones included
    steps = open_dataset(maze_store).transitions()
    rows_done = batch.not_done.numpy() == 0
    assert rows_done.any()
    # every sampled row with not_done = 0 is a termination, and truncated ends keep 1
    term_obs = {tuple(o) for o in steps["observations"][steps["terminations"]]}
    trunc_obs = {tuple(o) for o in steps["observations"][steps["truncations"]]}
    sampled = [tuple(o) for o in batch.observations.numpy()]
    assert all(sampled[i] in term_obs for i in np.flatnonzero(rows_done))
    assert any(o in trunc_obs for i, o in enumerate(sampled) if not rows_done[i])


def test_same_seed_same_batches_and_placements_agree(maze_store, tmp_path):
    a = load_buffer(maze_store, placement="device", seed=3, cache_dir=tmp_path)
    b = load_buffer(maze_store, placement="host", seed=3, cache_dir=tmp_path)
    c = load_buffer(maze_store, placement="device", seed=4, cache_dir=tmp_path)
    for _ in range(3):
        x, y, z = a.sample(128), b.sample(128), c.sample(128)
        for name in ("observations", "actions", "rewards", "next_observations", "not_done"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
        assert not torch.equal(x.observations, z.observations)


def test_auto_placement_follows_the_budget(maze_store, tmp_path):
    cached = materialise(maze_store, cache_dir=tmp_path)
    need = device_nbytes(cached)
    payload = (cached.n_steps + cached.n_episodes) * 4 * 4 + cached.n_steps * 8 * 6
    assert payload <= need < payload + 3 * 4096  # rows, next_rows, actions (+ .npy headers)
    cuda = torch.device("cuda")  # only the decision is tested here, no CUDA needed
    assert choose_placement(cuda, need, budget=need) == "device"
    assert choose_placement(cuda, need, budget=need - 1) == "host"
    assert choose_placement(torch.device("cpu"), need, budget=10 * need) == "host"
    assert TransitionBuffer(cached).placement == "host"  # CPU default
    assert TransitionBuffer(cached, placement="device").placement == "device"


def test_cache_is_reused_and_keyed_by_content(maze_store, tmp_path):
    first = materialise(maze_store, cache_dir=tmp_path / "cache")
    # A second open reads metadata only: it works even with the store's chunks gone.
    damaged = tmp_path / "copy"
    shutil.copytree(maze_store, damaged)
    shutil.rmtree(damaged / "steps" / "observations" / "c")
    again = materialise(damaged, cache_dir=tmp_path / "cache")
    assert again.path == first.path and again.n_steps == first.n_steps
    # a store with other content gets its own entry
    write_maze(tmp_path / "other", maze_episodes(range(50, 53)))
    publish(tmp_path / "other", METADATA)
    other = materialise(tmp_path / "other", cache_dir=tmp_path / "cache")
    assert other.path != first.path and other.content_checksum != first.content_checksum
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [first.path.name, other.path.name])
    np.testing.assert_array_equal(first.rewards(),
                                  open_dataset(maze_store).array("steps/rewards"))


def test_spin_cache_dir_is_the_root_of_both_caches(tmp_path, monkeypatch):
    from spin_data.behaviour import default_cache_dir as behaviour_cache
    from spin_train.data import default_cache_dir as dataset_cache

    monkeypatch.setenv("SPIN_CACHE_DIR", str(tmp_path))
    assert (behaviour_cache(), dataset_cache()) == (tmp_path / "behaviour", tmp_path / "datasets")
    monkeypatch.delenv("SPIN_CACHE_DIR")
    assert dataset_cache().parent == behaviour_cache().parent


@pytest.mark.parametrize("damage", ["a lost chunk", "a flipped byte"])
def test_a_corrupt_copy_is_refused_never_cached_and_never_poisons_the_intact_store(
        maze_store, tmp_path, damage):
    """zarr reads a lost chunk as zeros; the cache hashes every array as it fills and refuses a
    copy whose bytes do not match the checksums it records, before anything is written."""
    from click.testing import CliRunner

    from spin_train.cli import main as spin_train_main
    from spin_train.data.cache import CorruptStoreError

    bad, cache = tmp_path / "bad", tmp_path / "cache"
    shutil.copytree(maze_store, bad)
    chunk = sorted(p for p in (bad / "steps" / "actions").rglob("*")
                   if p.is_file() and p.name != "zarr.json")[0]
    if damage == "a lost chunk":
        chunk.unlink()
    else:
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0x01
        chunk.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match=rf"{bad}: array steps/actions "):
        materialise(bad, cache_dir=cache)
    assert list(cache.iterdir()) == []  # no entry, no half-filled directory
    res = CliRunner().invoke(spin_train_main, ["pretrain", "--dataset", str(bad), "--cache-dir",
                                               str(cache), "--out", str(tmp_path / "run"),
                                               "--device", "cpu"])
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert "array steps/actions" in res.output and not (tmp_path / "run").exists()
    intact = materialise(maze_store, cache_dir=cache)  # filled from the intact bytes
    np.testing.assert_array_equal(intact.load("actions"),
                                  open_dataset(maze_store).array("steps/actions"))


def _materialise(args):
    location, cache_dir = args
    return str(materialise(location, cache_dir=cache_dir).path)


def test_two_processes_filling_the_cache_at_once(maze_store, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.map(_materialise, [(str(maze_store), str(tmp_path / "c"))] * 4)
    assert len(set(paths)) == 1
    assert [p.name for p in (tmp_path / "c").iterdir()] == [paths[0].split("/")[-1]]
    buffer = load_buffer(maze_store, cache_dir=tmp_path / "c", seed=1)
    np.testing.assert_array_equal(buffer.sample(32).observations.numpy(),
                                  expected_batch(maze_store, 1, 32)["observations"])


def test_normalised_observations(maze_store, tmp_path):
    buffer = load_buffer(maze_store, normalise=True, seed=5, cache_dir=tmp_path)
    obs = open_dataset(maze_store).array("steps/observations").astype(np.float64)
    np.testing.assert_allclose(buffer.normaliser.mean, obs.mean(0), rtol=1e-5)
    np.testing.assert_allclose(buffer.normaliser.std, obs.std(0), rtol=1e-5)
    batch = buffer.sample(256)
    want = expected_batch(maze_store, 5, 256)
    norm = buffer.normaliser
    np.testing.assert_allclose(batch.observations.numpy(),
                               (want["observations"] - norm.mean) / norm.std, rtol=1e-6)
    np.testing.assert_allclose(batch.next_observations.numpy(),
                               (want["next_observations"] - norm.mean) / norm.std, rtol=1e-6)
    saved = ObservationNormaliser.from_dict(norm.to_dict())
    np.testing.assert_array_equal(saved.mean, norm.mean)
    torch.testing.assert_close(saved(torch.from_numpy(want["observations"])), batch.observations)


def test_schema_check_names_both_sides(tmp_path):
    env = make_env("cheetah")
    writer = DatasetWriter(tmp_path / "ch", obs_dim=17, bin_grid=env.bin_grid)
    obs, act, rew, te, tr, _ = random_episode(make_env("cheetah"), 0)
    writer.add_episode(obs, act, rew, terminated=te, truncated=tr, source="random", seed=0)
    writer.publish({"dataset_id": "cheetah-check"})
    cached = materialise(tmp_path / "ch", cache_dir=tmp_path / "cache")
    check_env(cached, make_env("cheetah"), "cheetah")
    with pytest.raises(SchemaMismatch, match=r"cheetah-check .* does not match environment "
                                             r"finger: observation dim 17 vs 9; sub-actions N 6 vs 2"):
        check_env(cached, make_env("finger"), "finger")
    with pytest.raises(SchemaMismatch, match=r"bins \[3, 3, 3, 3, 3, 3\] vs \[5, 5, 5, 5, 5, 5\]"):
        check_env(cached, make_env("cheetah", bins=5), "cheetah at 5 bins")
    quad = DatasetWriter(tmp_path / "q", obs_dim=78, bin_grid=make_env("quadruped").bin_grid)
    obs, act, rew, te, tr, _ = random_episode(make_env("quadruped"), 0)
    quad.add_episode(obs, act, rew, terminated=te, truncated=tr, source="random", seed=0)
    quad.publish({"dataset_id": "quadruped-check"})
    qcached = materialise(tmp_path / "q", cache_dir=tmp_path / "cache")
    with pytest.raises(SchemaMismatch, match="bin values of dimension"):
        check_env(qcached, make_env("quadruped", grid="unit"), "quadruped (unit grid)")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("placement", ["device", "host"])
def test_cuda_placements(maze_store, tmp_path, placement):
    buffer = load_buffer(maze_store, device="cuda", placement=placement, seed=2,
                         cache_dir=tmp_path)
    batches = [buffer.sample(512) for _ in range(4)]
    assert all(b.observations.device.type == "cuda" for b in batches)
    steps = open_dataset(maze_store).transitions()
    obs_rows = {tuple(o) for o in steps["observations"]}
    assert all(tuple(o) in obs_rows for o in batches[-1].observations.cpu().numpy())
    if placement == "host":  # host indices come from the CPU generator: exact rows known
        want = expected_batch(maze_store, 2, 512, calls=4)
        np.testing.assert_array_equal(batches[-1].observations.cpu().numpy(),
                                      want["observations"])


def _resume_matches(maze_store, tmp_path, device, placement):
    """Batches drawn after restoring generator_state() equal an uninterrupted buffer's."""
    straight = load_buffer(maze_store, device=device, placement=placement, seed=5,
                           cache_dir=tmp_path)
    for _ in range(3):
        straight.sample(128)
    saved = straight.generator_state()
    expected = [straight.sample(128).observations.cpu() for _ in range(3)]
    resumed = load_buffer(maze_store, device=device, placement=placement, seed=99,
                          cache_dir=tmp_path)
    resumed.sample(128)  # its own prefetch in flight (CUDA host path): must be dropped
    resumed.set_generator_state(saved)
    got = [resumed.sample(128).observations.cpu() for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


@pytest.mark.parametrize("placement", ["device", "host"])
def test_a_restored_generator_state_draws_the_batches_an_uninterrupted_run_would(
        maze_store, tmp_path, placement):
    _resume_matches(maze_store, tmp_path, "cpu", placement)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("placement", ["device", "host"])
def test_exact_resume_on_cuda_including_the_host_prefetch(maze_store, tmp_path, placement):
    # On CUDA the host placement has drawn the next batch's indices ahead (prefetch): the saved
    # state must be the one before them.
    _resume_matches(maze_store, tmp_path, "cuda", placement)


@pytest.mark.parametrize("placement", ["device", "host"])
def test_held_out_split_is_by_episode_and_the_buffer_samples_only_its_steps(
        maze_store, tmp_path, placement):
    from spin_train.data import episode_ends, split_episodes

    cached = materialise(maze_store, cache_dir=tmp_path)
    ends = episode_ends(cached)
    np.testing.assert_array_equal(ends, open_dataset(maze_store).array("episodes/ends"))
    train, val = split_episodes(cached, 0.25, seed=1)
    assert len(train) + len(val) == cached.n_steps and not set(train) & set(val)
    starts = np.concatenate([[0], ends[:-1]])
    held = [e for e, (s, t) in enumerate(zip(starts, ends)) if s in set(val)]
    assert len(held) == 3  # 25% of 12 episodes, each wholly on one side
    for e, (s, t) in enumerate(zip(starts, ends)):
        inside = np.isin(np.arange(s, t), val)
        assert inside.all() or not inside.any()
    assert np.array_equal(val, split_episodes(cached, 0.25, seed=1)[1])
    buffer = TransitionBuffer(cached, placement=placement, seed=0, steps=val)
    obs = open_dataset(maze_store).transitions()["observations"]
    allowed = {tuple(o) for o in obs[val]}
    batch = buffer.sample(2000).observations.numpy()
    assert {tuple(o) for o in batch} <= allowed
    with pytest.raises(ValueError, match="steps must be"):
        TransitionBuffer(cached, steps=np.array([cached.n_steps]))
    with pytest.raises(ValueError, match="at least 2 episodes|val_fraction"):
        split_episodes(cached, 1.5)
