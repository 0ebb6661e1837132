"""spin-data generate: recipes, collection with workers, determinism, resume, bad input."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from spin_data.blas import openblas_core
from spin_data.cli import main as spin_data_main
from spin_data.collect import UniformRandomPolicy, collect_episodes
from spin_data.envs import make_env, reference_score
from spin_data.generate import episode_seed, generate
from spin_data.recipe import Recipe, RecipeError, find_recipe
from spin_data.store import open_dataset
from spin_data.tools import verify


def test_batched_collection_does_not_depend_on_the_batch():
    grid = make_env("maze-5").bin_grid
    policy = UniformRandomPolicy(grid)
    a = list(collect_episodes(lambda: make_env("maze-5"), policy, range(12), n_envs=5))
    b = list(collect_episodes(lambda: make_env("maze-5"), policy, range(12), n_envs=1))
    assert [e.seed for e in a] == list(range(12))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.actions, y.actions)
        np.testing.assert_array_equal(x.observations, y.observations)
    assert not np.array_equal(a[0].actions[:20], a[1].actions[:20])


def test_random_dataset_same_with_one_or_two_workers(tmp_path):
    recipe = Recipe(env="maze-5", quality="random", size=6000, seed=3, episodes_per_task=8)
    one = generate(recipe, str(tmp_path / "one"), workers=1, progress=False)
    generate(recipe, str(tmp_path / "two"), workers=2, progress=False)
    a, b = open_dataset(tmp_path / "one"), open_dataset(tmp_path / "two")
    assert a.checksums == b.checksums
    # full episodes only, and no more of them than the size needs
    assert 6000 <= a.n_steps < 6000 + 150 and one["steps"] == a.n_steps
    lengths = a.array("episodes/lengths")
    assert lengths[:-1].sum() < 6000
    np.testing.assert_array_equal(
        a.array("episodes/seeds"), [episode_seed(3, "random", i) for i in range(a.n_episodes)])
    md = a.metadata
    assert md["quality"] == "random" and md["recipe"]["seed"] == 3
    assert md["reference_scores"]["random"] == -5.62 and md["env"]["max_episode_steps"] == 150
    assert verify(tmp_path / "one").ok
    # uniform random on maze-5: close to the reference random return (rare goal hits)
    assert -7.5 <= md["returns"]["random"]["mean"] < 5.0


def test_dmc_random_dataset_has_exact_size(tmp_path):
    recipe = Recipe(env="finger", quality="random", size=3000, seed=0, episodes_per_task=2)
    summary = generate(recipe, str(tmp_path / "f"), workers=1, progress=False)
    ds = open_dataset(tmp_path / "f")
    assert ds.n_steps == 3000 and ds.n_episodes == 3 and summary["size_bytes"] > 0
    assert ds.array("steps/truncations").sum() == 3
    assert abs(summary["normalised"]["random"]) < 0.02  # random data scores ~0


GENERATE_SCRIPT = """
import sys
from spin_data.generate import generate
from spin_data.recipe import Recipe
if __name__ == "__main__":
    recipe = Recipe(env="finger", quality="random", size=12000, seed=5, episodes_per_task=1)
    generate(recipe, sys.argv[1], workers=1, progress=False)
"""


def _generate_in_a_process(tmp_path: Path, out: Path, parts_done: int
                           ) -> tuple[subprocess.Popen, Path]:
    """GENERATE_SCRIPT started in its own process, returned once ``parts_done`` collection
    parts are on disk (or after 2 minutes); also returns the staging area's parts folder."""
    script = tmp_path / "gen.py"
    script.write_text(GENERATE_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(out)])
    parts = Path(str(out) + ".partial") / "parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*/journal.jsonl"))) < parts_done:
        time.sleep(0.05)
    return proc, parts


def test_killed_generate_resumes_to_the_same_store(tmp_path):
    out = tmp_path / "killed"
    proc, parts = _generate_in_a_process(tmp_path, out, parts_done=4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and len(list(parts.glob("part-*"))) >= 4
    recipe = Recipe(env="finger", quality="random", size=12000, seed=5, episodes_per_task=1)
    generate(recipe, str(out), workers=1, progress=False)
    generate(recipe, str(tmp_path / "clean"), workers=1, progress=False)
    assert open_dataset(out).checksums == open_dataset(tmp_path / "clean").checksums


def test_a_second_writer_of_a_live_output_is_refused_naming_it(tmp_path):
    """Two generates to one --out once merged both writers' parts into one verified store.
    Now the live run holds the output's writer lock for its lifetime: a second writer of the
    same recipe or another one, and a --discard, are refused naming its pid, and the live
    run's store equals a single run's bytes."""
    out = tmp_path / "raced"
    proc, _ = _generate_in_a_process(tmp_path, out, parts_done=1)
    runner = CliRunner()
    try:
        for args in (["--env", "finger", "--quality", "random", "--size", "12000", "--seed",
                      "5"],
                     ["--env", "finger", "--quality", "random", "--size", "3000"],
                     ["--env", "finger", "--quality", "random", "--size", "3000", "--discard"]):
            result = runner.invoke(spin_data_main, ["generate", *args, "--out", str(out)])
            assert result.exit_code == 1, result.output
            assert f"another process (pid {proc.pid}) is writing this dataset" in result.output
            assert "interrupted" not in result.output and "Traceback" not in result.output
        assert proc.poll() is None  # the refusals happened while it was writing
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0
    recipe = Recipe(env="finger", quality="random", size=12000, seed=5, episodes_per_task=1)
    generate(recipe, str(tmp_path / "single"), workers=1, progress=False)
    assert open_dataset(out).checksums == open_dataset(tmp_path / "single").checksums
    assert not Path(str(out) + ".partial").exists()


@pytest.mark.parametrize("kwargs, message", [
    (dict(quality="great"), "unknown quality 'great'"),
    (dict(quality="random", size=0), "size must be a positive number"),
    (dict(quality="medium-expert", mix={"medium": 0.5, "expert": 0.4}), "sum to 1"),
    (dict(quality="medium", mix={"super": 1.0}), "unknown mix source 'super'"),
    (dict(quality="medium", budget="huge"), "unknown budget 'huge'"),
    (dict(quality="medium", bins=3, env="maze-5"), "bins must be 2"),
    (dict(quality="medium", algorithm="dqn"), "unknown algorithm 'dqn'"),
    (dict(quality="medium", algorithm="crossq", library="sb3"), "crossq is not offered with sb3"),
    (dict(quality="medium", library="jax"), "unknown library 'jax': accepted sb3, sbx"),
    (dict(quality="medium", env="maze-5", library="sbx"), "ppo is not offered with sbx"),
])
def test_bad_recipes_are_refused(kwargs, message):
    with pytest.raises(RecipeError, match=message):
        Recipe(**{"env": "cheetah", **kwargs})


def test_catalog_and_recipe_files(tmp_path):
    recipe = find_recipe("humanoid", "medium-expert")
    assert recipe.grid == "unit" and recipe.size == 2_000_000
    assert recipe.mix == {"medium": 0.5, "expert": 0.5}
    assert find_recipe("dog", "expert", bins=30).name == "dog-trot-30bins-expert"
    assert find_recipe("walker-walk", "expert").name == "walker-walk-3bins-expert"  # defaults
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"env": "cheetah", "quality": "expert", "sise": 10}))
    with pytest.raises(RecipeError, match="bad.yaml: unknown key 'sise'"):
        Recipe.from_yaml(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("env: cheetah\nquality: [expert\nsize: 10\n")  # an unclosed list
    with pytest.raises(RecipeError, match=r"broken.yaml:3: not valid YAML: expected ','"):
        Recipe.from_yaml(broken)
    result = CliRunner().invoke(spin_data_main, ["generate", "--recipe", str(broken)])
    assert result.exit_code == 2 and f"{broken}:3: not valid YAML" in result.output
    assert "Traceback" not in result.output


def test_cli_generate_refuses_bad_input_and_other_datasets(tmp_path):
    runner = CliRunner()
    out = str(tmp_path / "m")
    args = ["generate", "--env", "maze-5", "--quality", "random", "--size", "600", "--out", out]
    first = runner.invoke(spin_data_main, args)
    assert first.exit_code == 0, first.output
    assert "published" in first.output and "normalised" in first.output
    assert "collection: 600 steps on 1 worker(s), at least " in first.output  # the plan
    assert f"content {open_dataset(out).content_checksum}" in first.output
    again = runner.invoke(spin_data_main, args)
    assert again.exit_code == 0 and "already holds this dataset" in again.output
    other = runner.invoke(spin_data_main, args[:-4] + ["--size", "900", "--out", out])
    assert other.exit_code == 1 and "holds a different dataset" in other.output
    checksum = open_dataset(out).content_checksum
    replaced = runner.invoke(spin_data_main, args[:-4] + ["--size", "900", "--out", out,
                                                          "--overwrite"])
    assert replaced.exit_code == 0 and open_dataset(out).content_checksum != checksum
    for bad, message in [(["--quality", "nope"], "'nope' is not one of"),
                         (["--size", "0"], "0 is not in the range"),
                         (["--budget", "-3"], "accepted test, default or a positive number")]:
        result = runner.invoke(spin_data_main, ["generate", "--env", "maze-5", "--quality",
                                                "random", "--out", out, *bad])
        assert result.exit_code == 2 and message in result.output
    unknown = runner.invoke(spin_data_main, ["generate", "--env", "nosuch", "--quality", "random"])
    assert unknown.exit_code == 2 and "unknown environment 'nosuch'" in unknown.output


def test_ray_backend_writes_the_same_store_as_local(tmp_path):
    """A real local Ray instance runs the collection tasks; the store equals the local one."""
    ray = pytest.importorskip("ray")
    recipe = Recipe(env="maze-5", quality="random", size=3000, seed=9, episodes_per_task=4)
    generate(recipe, str(tmp_path / "local"), workers=2, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        generate(recipe, str(tmp_path / "ray"), workers=2, backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert open_dataset(tmp_path / "ray").checksums == open_dataset(tmp_path / "local").checksums


def test_maze_medium_expert_from_a_real_behaviour_run(tmp_path):
    """PPO (test preset) trains on maze-5; medium data scores between random and expert."""
    recipe = Recipe(env="maze-5", quality="medium-expert", size=6000, seed=0, budget="test")
    cache = str(tmp_path / "cache")
    summary = generate(recipe, str(tmp_path / "me"), workers=1, cache_dir=cache, progress=False)
    ds = open_dataset(tmp_path / "me")
    returns = ds.metadata["returns"]
    assert returns["medium"]["episodes"] > 0 and returns["expert"]["episodes"] > 0
    random_ref, expert_ref = -5.62, 99.34
    assert random_ref + 10 < returns["medium"]["mean"] < returns["expert"]["mean"] - 10
    assert summary["normalised"]["expert"] > 0.8 > summary["normalised"]["medium"]
    behaviour = ds.metadata["behaviour"]
    assert behaviour["algorithm"] == "ppo"
    assert behaviour["policies"]["medium"]["step"] < behaviour["policies"]["expert"]["step"]
    from spin_data.behaviour import load_ladder, preset, run_directory
    ladder = load_ladder(run_directory(preset("maze-5", "test", seed=0), cache))
    assert {r.sha256 for r in ladder.rungs} >= {p["checkpoint_sha256"]
                                               for p in behaviour["policies"].values()}
    assert verify(tmp_path / "me").ok
    # A directory store gets its dataset card, naming its checksum and listing its files.
    assert summary["card"] == str(tmp_path / "me" / "README.md")
    assert ds.content_checksum in (tmp_path / "me" / "README.md").read_text()
    croissant = json.loads((tmp_path / "me" / "croissant.json").read_text())
    assert "zarr.json" in {d["contentUrl"] for d in croissant["distribution"]}
    # the same recipe and seed again (behaviour now cached): byte-identical arrays
    generate(recipe, str(tmp_path / "again"), workers=2, cache_dir=cache, progress=False)
    assert open_dataset(tmp_path / "again").checksums == ds.checksums
    assert expert_ref > returns["expert"]["mean"]


def test_deterministic_collection_records_each_policy_s_mode(maze_deterministic,
                                                            behaviour_cache):
    """generate --deterministic: every medium/expert action is its policy's mode at that state
    (checked against the checkpoints whose sha256 the metadata records)."""
    import hashlib

    from spin_data.behaviour import load_policy

    store, _ = maze_deterministic
    ds = open_dataset(store)
    assert ds.metadata["recipe"]["deterministic"] is True
    steps = ds.transitions()
    sources = np.repeat(ds.array("episodes/sources"), ds.array("episodes/lengths"))
    by_sha = {hashlib.sha256(p.read_bytes()).hexdigest(): p
              for p in Path(behaviour_cache).glob("*/checkpoints/*.safetensors")}
    for name, code in (("medium", 1), ("expert", 2)):
        rows = sources == code
        assert rows.sum() > 1000
        ckpt = by_sha[ds.metadata["behaviour"]["policies"][name]["checkpoint_sha256"]]
        mode = load_policy(ckpt).act(steps["observations"][rows], deterministic=True)
        np.testing.assert_array_equal(steps["actions"][rows], mode)


def test_a_weak_dmc_expert_is_reported_and_recorded_never_silently_expert(tmp_path):
    """A budget too small for an expert (sbx SAC, test preset: 6k steps on finger) still makes
    the dataset, but the store's metadata and the summary say how far the 'expert' falls short."""
    pytest.importorskip("sbx")
    recipe = Recipe(env="finger", quality="expert", size=2000, seed=0, budget="test",
                    grid="unit", library="sbx", episodes_per_task=1)
    summary = generate(recipe, str(tmp_path / "weak"), workers=1,
                       cache_dir=str(tmp_path / "cache"), progress=False)
    ds = open_dataset(tmp_path / "weak")
    expert = ds.metadata["behaviour"]["policies"]["expert"]
    # Scored on its confirmation episodes (20: 10 x the test preset's 2 per rung).
    assert expert["confirm_episodes"] == 20 and expert["score"] < 0.8
    assert expert["score"] == pytest.approx(reference_score("finger", 3).normalise(
        expert["confirmed_return"]))
    # Two warnings: the ladder's (its best rung) and the collected episodes' own.
    warning, collected_warning = ds.metadata["warnings"]
    assert f"normalised {expert['score']:.2f} < 0.8" in warning
    assert "over 20 episodes" in warning
    assert "853.62" in warning  # the published expert it falls short of
    collected = ds.metadata["returns"]["expert"]
    assert f"return {collected['mean']:.2f} on average" in collected_warning
    assert summary["warnings"] == [warning, collected_warning]
    assert ds.metadata["behaviour"]["learner_library"] == "sbx"
    assert ds.metadata["behaviour"]["config"]["library"] == "sbx"
    assert "jax" in ds.metadata["behaviour"]["library"]
    # The policies acted in float64 with the pinned OpenBLAS kernels (tests/conftest.py).
    assert ds.metadata["numerics"] == {"behaviour_forward": "float64",
                                       "openblas_core": openblas_core()}
    from spin_data.tools import info_card

    card = info_card(ds)  # what `spin-data info` prints: the learner, the picks, the warning
    assert f"  behaviour     sac (sbx), 6,000 steps; expert step {expert['step']:,}" in card
    assert warning in card and collected_warning in card
    assert (f"  numerics      behaviour policies in float64, OpenBLAS {openblas_core()} kernels"
            in card)


def test_collected_expert_episodes_below_the_line_are_flagged():
    """fish-swim's case: a ladder rung scored 1.13 over 10 episodes, the 1,000 collected
    'expert' episodes 0.62 - the store must say so, whatever the rung claimed."""
    from spin_data.generate import collected_expert_warnings

    fish = reference_score("fish", 3)  # expert 418.58, random 72.32
    returns = {"expert": {"episodes": 1000, "mean": 288.11}, "medium": {"episodes": 1000,
                                                                        "mean": 127.93}}
    [warning] = collected_expert_warnings(returns, fish)
    assert "1000 episodes collected as 'expert' return 288.11" in warning
    assert f"normalised {fish.normalise(288.11):.3f} < 0.8" in warning and "418.58" in warning
    good = {"expert": {"episodes": 1000, "mean": fish.episode_return(0.85)}}
    assert collected_expert_warnings(good, fish) == []
    assert collected_expert_warnings({"medium": returns["medium"]}, fish) == []  # no expert
    assert collected_expert_warnings(returns, None) == []  # no published score to judge by
