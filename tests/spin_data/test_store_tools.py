"""Dataset tools on real stores: verify, combine, export, import (restricted unpickling), info."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spin_data.cli import main
from spin_data.envs import make_env
from spin_data.store import DatasetWriter, open_dataset, schema
from spin_data.tools import (
    PickleNotAllowed,
    RestrictedUnpickler,
    ToolError,
    combine,
    combined_quality,
    export_npz,
    import_benchmark_pickle,
    info_card,
    info_dict,
    verify,
)
from tests.episodes import assert_same_transitions, maze_episodes, random_episode

MAZE = "maze-5"


def write_store(location, episodes, *, source: str, env_name: str = MAZE, quality=None,
                dataset_id=None, bin_grid=None, **extra) -> str:
    env = make_env(env_name)
    grid = bin_grid or env.bin_grid
    writer = DatasetWriter(location, obs_dim=env.observation_space.shape[0], bin_grid=grid)
    for obs, act, rew, te, tr, seed in episodes:
        writer.add_episode(obs, act, rew, terminated=te, truncated=tr, source=source, seed=seed)
    return writer.publish({
        "dataset_id": dataset_id or f"{env_name}-{source}-test",
        "env": {"name": env_name, "kwargs": {}},
        "observation_keys": [list(k) for k in env.obs_keys],
        "quality": quality or source,
        "behaviour": {"policy": f"{source}-policy", "sha256": "ab" * 32},
        "reference_scores": {"expert": 99.34, "random": -5.62},
        **extra,
    })


@pytest.fixture(scope="module")
def medium_eps():
    return maze_episodes(range(0, 4), near_goal=True)


@pytest.fixture(scope="module")
def expert_eps():
    return maze_episodes(range(100, 103), near_goal=True)


@pytest.fixture
def stores(tmp_path, medium_eps, expert_eps):
    medium = write_store(tmp_path / "maze-medium", medium_eps, source="medium")
    expert = write_store(tmp_path / "maze-expert", expert_eps, source="expert")
    return medium, expert


def run_cli(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args])
    # Usage and library errors exit via SystemExit; anything else would be a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def shard_files(store, array: str) -> list[Path]:
    return sorted(p for p in (Path(store) / array / "c").rglob("*") if p.is_file())


# ============================================================================= verify
def test_verify_passes_on_a_fresh_store(stores):
    medium, _ = stores
    report = verify(medium)
    assert report.ok, report.problems
    assert (report.n_steps, report.n_episodes) == (open_dataset(medium).n_steps, 4)
    # every array hashed, plus every invariant
    for path in schema.ARRAY_PATHS:
        assert f"{path} checksum" in report.checks
    for name in ("returns == sum of rewards", "actions inside their bins",
                 "exactly one of termination/truncation per episode",
                 "steps/terminations only at episode ends", "content checksum matches content",
                 "next observations well-formed", "source codes valid"):
        assert name in report.checks
    result = run_cli("verify", medium)
    assert result.exit_code == 0
    assert result.output.startswith(f"OK: {medium}: {len(report.checks)} checks passed")


def test_flipped_bytes_in_an_observation_shard_are_caught(stores):
    medium, _ = stores
    (shard,) = shard_files(medium, "steps/observations")
    data = bytearray(shard.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    shard.write_bytes(bytes(data))

    report = verify(medium)
    assert not report.ok
    obs_problems = [p for p in report.problems if p.startswith("array steps/observations:")]
    assert obs_problems and ("unreadable" in obs_problems[0] or "checksum mismatch" in obs_problems[0])
    # only the damaged array is blamed
    assert not [p for p in report.problems if p.startswith("array steps/actions")]
    result = run_cli("verify", medium)
    assert result.exit_code == 1
    assert f"{medium}: array steps/observations:" in result.output
    assert "FAILED" in result.output


def test_a_damaged_shard_index_is_reported_unreadable_not_raised(stores):
    medium, _ = stores
    (shard,) = shard_files(medium, "steps/rewards")
    data = bytearray(shard.read_bytes())
    data[-6:] = bytes(b ^ 0xFF for b in data[-6:])  # the shard index and its crc32c live at the end
    shard.write_bytes(bytes(data))
    report = verify(medium)
    problems = [p for p in report.problems if p.startswith("array steps/rewards:")]
    assert problems and "unreadable (corrupted chunk?)" in problems[0]
    assert run_cli("verify", medium).exit_code == 1


def test_an_edited_checksum_in_the_root_metadata_is_caught(stores):
    medium, _ = stores
    root = Path(medium) / "zarr.json"
    doc = json.loads(root.read_text())
    recorded = doc["attributes"]["checksums"]["episodes/seeds"]
    doc["attributes"]["checksums"]["episodes/seeds"] = "sha256:" + "0" * 64
    root.write_text(json.dumps(doc))

    report = verify(medium)
    assert any(p.startswith("array episodes/seeds: checksum mismatch") and recorded in p
               for p in report.problems)
    assert any("does not match the recorded array checksums" in p for p in report.problems)
    assert run_cli("verify", medium).exit_code == 1


def tamper(store: str, path: str, edit) -> None:
    """Rewrite one array *and* its recorded checksums, as a careless tool would: the checksums
    then agree, so only the invariants can catch the damage."""
    import zarr

    group = zarr.open_group(store, mode="r+")
    data = group[path][...]
    edit(data)
    group[path][:] = data
    checksums = dict(group.attrs["checksums"])
    checksums[path] = schema.array_checksum(data)
    group.attrs.update({"checksums": checksums,
                        "content_checksum": schema.content_checksum(checksums)})


def test_verify_checks_invariants_not_only_checksums(tmp_path, medium_eps):
    ends = np.cumsum([len(e[2]) for e in medium_eps])

    def first_problem(name, path, edit):
        store = write_store(tmp_path / name, medium_eps, source="medium")
        tamper(store, path, edit)
        report = verify(store)
        assert report.problems, name
        return report.problems

    def add_one(a):
        a[1] += 1.0

    assert first_problem("returns", "episodes/returns", add_one) == [
        "episodes/returns: episode 1 records "
        f"{float(np.sum(medium_eps[1][2].astype(np.float32), dtype=np.float64) + 1.0)!r}, its "
        f"rewards sum to {float(np.sum(medium_eps[1][2].astype(np.float32), dtype=np.float64))!r}"]

    def out_of_bins(a):
        a[7, 3] = 2  # maze actuators have 2 bins: 0 and 1

    assert first_problem("actions", "steps/actions", out_of_bins) == [
        "steps/actions: bin index out of range (counts [2, 2, 2, 2, 2]) at step 7"]

    def early_end(a):
        a[5] = True  # a truncation in the middle of episode 0

    assert first_problem("flags", "steps/truncations", early_end) == [
        "steps/truncations: set at step 5, which is not an episode's last step"]

    def both(a):
        a[ends[0] - 1] = ~a[ends[0] - 1]  # episode 0 now ends in both or neither

    problems = first_problem("both", "steps/terminations", both)
    assert any(p.startswith("episode 0: ends with terminated=") for p in problems)

    def nan(a):
        a[3, 0] = np.nan

    assert first_problem("nan", "episodes/final_observations", nan) == [
        "episodes/final_observations: NaN/inf at episode 3"]

    def bad_ends(a):
        a[1] = a[0]

    problems = first_problem("ends", "episodes/ends", bad_ends)
    assert "episodes/ends: not strictly increasing from >= 1" in problems
    assert any(p.startswith("episodes/lengths: differ") for p in problems)


# ============================================================================= combine
def test_combine_medium_and_expert(tmp_path, stores, medium_eps, expert_eps):
    medium, expert = stores
    before = [open_dataset(s).content_checksum for s in stores]
    result = run_cli("combine", medium, expert, "--out", tmp_path / "maze-me", "--id", "maze-5-me")
    assert result.exit_code == 0, result.output
    assert [open_dataset(s).content_checksum for s in stores] == before  # inputs untouched
    assert verify(medium).ok and verify(expert).ok

    out = open_dataset(tmp_path / "maze-me")
    a, b = open_dataset(medium), open_dataset(expert)
    assert (out.n_episodes, out.n_steps) == (7, a.n_steps + b.n_steps)
    for path in schema.ARRAY_PATHS:
        if path == "episodes/ends":
            want = np.concatenate([a.array(path), b.array(path) + a.n_steps])
        else:
            want = np.concatenate([a.array(path), b.array(path)])
        np.testing.assert_array_equal(out.array(path), want, err_msg=path)
    # episode by episode, in input order, with their sources and seeds
    for i, (obs, act, rew, te, tr, seed) in enumerate([*medium_eps, *expert_eps]):
        ep = out.episode(i)
        np.testing.assert_array_equal(ep.observations, obs.astype(np.float32))
        np.testing.assert_array_equal(ep.actions, act)
        assert (ep.source, ep.seed) == (("medium" if i < 4 else "expert"), seed)
        assert bool(ep.terminations[-1]) == te and bool(ep.truncations[-1]) == tr
    assert out.array("steps/terminations").sum() > 0  # the near-goal starts terminated

    md = out.metadata
    assert md["dataset_id"] == "maze-5-me" and md["quality"] == "medium-expert"
    assert md["env"] == {"name": MAZE, "kwargs": {}}
    assert md["observation_keys"] == [["position", 2]]
    assert md["reference_scores"] == {"expert": 99.34, "random": -5.62}
    assert md["combined_from"] == [
        {"location": medium, "dataset_id": "maze-5-medium-test", "content_checksum": before[0],
         "quality": "medium", "behaviour": {"policy": "medium-policy", "sha256": "ab" * 32}},
        {"location": expert, "dataset_id": "maze-5-expert-test", "content_checksum": before[1],
         "quality": "expert", "behaviour": {"policy": "expert-policy", "sha256": "ab" * 32}},
    ]
    assert md["returns"]["medium"]["episodes"] == 4 and md["returns"]["expert"]["episodes"] == 3
    assert verify(tmp_path / "maze-me").ok
    assert not Path(str(tmp_path / "maze-me") + ".partial").exists()


def test_combined_quality_rule():
    assert combined_quality(["medium", "expert"]) == "medium-expert"
    assert combined_quality(["expert", "medium"]) == "medium-expert"
    assert combined_quality(["medium", "expert", "expert"]) == "medium-expert"
    assert combined_quality(["random", "medium", "expert"]) == "mixed"
    assert combined_quality(["medium", None]) == "mixed"
    assert combined_quality(["medium", "medium"]) == "mixed"


def test_combine_refuses_different_envs_or_grids(tmp_path, stores, medium_eps):
    medium, _ = stores
    other_env = write_store(tmp_path / "maze-other", medium_eps, source="medium",
                            dataset_id="x", quality="medium")
    # Same data, another env name in the metadata: refused, both stores named.
    import zarr

    group = zarr.open_group(other_env, mode="r+")
    md = dict(group.attrs["metadata"])
    md["env"] = {"name": "merlion", "kwargs": {}}
    group.attrs["metadata"] = md
    with pytest.raises(ToolError, match="environments differ") as err:
        combine([medium, other_env], tmp_path / "no1")
    assert medium in str(err.value) and other_env in str(err.value)

    from spin_data.envs import BinGrid

    wide = BinGrid.from_bounds(np.zeros(5), np.full(5, 2.0), 2)  # same counts, other bounds
    other_grid = write_store(tmp_path / "maze-wide", medium_eps, source="medium", bin_grid=wide)
    result = run_cli("combine", medium, other_grid, "--out", tmp_path / "no2")
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and "bin grids differ" in line
    assert medium in line and other_grid in line
    assert not (tmp_path / "no1").exists() and not (tmp_path / "no2").exists()
    assert not Path(str(tmp_path / "no2") + ".partial").exists()


def test_combine_refuses_different_observation_dims(tmp_path, stores):
    medium, _ = stores
    cheetah = write_store(tmp_path / "cheetah", [random_episode(make_env("cheetah"), 0)],
                          source="medium", env_name="cheetah")
    with pytest.raises(ToolError, match="observation dims differ"):
        combine([medium, cheetah], tmp_path / "no")


def test_combine_refuses_a_damaged_input_and_leaves_no_staging(tmp_path, stores):
    medium, expert = stores
    (shard,) = shard_files(expert, "steps/actions")
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = run_cli("combine", medium, expert, "--out", tmp_path / "me")
    assert result.exit_code == 1 and expert in result.output and "steps/actions" in result.output
    assert not (tmp_path / "me").exists() and not Path(str(tmp_path / "me") + ".partial").exists()


def test_combine_never_replaces_a_published_store(stores):
    medium, expert = stores
    before = open_dataset(expert).content_checksum
    result = run_cli("combine", medium, expert, "--out", expert)
    assert result.exit_code == 1 and "already exists" in result.output
    assert open_dataset(expert).content_checksum == before
    assert run_cli("combine", medium, "--out", "x").exit_code == 2


# ============================================================================= export
def test_export_npz_loads_without_pickle(tmp_path, stores):
    medium, _ = stores
    out = tmp_path / "medium.npz"
    result = run_cli("export", medium, "--format", "npz", "--out", out)
    assert result.exit_code == 0, result.output
    ds = open_dataset(medium)
    steps = ds.transitions()
    with np.load(out, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    assert set(data) == {"observations", "actions", "rewards", "next_observations", "terminals",
                         "timeouts", "episode_ends", "episode_sources", "episode_seeds"}
    for key, name in [("observations", "observations"), ("rewards", "rewards"),
                      ("next_observations", "next_observations"), ("terminals", "terminations"),
                      ("timeouts", "truncations")]:
        np.testing.assert_array_equal(data[key], steps[name], err_msg=key)
        assert data[key].dtype == steps[name].dtype
    np.testing.assert_array_equal(data["actions"], steps["actions"])
    assert data["actions"].dtype == np.int64
    np.testing.assert_array_equal(data["episode_ends"], ds.episode_ends)
    np.testing.assert_array_equal(data["episode_seeds"], [0, 1, 2, 3])
    np.testing.assert_array_equal(data["episode_sources"], [schema.SOURCES.index("medium")] * 4)
    # an existing file is never replaced
    again = run_cli("export", medium, "--out", out)
    assert again.exit_code == 1 and "already exists" in again.output
    with pytest.raises(ToolError, match="already exists"):
        export_npz(medium, out)


# ============================================================================= import
def benchmark_tuples(episodes, *, continuous_grid=None, done_dtype=bool):
    """The benchmark's format: a flat list of (s, a, r, s', done) tuples of numpy values."""
    tuples = []
    for obs, act, rew, _te, _tr, _seed in episodes:
        for t in range(len(rew)):
            a = act[t] if continuous_grid is None else \
                continuous_grid.to_values(act[t]).astype(np.float32)
            tuples.append((obs[t].astype(np.float32), a, np.float32(rew[t]),
                           obs[t + 1].astype(np.float32), done_dtype(t == len(rew) - 1)))
    return tuples


def test_import_is_refused_without_allow_pickle(tmp_path, medium_eps):
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(benchmark_tuples(medium_eps)))
    result = run_cli("import", path, "--env", MAZE, "--out", tmp_path / "s")
    assert result.exit_code == 2
    assert "unpickling runs code" in result.output and "--allow-pickle" in result.output
    with pytest.raises(PickleNotAllowed, match="runs code"):
        import_benchmark_pickle(path, tmp_path / "s", env_name=MAZE, allow_pickle=False)
    assert not (tmp_path / "s").exists()


def test_import_round_trips_a_maze_pickle_with_the_truncation_rule(tmp_path, medium_eps):
    # Near-goal starts terminate early; the others run into the 150-step limit.
    lengths = [len(e[2]) for e in medium_eps]
    assert 150 in lengths and min(lengths) < 150
    path = tmp_path / "maze.pkl"
    path.write_bytes(pickle.dumps(benchmark_tuples(medium_eps)))
    result = run_cli("import", path, "--env", MAZE, "--out", tmp_path / "imported",
                     "--allow-pickle", "--source", "medium", "--id", "maze-imported")
    assert result.exit_code == 0, result.output

    ds = open_dataset(tmp_path / "imported")
    assert ds.n_episodes == len(medium_eps)
    np.testing.assert_array_equal(ds.episode_ends, np.cumsum(lengths))
    assert_same_transitions(ds, medium_eps)
    for i, (_o, _a, rew, te, tr, _s) in enumerate(medium_eps):
        ep = ds.episode(i)
        # the rule: done after exactly the time limit -> truncation, earlier -> termination
        assert bool(ep.truncations[-1]) == (len(rew) == 150) == tr
        assert bool(ep.terminations[-1]) == (len(rew) < 150) == te
        assert ep.source == "medium" and ep.seed == -1
    md = ds.metadata
    assert md["dataset_id"] == "maze-imported" and md["quality"] == "imported"
    assert md["env"] == {"name": MAZE, "kwargs": {"bins": 2}}
    assert md["observation_keys"] == [["position", 2]]
    assert md["imported_from"]["path"] == str(path.resolve())
    import hashlib

    assert md["imported_from"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert md["reference_scores"]["expert"] == 99.34
    assert verify(tmp_path / "imported").ok


def test_import_quantises_continuous_cheetah_actions_and_splits_unflagged_resets(tmp_path):
    env = make_env("cheetah", grid="unit")
    episodes = [random_episode(env, s) for s in (0, 1)]
    tuples = benchmark_tuples(episodes, continuous_grid=env.bin_grid, done_dtype=np.bool_)
    tuples[999] = (*tuples[999][:4], np.bool_(False))  # a reset the file does not flag
    path = tmp_path / "cheetah.pkl"
    path.write_bytes(pickle.dumps(tuples, protocol=5))
    import_benchmark_pickle(path, tmp_path / "c", env_name="cheetah", bins=3, allow_pickle=True,
                            source="expert")
    ds = open_dataset(tmp_path / "c")
    np.testing.assert_array_equal(ds.episode_ends, [1000, 2000])
    np.testing.assert_array_equal(ds.array("steps/actions"),
                                  np.concatenate([e[1] for e in episodes]))
    assert ds.array("steps/truncations").sum() == 2 and not ds.array("steps/terminations").any()
    assert ds.metadata["env"]["kwargs"] == {"bins": 3, "grid": "unit"}
    assert ds.metadata["reference_scores"]["expert"] == 664.57

    # A value that is no bin value of the grid (0.5 on {-1, 0, 1}) is refused, not rounded.
    bad = list(tuples)
    a = bad[5][1].copy()
    a[2] = 0.5
    bad[5] = (bad[5][0], a, *bad[5][2:])
    path.write_bytes(pickle.dumps(bad))
    with pytest.raises(ToolError, match=r"action value 0.5 \(transition 5, dimension 2\)"):
        import_benchmark_pickle(path, tmp_path / "c2", env_name="cheetah", allow_pickle=True)
    assert not Path(str(tmp_path / "c2") + ".partial").exists()


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_with_a_foreign_global_is_refused_without_running_it(tmp_path, medium_eps):
    marker = tmp_path / "pwned"
    tuples = benchmark_tuples(medium_eps[:1])
    tuples[3] = (tuples[3][0], tuples[3][1], _Exploit(marker), tuples[3][3], tuples[3][4])
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(tuples))
    result = run_cli("import", path, "--env", MAZE, "--out", tmp_path / "s", "--allow-pickle")
    assert result.exit_code == 1
    assert "refused to load global" in result.output and "system" in result.output
    assert not marker.exists()
    assert not (tmp_path / "s").exists()
    with open(path, "rb") as fh, pytest.raises(pickle.UnpicklingError, match="posix.system"):
        RestrictedUnpickler(fh, source=str(path)).load()
    assert not marker.exists()
    # builtins are refused too (eval would run code just the same)
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        import io

        RestrictedUnpickler(io.BytesIO(b"cbuiltins\neval\n(S'1'\ntR."), source="x").load()


def test_import_argument_errors_exit_2(tmp_path, medium_eps):
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(benchmark_tuples(medium_eps[:1])))
    result = run_cli("import", path, "--env", "nope", "--out", tmp_path / "s", "--allow-pickle")
    assert result.exit_code == 2 and "unknown environment 'nope'" in result.output
    result = run_cli("import", path, "--env", MAZE, "--bins", "3", "--out", tmp_path / "s",
                     "--allow-pickle")
    assert result.exit_code == 2 and "bins must be 2" in result.output


# ============================================================================= info
def test_info_card_and_json(tmp_path, stores):
    medium, _ = stores
    ds = open_dataset(medium)
    result = run_cli("info", medium)
    assert result.exit_code == 0
    assert "maze-5-medium-test" in result.output and f"{ds.n_steps:,} in 4 episodes" in result.output
    assert "reference     expert 99.34, random -5.62" in result.output
    assert ds.content_checksum in result.output
    assert result.output.strip() == info_card(ds)
    norm = (ds.metadata["returns"]["medium"]["mean"] + 5.62) / (99.34 + 5.62)
    assert f"(normalised {norm:.3f})" in result.output
    percent = run_cli("info", medium, "--scale", "percent")
    assert f"(normalised (0-100) {100 * norm:.1f})" in percent.output
    assert percent.output.strip() == info_card(ds, scale="percent")
    assert run_cli("info", medium, "--scale", "x100").exit_code == 2

    result = run_cli("info", medium, "--json")
    data = json.loads(result.output)
    assert data == json.loads(json.dumps(info_dict(ds)))
    assert (data["dataset_id"], data["steps"], data["episodes"]) == ("maze-5-medium-test",
                                                                      ds.n_steps, 4)
    assert data["bins"] == [2] * 5 and data["joint_actions"] == 32 and data["observation_dim"] == 2
    assert data["returns"]["medium"]["episodes"] == 4
    mean = data["returns"]["medium"]["mean"]
    assert data["normalised_mean_return"]["medium"] == pytest.approx((mean + 5.62) / (99.34 + 5.62))


def test_info_on_what_is_not_a_store_is_one_line(tmp_path):
    for path in ["/nonexistent", str(tmp_path)]:
        result = run_cli("info", path)
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and path in lines[0] and lines[0].startswith("Error:")
    result = run_cli("verify", tmp_path)
    assert result.exit_code == 1 and "not a spin dataset" in result.output


# ============================================================================= card
#: The part of Croissant 1.0 a dataset card must satisfy, as a JSON schema.
CROISSANT_SCHEMA = {
    "type": "object",
    "required": ["@context", "@type", "conformsTo", "name", "description", "distribution"],
    "properties": {
        "@context": {"type": "object", "required": ["@vocab", "cr", "sc"]},
        "@type": {"const": "sc:Dataset"},
        "conformsTo": {"const": "http://mlcommons.org/croissant/1.0"},
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string", "minLength": 1},
        "distribution": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["@type", "@id", "name", "contentUrl", "encodingFormat", "sha256"],
            "properties": {"@type": {"const": "cr:FileObject"},
                           "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}},
    },
}


def test_card_writes_a_readme_and_a_valid_croissant_file_beside_the_store(stores):
    import hashlib

    import jsonschema
    import yaml

    medium, _ = stores
    ds = open_dataset(medium)
    checksum = ds.content_checksum
    result = run_cli("card", medium, "--license", "cc-by-4.0")
    assert result.exit_code == 0, result.output
    readme, doc_path = Path(medium) / "README.md", Path(medium) / "croissant.json"
    text = readme.read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["pretty_name"] == "maze-5-medium-test" and front["license"] == "cc-by-4.0"
    assert front["task_categories"] == ["reinforcement-learning"]
    assert front["size_categories"] == ["n<1K"]
    stats = ds.metadata["returns"]["medium"]
    norm = (stats["mean"] + 5.62) / (99.34 + 5.62)
    assert (f"| medium | 4 | {stats['mean']:.2f} | {stats['std']:.2f} | {stats['min']:.2f} | "
            f"{stats['max']:.2f} | {norm:.3f} |") in text
    assert f"`{checksum}`" in text and "minari.load_dataset('spin/maze-5-2bins/" in text
    # The usage snippets open this store (a behaviour line once overwrote the location).
    where = str(ds.location)
    assert f"ds = open_dataset({where!r})" in text
    assert f"g = zarr.open_group({where!r}, mode='r')" in text
    assert f"spin-data export {where} --format minari" in text

    doc = json.loads(doc_path.read_text())
    jsonschema.validate(doc, CROISSANT_SCHEMA)
    assert doc["identifier"] == checksum and doc["license"] == "cc-by-4.0"
    # Every file of the store, each with its own sha256; the card files are not data.
    files = sorted(p for p in Path(medium).rglob("*")
                   if p.is_file() and p.name not in ("README.md", "croissant.json"))
    assert [d["contentUrl"] for d in doc["distribution"]] == [
        p.relative_to(medium).as_posix() for p in files]
    for entry, path in zip(doc["distribution"], files):
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # The reference implementation accepts it (warnings at most: e.g. no citation).
    mlc = pytest.importorskip("mlcroissant")
    assert not mlc.Dataset(jsonld=doc_path).metadata.ctx.issues.errors
    # The store is untouched: it opens, verifies and keeps its checksum.
    assert verify(medium).ok and open_dataset(medium).content_checksum == checksum
    # Written again (a spin card), fine; someone else's README.md, never replaced.
    assert run_cli("card", medium).exit_code == 0
    readme.write_text("# my notes\n")
    refused = run_cli("card", medium)
    assert refused.exit_code == 1 and "not written by spin-data card" in refused.output
    assert refused.output.count("\n") == 1 and readme.read_text() == "# my notes\n"
