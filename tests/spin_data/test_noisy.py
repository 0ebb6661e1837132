"""The "noisy" quality (the MERLION paper's data): the medium policy's mode, each action replaced
by a uniform random joint action with probability ``random_action_prob``. Real maze-5, real PPO
behaviour (test budget, trained once for the module)."""

import hashlib

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from spin_data.cli import main as spin_data_main
from spin_data.collect import RandomActionPolicy, collect_episodes
from spin_data.envs import make_env
from spin_data.generate import generate
from spin_data.recipe import Recipe, RecipeError, find_recipe
from spin_data.store import open_dataset
from spin_data.tools import info_card, verify

RECIPE = Recipe(env="maze-5", quality="noisy", size=10_000, seed=0, budget="test")


@pytest.fixture(scope="module")
def noisy_store(tmp_path_factory):
    """(store, behaviour cache) of RECIPE, made by generate with one worker."""
    root = tmp_path_factory.mktemp("noisy")
    cache = str(root / "cache")
    generate(RECIPE, str(root / "store"), workers=1, cache_dir=cache, progress=False)
    return root / "store", cache


def _medium_policy(ds, cache):
    """The medium behaviour policy whose checkpoint sha256 the store records."""
    from spin_data.behaviour import load_policy, preset, run_directory

    medium = ds.metadata["behaviour"]["policies"]["medium"]
    checkpoint = run_directory(preset("maze-5", "test", seed=0), cache) / medium["checkpoint"]
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == medium["checkpoint_sha256"]
    return load_policy(checkpoint)


def test_noisy_actions_leave_the_mode_at_the_expected_rate_and_are_recorded(noisy_store):
    store, cache = noisy_store
    ds = open_dataset(store)
    assert 10_000 <= ds.n_steps < 10_000 + 150 and verify(store).ok
    assert set(ds.metadata["returns"]) == {"medium", "all"}
    steps = ds.transitions()
    mode = _medium_policy(ds, cache).act(steps["observations"], deterministic=True)
    differs = steps["actions"] != mode
    n_joint = ds.bin_grid.joint_size
    assert n_joint == 32
    # A replaced action differs from the mode unless the draw hits it (1 in 32): 0.484 of the
    # steps; the standard deviation of the fraction over 10,000 steps is 0.005.
    assert differs.any(axis=1).mean() == pytest.approx(0.5 * (1 - 1 / n_joint), abs=0.03)
    # Every actuator is drawn on its own: each differs from the mode on 0.5 x 1/2 of the steps.
    np.testing.assert_allclose(differs.mean(axis=0), 0.25, atol=0.03)

    md = ds.metadata
    assert md["quality"] == "noisy"
    assert md["recipe"]["random_action_prob"] == 0.5 and md["recipe"]["deterministic"] is True
    assert md["action_selection"]["sources"] == ["medium"]
    assert md["action_selection"]["policy_action"] == "mode"
    assert md["action_selection"]["random_action_prob"] == 0.5
    said = ("medium: mode actions, each replaced by a uniform random joint action with "
            "probability 0.5")
    assert f"  acting        {said}" in info_card(ds).splitlines()
    assert said in md["description"] and said in (store / "README.md").read_text()


def test_the_same_noisy_recipe_gives_the_same_bytes_with_two_workers(noisy_store, tmp_path):
    store, cache = noisy_store
    summary = generate(RECIPE, str(tmp_path / "again"), workers=2, cache_dir=cache,
                       progress=False)
    first = open_dataset(store)
    assert summary["content_checksum"] == first.content_checksum
    assert open_dataset(tmp_path / "again").checksums == first.checksums


def test_replaced_sampled_actions_do_not_depend_on_the_batch(noisy_store):
    """Replacement over a sampling policy (e.g. expert + random_action_prob): each episode's
    coins and random actions come from its own generator, whatever shares its batch."""
    store, cache = noisy_store
    grid = make_env("maze-5").bin_grid
    policy = RandomActionPolicy(_medium_policy(open_dataset(store), cache), grid, 0.3)
    a = list(collect_episodes(lambda: make_env("maze-5"), policy, range(6), n_envs=4))
    b = list(collect_episodes(lambda: make_env("maze-5"), policy, range(6), n_envs=1))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.actions, y.actions)
        np.testing.assert_array_equal(x.observations, y.observations)


def test_noisy_recipe_defaults_and_other_qualities():
    assert (RECIPE.deterministic, RECIPE.random_action_prob) == (True, 0.5)
    assert RECIPE.mix == {"medium": 1.0} and Recipe(env="maze-5", quality="noisy").size == 100_000
    # Other qualities replace nothing, and their recipes read as before the field existed.
    medium = find_recipe("maze-5", "medium")
    assert medium.random_action_prob == 0.0 and "random_action_prob" not in medium.to_dict()
    assert Recipe(env="maze-5", quality="expert", random_action_prob=0.5).action_selection() == {
        "sources": ["expert"], "policy_action": "sample", "random_action_prob": 0.5,
        "random_action": "uniform over the joint actions (every sub-action's bin uniform and "
                         "independent; may equal the policy's)"}
    # --recipe <a medium recipe> --quality noisy: noisy's defaults, not medium's.
    noisy = medium.with_overrides(quality="noisy")
    assert (noisy.deterministic, noisy.random_action_prob, noisy.size) == (True, 0.5, 100_000)
    assert medium.with_overrides(quality="noisy", deterministic=False).deterministic is False
    with pytest.raises(RecipeError, match=r"random_action_prob must be in \(0, 1\] for quality "
                                          "noisy, got 0"):
        Recipe(env="maze-5", quality="noisy", random_action_prob=0)


@pytest.mark.parametrize("bad", ["-0.1", "1.5", "nan"])
def test_bad_random_action_prob_is_a_one_line_usage_error(bad, tmp_path):
    runner = CliRunner()
    result = runner.invoke(spin_data_main, ["generate", "--env", "maze-5", "--quality", "noisy",
                                            "--random-action-prob", bad,
                                            "--out", str(tmp_path / "x")])
    message = f"random_action_prob must be a probability in [0, 1], got {float(bad)!r}"
    assert result.exit_code == 2 and f"Error: Invalid value: {message}\n" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x").exists()
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(yaml.safe_dump({"env": "maze-5", "quality": "expert",
                                      "random_action_prob": float(bad)}))
    from_file = runner.invoke(spin_data_main, ["generate", "--recipe", str(recipe)])
    assert from_file.exit_code == 2 and f"{recipe}: {message}" in from_file.output
