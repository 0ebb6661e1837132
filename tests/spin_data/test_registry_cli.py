"""The environment registry, the reference-score table and the ``spin-data envs`` command."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from spin_data.cli.envs import format_count
from spin_data.cli import main as spin_data_main
from spin_data.envs import (
    NoReferenceScore,
    UnknownEnvironment,
    make_env,
    normalised_score,
    reference_score,
    resolve,
)


def test_short_names_resolve_to_benchmark_tasks():
    assert resolve("cheetah").canonical == "cheetah-run"
    assert resolve("humanoid").canonical == "humanoid-stand"
    assert resolve("dog").canonical == "dog-trot"
    assert resolve("walker-walk").canonical == "walker-walk"
    assert resolve("maze").canonical == "maze-5"
    assert resolve("maze-15").canonical == "maze-15"
    assert resolve("merlion").family == "maze"


@pytest.mark.parametrize(
    "name, message",
    [("cheeta", "unknown environment 'cheeta': accepted cheetah, finger"),
     ("walker-fly", "any dm_control domain-task"),
     ("maze-1", "maze needs 2..32 actuators, got 1"),
     ("maze-33", "maze needs 2..32 actuators, got 33")],
)
def test_unknown_names_are_rejected_with_the_accepted_ones(name, message):
    with pytest.raises(UnknownEnvironment, match=message):
        make_env(name)


def test_maze_bins_must_be_two():
    with pytest.raises(ValueError, match="bins must be 2, got 3"):
        make_env("maze-5", bins=3)
    assert make_env("maze-7", bins=2).bin_grid.counts == (2,) * 7


def test_normalised_scores_from_the_one_table():
    assert normalised_score("cheetah", 664.57) == pytest.approx(1.0)
    assert normalised_score("cheetah-run", 5.39, bins=3) == pytest.approx(0.0)
    assert normalised_score("dog", (768.24 + 6.39) / 2, bins=30) == pytest.approx(0.5)
    assert normalised_score("maze-10", -7.45) == pytest.approx(0.0)
    assert reference_score("humanoid", 3).expert == 711.90
    assert reference_score("walker-walk", 3) is None


@pytest.mark.parametrize(
    "name, bins, message",
    [("cheetah", 5, "no reference score for cheetah-run at 5 bins \\(published for bins 3\\)"),
     ("dog", 7, "published for bins 3, 10, 30, 50, 75, 100"),
     ("walker-walk", 3, "none published"),
     ("merlion", 2, "no reference score for merlion at 2 bins \\(none published\\)")],
)
def test_missing_reference_says_so(name, bins, message):
    with pytest.raises(NoReferenceScore, match=message):
        normalised_score(name, 100.0, bins=bins)


def test_format_count():
    assert format_count(729) == "729"
    assert format_count(531_441) == "531,441"
    assert format_count(3**21) == "1.05e10"
    assert format_count(3**38) == "1.35e18"
    assert format_count(30**38) == "1.35e56"
    assert format_count(9_999_999_999) == "1.00e10"


def _row(output, name):
    for line in output.splitlines():
        if line.split() and line.split()[0] == name:
            return line.split()
    raise AssertionError(f"no row for {name} in:\n{output}")


def test_envs_table_lists_every_registered_env():
    result = CliRunner().invoke(spin_data_main, ["envs"])
    assert result.exit_code == 0, result.output
    out = result.output
    # name, task, obs dim, N, bins, joint actions, episode, ref expert, ref random
    assert _row(out, "cheetah") == ["cheetah", "cheetah-run", "17", "6", "3", "729", "1000",
                                    "664.57", "5.39"]
    assert _row(out, "quadruped")[5] == "531,441"
    assert _row(out, "humanoid")[2:6] == ["67", "21", "3", "1.05e10"]
    assert _row(out, "dog")[2:8] == ["223", "38", "3", "1.35e18", "1000", "724.37"]
    assert _row(out, "maze-10") == ["maze-10", "maze-10", "2", "10", "2", "1,024", "150",
                                    "99.37", "-7.45"]
    assert _row(out, "merlion")[7:] == ["none", "published"]
    for name in ["finger", "fish", "maze-3", "maze-5", "maze-7", "maze-12", "maze-15"]:
        _row(out, name)


def test_envs_json_for_named_envs_and_other_bins():
    result = CliRunner().invoke(
        spin_data_main, ["envs", "dog", "walker-walk", "maze-20", "--bins", "30", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["dog"]["joint_actions"] == 30**38 and rows["dog"]["expert"] == 768.24
    assert rows["walker-walk"]["obs_dim"] == 24 and rows["walker-walk"]["expert"] is None
    assert rows["maze-20"]["bins"] == 2 and rows["maze-20"]["joint_actions"] == 2**20


@pytest.mark.parametrize(
    "args, message",
    [(["envs", "--bins", "1"], "1 is not in the range x>=2"),
     (["envs", "nosuchenv"], "unknown environment 'nosuchenv'"),
     (["envs", "--grid", "centres"], "'centres' is not one of 'actuator', 'unit'")],
)
def test_cli_usage_errors_exit_2_with_one_clear_line(args, message):
    proc = subprocess.run([sys.executable, "-m", "spin_data.cli", *args], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [["spin-data", "--help"], ["spin-data", "envs", "--help"],
                                     ["spin-train", "--help"]])
def test_console_scripts_help(command):
    bindir = __import__("pathlib").Path(sys.executable).parent
    proc = subprocess.run([str(bindir / command[0]), *command[1:]], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


# ============================================================================= gymnasium ids
def test_every_catalogue_recipe_has_a_gymnasium_id_that_builds_its_env():
    """Other libraries build the evaluation env by id: `gymnasium.make("spin/<task>-<bins>bins-v0")`
    must give the env a recipe's data was collected in (same observations, actions, rewards)."""
    import gymnasium as gym
    import numpy as np

    from spin_data.envs import gym_id
    from spin_data.recipe import Recipe, catalog

    ids = set()
    for path in catalog().values():
        recipe = Recipe.from_yaml(path)
        spec = resolve(recipe.env)
        ids.add((gym_id(spec.canonical, recipe.n_bins),
                 recipe.grid if spec.family == "dmc" else "actuator", recipe.n_bins))
    assert {i for i, _, _ in ids} >= {"spin/cheetah-run-3bins-v0", "spin/dog-trot-30bins-v0",
                                      "spin/maze-15-2bins-v0"}
    for env_id, grid, bins in sorted(ids):
        task = env_id.split("/")[1].rsplit("-", 2)[0]
        by_id, direct = gym.make(env_id), make_env(task, bins=bins, grid=grid)
        assert by_id.spec.max_episode_steps == direct.get_wrapper_attr("max_episode_steps")
        assert by_id.action_space == direct.action_space, env_id
        obs_a, _ = by_id.reset(seed=7)
        obs_b, _ = direct.reset(seed=7)
        np.testing.assert_array_equal(obs_a, obs_b)
        rng = np.random.default_rng(0)
        for _ in range(3):
            action = rng.integers(0, direct.action_space.nvec)
            step_a, step_b = by_id.step(action), direct.step(action)
            np.testing.assert_array_equal(step_a[0], step_b[0])
            assert step_a[1:4] == step_b[1:4]
        by_id.close(), direct.close()


def test_gymnasium_ids_work_without_importing_spin_first_and_take_make_env_arguments():
    probe = ("import gymnasium as gym\n"
             "env = gym.make('spin_data.envs:spin/maze-5-2bins-v0')\n"
             "print(env.spec.id, env.spec.max_episode_steps, env.action_space)\n"
             "print(gym.make('spin/cheetah-run-3bins-v0', grid='actuator', bins=5).action_space)\n"
             "print(sorted(i for i in gym.registry if i.startswith('spin/'))[:2])\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "spin/maze-5-2bins-v0 150 MultiDiscrete([2 2 2 2 2])"
    assert out[1] == "MultiDiscrete([5 5 5 5 5 5])"
    assert out[2] == "['spin/cheetah-run-3bins-v0', 'spin/dog-trot-100bins-v0']"
