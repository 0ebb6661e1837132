"""The continuous view: Box actions snapped to the bin grid before the physics step."""

import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

from spin_data.envs import BinGridError, make_env


def test_continuous_view_executes_the_snapped_bins():
    cont = make_env("cheetah", bins=5, seed=0, continuous=True)
    disc = make_env("cheetah", bins=5, seed=0)
    grid = disc.bin_grid
    assert cont.action_space.shape == (6,) and cont.action_space.dtype == np.float32
    np.testing.assert_array_equal(cont.action_space.low, grid.low.astype(np.float32))
    obs_c, _ = cont.reset(seed=3)
    obs_d, _ = disc.reset(seed=3)
    np.testing.assert_array_equal(obs_c, obs_d)
    rng = np.random.default_rng(0)
    for _ in range(100):
        a = rng.uniform(-1.2, 1.2, size=6).astype(np.float32)
        obs_c, r_c, te_c, tr_c, info = cont.step(a)
        expected = np.abs(a[:, None] - np.stack(grid.values)).argmin(axis=1)
        np.testing.assert_array_equal(info["bin_indices"], expected)
        np.testing.assert_array_equal(info["executed_action"], grid.to_values(expected))
        obs_d, r_d, te_d, tr_d, _ = disc.step(info["bin_indices"])
        np.testing.assert_array_equal(obs_c, obs_d)
        assert (r_c, te_c, tr_c) == (r_d, te_d, tr_d)


def test_continuous_view_on_the_maze():
    env = make_env("maze-5", seed=0, continuous=True)
    env.reset()
    _, _, _, _, info = env.step(np.array([0.2, 0.7, 0.49, 0.51, 1.0], dtype=np.float32))
    np.testing.assert_array_equal(info["bin_indices"], [0, 1, 0, 1, 1])


def test_continuous_view_rejects_wrong_shape():
    env = make_env("finger", seed=0, continuous=True)
    env.reset()
    with pytest.raises(BinGridError, match=r"shape \(2,\)"):
        env.step(np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("name, continuous", [("finger", False), ("finger", True),
                                              ("maze-5", False), ("maze-5", True)])
def test_envs_pass_stable_baselines3_checker(name, continuous):
    """SB3's own checker: the envs are usable by the behaviour-policy trainers as they are."""
    check_env(make_env(name, seed=0, continuous=continuous), warn=False)
