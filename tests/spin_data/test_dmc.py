"""Discretised DM Control tasks on the real simulator: spaces, episodes, determinism, returns."""

import numpy as np
import pytest
from dm_control import suite
from dm_control.rl import control
from dm_control.suite import cheetah

from spin_data.envs import make_env, reference_score
from spin_data.envs.dmc import DMCDiscreteEnv, flatten_observation

# short name -> (dm_control task, obs dim, sub-actions N), REFERENCE section 1
BENCHMARK = {
    "cheetah": ("cheetah-run", 17, 6),
    "finger": ("finger-spin", 9, 2),
    "fish": ("fish-swim", 24, 5),
    "quadruped": ("quadruped-walk", 78, 12),
    "humanoid": ("humanoid-stand", 67, 21),
    "dog": ("dog-trot", 223, 38),
}


def run_episode(env, actions_rng, max_steps=None):
    """Roll out uniform-random bins; returns (observations, rewards, terminated, truncated)."""
    obs, _ = env.reset(seed=7)
    observations, rewards = [obs], []
    counts = np.asarray(env.bin_grid.counts)
    terminated = truncated = False
    while not (terminated or truncated):
        action = actions_rng.integers(0, counts)
        obs, reward, terminated, truncated, info = env.step(action)
        np.testing.assert_array_equal(info["bin_indices"], action)
        observations.append(obs)
        rewards.append(reward)
        if max_steps is not None and len(rewards) == max_steps:
            break
    return np.stack(observations), np.asarray(rewards), terminated, truncated


@pytest.mark.parametrize("name", list(BENCHMARK))
def test_spaces_dtypes_and_truncated_1000_step_episode(name):
    task, obs_dim, n = BENCHMARK[name]
    env = make_env(name, bins=3, seed=0)
    assert env.name == task
    assert env.observation_space.shape == (obs_dim,)
    assert env.observation_space.dtype == np.float32
    assert list(env.action_space.nvec) == [3] * n
    assert env.bin_grid.n_dims == n and env.max_episode_steps == 1000
    # the flat observation follows dm_control's own dict order, block by block
    dm_env = suite.load(*task.split("-"), task_kwargs={"random": 0})
    assert [k for k, _ in env.obs_keys] == list(dm_env.observation_spec())
    assert sum(size for _, size in env.obs_keys) == obs_dim

    observations, rewards, terminated, truncated = run_episode(env, np.random.default_rng(0))
    assert observations.dtype == np.float32 and observations.shape == (1001, obs_dim)
    assert len(rewards) == 1000
    assert truncated and not terminated
    assert np.all(np.isfinite(observations)) and np.all((rewards >= 0) & (rewards <= 1))
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(n, dtype=np.int64))


@pytest.mark.parametrize("name", list(BENCHMARK))
def test_same_seed_and_actions_give_identical_rollouts(name):
    runs = []
    for _ in range(2):
        env = make_env(name, bins=3)
        runs.append(run_episode(env, np.random.default_rng(3), max_steps=200))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    # reseeding one env reproduces its own first episode, and another seed changes the start
    env = make_env(name, bins=3)
    first, _ = env.reset(seed=11)
    env.step(np.zeros(env.bin_grid.n_dims, dtype=np.int64))
    again, _ = env.reset(seed=11)
    np.testing.assert_array_equal(first, again)
    other, _ = env.reset(seed=12)
    assert not np.array_equal(first, other)


def test_constructor_seed_seeds_the_first_reset():
    a, _ = make_env("cheetah", seed=5).reset()
    b, _ = make_env("cheetah", seed=5).reset()
    c, _ = make_env("cheetah", seed=6).reset()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bins_become_actuator_values():
    """A bin index drives the simulator with that bin's value (checked on MuJoCo's ctrl)."""
    env = make_env("quadruped", bins=5)
    env.reset(seed=0)
    action = np.arange(12) % 5
    env.step(action)
    ctrl = env.unwrapped._env.physics.data.ctrl.copy()
    np.testing.assert_allclose(ctrl, env.bin_grid.to_values(action))
    # the actuator grid spans the real control ranges; the unit grid is the benchmark's [-1, 1]
    spec = env.unwrapped._env.action_spec()
    np.testing.assert_array_equal(env.bin_grid.low, spec.minimum)
    np.testing.assert_array_equal(env.bin_grid.high, spec.maximum)
    assert not np.all(spec.maximum == 1.0)  # quadruped has ranges other than [-1, 1]
    unit = make_env("quadruped", bins=3, grid="unit")
    assert all(list(v) == [-1.0, 0.0, 1.0] for v in unit.bin_grid.values)


def test_per_dimension_bins_and_any_suite_task():
    env = make_env("walker-walk", bins=[2, 3, 4, 5, 6, 7], seed=0)
    assert list(env.action_space.nvec) == [2, 3, 4, 5, 6, 7]
    obs, _ = env.reset()
    assert obs.shape == (24,)
    obs, *_ = env.step([1, 2, 3, 4, 5, 6])
    assert obs.dtype == np.float32
    # Each dimension has its own grid: the last bin of each is its actuator's maximum, and an
    # inner bin lands where linspace(low, high, count) puts it - on MuJoCo's ctrl itself.
    ctrl = env.unwrapped._env.physics.data.ctrl.copy()
    spec = env.unwrapped._env.action_spec()
    expected = [np.linspace(lo, hi, n)[k] for lo, hi, n, k in
                zip(spec.minimum, spec.maximum, [2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6])]
    np.testing.assert_allclose(ctrl, expected)
    np.testing.assert_allclose(ctrl, spec.maximum)
    env.step([0, 1, 1, 2, 2, 3])  # the middle of every odd count, a low bin of the even ones
    ctrl = env.unwrapped._env.physics.data.ctrl.copy()
    expected = [np.linspace(lo, hi, n)[k] for lo, hi, n, k in
                zip(spec.minimum, spec.maximum, [2, 3, 4, 5, 6, 7], [0, 1, 1, 2, 2, 3])]
    np.testing.assert_allclose(ctrl, expected)
    np.testing.assert_allclose(ctrl[[1, 3, 5]], (spec.minimum + spec.maximum)[[1, 3, 5]] / 2)


class TerminatesAfterHalfSecond(cheetah.Cheetah):
    """cheetah-run with a true terminal (discount 0) once 0.5 s of simulated time have passed."""

    def get_termination(self, physics):
        if physics.time() >= 0.5 - 1e-9:
            return 0.0
        return None


def test_true_terminal_is_termination_not_truncation():
    physics = cheetah.Physics.from_xml_string(*cheetah.get_model_and_assets())
    environment = control.Environment(physics, TerminatesAfterHalfSecond(random=0), time_limit=10)
    env = DMCDiscreteEnv("cheetah", "terminating", environment=environment)
    env.reset(seed=0)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, _, terminated, truncated, info = env.step(np.ones(6, dtype=np.int64))
        steps += 1
    assert terminated and not truncated
    assert steps == 50 and info["discount"] == 0.0  # 0.5 s at control dt 0.01


@pytest.mark.parametrize("name", ["cheetah", "finger"])
def test_uniform_random_return_near_reference_random_score(name):
    """Mean return of uniform-random bins over 5 episodes vs the benchmark's random score.

    Per-episode random returns spread about +-2 (cheetah) and +-4 (finger) around a mean of
    about 5 (10-episode pilot); the band allows ~2.5 standard errors of a 5-episode mean and
    excludes anything a learning policy would reach (expert scores are 650-850)."""
    env = make_env(name, bins=3, grid="unit")
    ref = reference_score(name, 3)
    rng = np.random.default_rng(2026)
    returns = []
    for episode in range(5):
        env.reset(seed=1000 + episode)
        done, total = False, 0.0
        while not done:
            _, reward, terminated, truncated, _ = env.step(rng.integers(0, 3, env.bin_grid.n_dims))
            total += reward
            done = terminated or truncated
        returns.append(total)
    band = {"cheetah": 3.0, "finger": 4.5}[name]
    assert abs(np.mean(returns) - ref.random) < band, (returns, ref.random)


@pytest.mark.parametrize(
    "action, message",
    [(np.zeros(5, dtype=np.int64), r"shape \(\.\.\., 6\)"),
     (np.array([0, 0, 0, 0, 0, 3]), "out of range for dimension 5: accepted 0..2"),
     (np.zeros((2, 6), dtype=np.int64), r"one action of shape \(6,\)")],
)
def test_bad_actions_are_rejected_with_a_clear_message(action, message):
    env = make_env("cheetah", seed=0)
    env.reset()
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_flatten_observation_keeps_dict_order():
    obs = {"b": np.array([1.0, 2.0]), "a": np.float64(3.0), "c": np.ones((2, 2))}
    np.testing.assert_array_equal(flatten_observation(obs), [1, 2, 3, 1, 1, 1, 1])
    assert flatten_observation(obs).dtype == np.float32
