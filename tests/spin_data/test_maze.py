"""The Chandak et al. maze: geometry, dynamics, rewards, seeding, and batched == single."""

import dataclasses
import itertools

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from spin_data.envs.bins import BinGridError
from spin_data.envs.maze import (
    MERLION_CONFIG,
    BatchedMaze,
    MazeConfig,
    MazeEnv,
    Region,
    actuator_motions,
    maze_config,
    merlion_config,
    motion_of,
)

# With 4 actuators the unit vectors are exactly right, up, left, down, which makes scripted
# moves easy; max norm is |right + up| = sqrt(2), so a substep moves 0.045 / sqrt(2) = 0.0318.
RIGHT, UP, LEFT, DOWN = [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]
OFF4 = [0, 0, 0, 0]


def quiet(config: MazeConfig, **changes) -> MazeConfig:
    """``config`` with noise off (deterministic dynamics) and any other field changes."""
    return dataclasses.replace(config, noise_prob=0.0, **changes)


def run(env: MazeEnv, action, steps: int):
    """Step ``env`` ``steps`` times with one action; returns (positions, rewards, last flags)."""
    positions, rewards = [], []
    terminated = truncated = False
    for _ in range(steps):
        _, reward, terminated, truncated, info = env.step(action)
        positions.append(info["position"])
        rewards.append(reward)
    return np.array(positions), rewards, (terminated, truncated)


# ----------------------------------------------------------------------------- geometry
def test_actuator_vectors_are_rounded_unit_vectors():
    vectors, max_norm = actuator_motions(4)
    np.testing.assert_array_equal(vectors, [[1, 0], [0, 1], [-1, 0], [0, -1]])
    assert max_norm == pytest.approx(np.sqrt(2), rel=1e-15)
    vectors5, max_norm5 = actuator_motions(5)
    np.testing.assert_array_equal(vectors5[1], [0.309, 0.951])  # 3 decimals, as the original
    assert max_norm5 == pytest.approx(1.618, abs=1e-3)  # two adjacent actuators + the one between
    np.testing.assert_allclose(motion_of(5, [1, 0, 0, 0, 0]), [1 / max_norm5, 0.0])


@pytest.mark.parametrize("n", range(2, 15))
def test_max_norm_sweep_equals_brute_force(n):
    vectors, max_norm = actuator_motions(n)
    combos = np.array(list(itertools.product([0.0, 1.0], repeat=n)))  # all 2**n on/off actions
    sums = combos @ vectors
    brute = np.hypot(sums[:, 0], sums[:, 1]).max()
    assert max_norm == pytest.approx(brute, rel=1e-12)
    # so every action's normalised motion has norm <= 1, and some action reaches 1
    norms = np.linalg.norm(motion_of(n, combos.astype(int)), axis=1)
    assert norms.max() == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("n", [1, 33, 0])
def test_actuator_count_outside_2_to_32_is_rejected(n):
    message = f"maze needs 2..32 actuators, got {n}"
    with pytest.raises(ValueError, match=message):
        maze_config(n)
    with pytest.raises(ValueError, match=message):
        actuator_motions(n)


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="start .* inside a wall"):
        MazeConfig(start=(0.2, 0.27))
    with pytest.raises(ValueError, match="noise_prob must be in"):
        MazeConfig(noise_prob=1.5)
    with pytest.raises(ValueError, match="x_lo <= x_hi"):
        Region("bad", (0.5, 0.4, 0.0, 0.1))
    with pytest.raises(ValueError, match="unique"):
        MazeConfig(regions=(Region("a", (0, 0.1, 0.5, 0.6)), Region("a", (0, 0.1, 0.7, 0.8))))


# ----------------------------------------------------------------------------- dynamics
def test_horizontal_wall_blocks_from_below():
    env = MazeEnv(quiet(maze_config(4)))
    env.reset(seed=0, options={"position": (0.25, 0.20)})
    positions, rewards, flags = run(env, UP, 5)
    # first step: one substep to y = 0.2318; the next would end at 0.2636 (in the wall): stop
    assert positions[0][1] == pytest.approx(0.20 + 0.045 / np.sqrt(2))
    assert np.all(positions[:, 1] < 0.25)
    assert np.all(positions[:, 0] == 0.25)  # no sliding
    assert np.all(positions == positions[0])  # and later steps are blocked at once
    assert rewards == [-0.05] * 5 and flags == (False, False)  # no penalty for bumping


def test_vertical_wall_blocks_from_the_right():
    env = MazeEnv(quiet(maze_config(4)))
    env.reset(seed=0, options={"position": (0.60, 0.50)})
    positions, _, _ = run(env, LEFT, 5)
    assert np.all(positions[:, 0] > 0.55)
    assert positions[-1][0] == pytest.approx(0.60 - 0.045 / np.sqrt(2))
    assert np.all(positions[:, 1] == 0.50)


@pytest.mark.parametrize("start, action, axis, bound",
                         [((0.95, 0.10), RIGHT, 0, 1.0), ((0.80, 0.03), DOWN, 1, 0.0),
                          ((0.02, 0.10), LEFT, 0, 0.0), ((0.80, 0.97), UP, 1, 1.0)])
def test_leaving_the_arena_is_blocked(start, action, axis, bound):
    env = MazeEnv(quiet(maze_config(4)))
    env.reset(seed=0, options={"position": start})
    positions, _, _ = run(env, action, 4)
    assert np.all((positions >= 0.0) & (positions <= 1.0))
    # it got as close as whole substeps allow, then stopped
    assert abs(positions[-1][axis] - bound) < 0.045 / np.sqrt(2)
    assert np.all(positions == positions[-1])


def test_goal_terminates_with_100_minus_005_k():
    env = MazeEnv(quiet(maze_config(4)))
    env.reset(seed=0, options={"position": (0.275, 0.70)})
    total, k = 0.0, 0
    terminated = truncated = False
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = env.step(DOWN)
        total += reward
        k += 1
    # y: 0.70 -> 0.573 after step 1; step 2 enters [0.45, 0.50] on its third substep and stops
    assert k == 2 and terminated and not truncated
    assert 0.45 <= info["position"][1] <= 0.50
    assert info["position"][1] == pytest.approx(0.70 - 7 * 0.045 / np.sqrt(2))
    assert total == pytest.approx(100 - 0.05 * k)
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step(DOWN)


def test_time_limit_truncates_at_exactly_150_steps():
    env = MazeEnv(quiet(maze_config(5)))
    obs, info = env.reset(seed=1)
    assert env.max_episode_steps == 150 and info["steps"] == 0
    np.testing.assert_array_equal(obs, np.float32([0.25, 0.10]))
    total = 0.0
    for step in range(1, 151):
        obs, reward, terminated, truncated, info = env.step([0] * 5)
        total += reward
        assert not terminated
        assert truncated == (step == 150)
    assert info["steps"] == 150
    np.testing.assert_array_equal(obs, np.float32([0.25, 0.10]))  # all off, no noise: no move
    assert total == pytest.approx(-7.5)
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step([0] * 5)


def test_noise_fires_on_about_10_percent_of_substeps_and_moves_up_right():
    # One substep per step and tiny steps: with every actuator off a step moves iff its substep
    # was replaced by noise, and 150 noise moves of <= 0.001 never reach a wall or the edge.
    config = dataclasses.replace(maze_config(5), substeps=1, step_length=0.001, start=(0.6, 0.05))
    env = BatchedMaze(config, 200, autoreset=False)
    _, info = env.reset(seed=7)
    previous = info["position"]
    moves = []
    for _ in range(150):
        _, _, _, truncated, info = env.step(np.zeros((200, 5), dtype=int))
        moves.append(info["position"] - previous)
        previous = info["position"]
    moves = np.array(moves)  # (150, 200, 2)
    moved = np.any(moves != 0, axis=-1)
    assert truncated.all()
    # 30,000 substeps: the standard error of the fraction is 0.0017, so +-0.01 is ~6 sigma
    assert moved.mean() == pytest.approx(0.1, abs=0.01)
    noise = moves[moved]
    assert np.all(noise > 0) and np.all(noise < 0.001 / 1.415)  # U[0,1)^2 / 1.415 * step


def test_noise_off_dynamics_need_no_randomness_and_seeds_reproduce():
    env_a, env_b = MazeEnv(maze_config(5), seed=3), MazeEnv(maze_config(5))
    obs_a, _ = env_a.reset()  # the constructor's seed is used by the first reset
    obs_b, _ = env_b.reset(seed=3)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, (150, 5))
    traj_a = [env_a.step(a)[0] for a in actions]
    traj_b = [env_b.step(a)[0] for a in actions]
    np.testing.assert_array_equal(traj_a, traj_b)
    # a reset without a seed continues the generator: the next episode differs from the first
    env_a.reset()
    env_b.reset(seed=3)
    assert not np.array_equal([env_a.step(a)[0] for a in actions[:50]],
                              [env_b.step(a)[0] for a in actions[:50]])


# ----------------------------------------------------------------------------- batched
@pytest.mark.parametrize(
    "config",
    [maze_config(5), maze_config(12),
     # starting just above the goal's pocket so that many episodes end by termination
     dataclasses.replace(maze_config(5), start=(0.275, 0.62)),
     # once-regions and their observation flags, with a start between the two MERLION regions
     dataclasses.replace(MERLION_CONFIG, start=(0.60, 0.85))],
    ids=["maze-5", "maze-12", "maze-5-near-goal", "merlion"],
)
def test_batched_equals_single_step_by_step(config):
    B, seed = 8, 100
    batched = BatchedMaze(config, B)
    singles = [MazeEnv(config) for _ in range(B)]
    obs, _ = batched.reset(seed=seed)
    first = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, first)
    rng = np.random.default_rng(5)
    ends = {"terminated": 0, "truncated": 0}
    for _ in range(400):
        actions = rng.integers(0, 2, (B, config.n_actuators))
        obs, rewards, terminated, truncated, info = batched.step(actions)
        for i, env in enumerate(singles):
            o, r, te, tr, _ = env.step(actions[i])
            assert (rewards[i], terminated[i], truncated[i]) == (r, te, tr)
            np.testing.assert_array_equal(info["final_observation"][i], o)
            if te or tr:
                ends["terminated" if te else "truncated"] += 1
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o)
    assert obs.dtype == np.float32 and obs.shape == (B, config.obs_dim)
    assert ends["truncated"] + ends["terminated"] >= B  # several episode ends were crossed
    if config.start == (0.275, 0.62):
        assert ends["terminated"] > 0


def test_batched_without_autoreset_runs_exactly_one_episode_each():
    config = quiet(maze_config(4), start=(0.275, 0.70))
    env = BatchedMaze(config, 3, autoreset=False)
    env.reset(seed=0)
    # env 0 heads for the goal (terminates at step 2), the others idle until the time limit
    actions = np.array([DOWN, OFF4, OFF4])
    returns = np.zeros(3)
    for step in range(1, 151):
        _, rewards, terminated, truncated, info = env.step(actions)
        returns += rewards
        assert terminated[0] == (step == 2) and not terminated[1:].any()
        assert truncated[1:].all() == (step == 150) and not truncated[0]
    np.testing.assert_allclose(returns, [100 - 0.1, -7.5, -7.5])
    assert not info["active"].any()
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step(actions)


# ----------------------------------------------------------------------------- random policy
# Reference random scores (REFERENCE section 1): -5.62 (5 actuators), -7.45 (10 actuators).
@pytest.mark.parametrize("n, episodes, low, high", [
    # 5 actuators: we measured -5.59 over 20,000 episodes (SE 0.10); at 8,000 episodes the
    # standard error is about 0.15, so +-0.6 around -5.62 is ~4 sigma.
    (5, 8000, -5.62 - 0.6, -5.62 + 0.6),
    # 10 actuators: the random policy reaches the goal in ~0.2% of episodes (+~107 each), so the
    # true mean is about -7.5 + 0.2 = -7.3 (measured -7.32 over 20,000 episodes). -7.45 is the
    # original's never-reach return (its 150th step is not rewarded; ours is, giving -7.5),
    # i.e. what a few evaluation episodes that all miss the goal score. No return can be below
    # -7.5; the upper bound allows the ~0.2 of rare hits plus ~3 standard errors (0.07).
    (10, 4000, -7.5, -7.45 + 0.35),
])
def test_random_policy_mean_return_matches_reference(n, episodes, low, high):
    env = BatchedMaze(maze_config(n), episodes, autoreset=False)
    env.reset(seed=2024)
    rng = np.random.default_rng(11)
    returns = np.zeros(episodes)
    for _ in range(150):
        _, rewards, _, _, info = env.step(rng.integers(0, 2, (episodes, n)))
        returns += rewards
    assert not info["active"].any()  # every env ran exactly one whole episode
    assert low <= returns.mean() <= high
    assert returns.min() == pytest.approx(-7.5)  # never-reach episodes (150 rewarded steps)


# ----------------------------------------------------------------------------- MERLION preset
def test_merlion_preset():
    assert merlion_config() is MERLION_CONFIG
    env = MazeEnv(MERLION_CONFIG)
    obs, _ = env.reset(seed=0)
    assert env.config.n_actuators == 12 and env.action_space.nvec.tolist() == [2] * 12
    assert obs.shape == (4,) and env.observation_space.shape == (4,)
    assert env.obs_keys == [("position", 2), ("visited", 2)]
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step([0] * 12)
        steps += 1
        assert not terminated
    assert steps == 60


def test_merlion_once_regions_reward_only_the_first_entry():
    up, down, off = np.zeros(12, int), np.zeros(12, int), np.zeros(12, int)
    up[3], down[9] = 1, 1  # actuators at 90 and 270 degrees
    env = MazeEnv(quiet(MERLION_CONFIG))
    env.reset(seed=0, options={"position": (0.72, 0.78)})
    rewards, flags = [], []
    for action in [up, up, off, off, up, down, off]:  # in at step 2, out at 5, back in at 6
        obs, reward, terminated, _, info = env.step(action)
        rewards.append(reward)
        flags.append(obs[2:].tolist())
        assert not terminated
    assert rewards == pytest.approx([-0.05, 9.95, -0.05, -0.05, -0.05, -0.05, -0.05])
    assert flags == [[0, 0]] + [[1, 0]] * 6
    assert 0.85 <= info["position"][1] <= 0.90

    env.reset(seed=0, options={"position": (0.425, 0.55)})
    rewards = [env.step(a)[1] for a in [up, up, off, off]]
    assert rewards == pytest.approx([-0.05, -20.05, -0.05, -0.05])
    # the next episode's flags start cleared
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, np.float32([0.25, 0.10, 0, 0]))


# ----------------------------------------------------------------------------- actions / API
@pytest.mark.parametrize("action, message", [
    ([0, 1, 0, 1], r"shape \(\.\.\., 5\)"),
    ([[0, 1, 0, 1, 1]], r"shape \(n,\) with n = 5"),
    ([0, 1, 2, 0, 0], "accepted 0..1"),
    ([0, -1, 0, 0, 0], "accepted 0..1"),
])
def test_bad_actions_raise_bin_grid_errors(action, message):
    env = MazeEnv(maze_config(5))
    env.reset(seed=0)
    with pytest.raises(BinGridError, match=message) as err:
        env.step(action)
    assert isinstance(err.value, ValueError)
    # a valid action still works afterwards: lists, int arrays and boolean masks alike
    for good in ([0, 1, 0, 1, 1], np.array([1, 0, 0, 0, 0]), np.array([True] + [False] * 4)):
        assert env.step(good)[0].shape == (2,)


def test_batched_rejects_bad_actions_and_stepping_before_reset():
    env = BatchedMaze(maze_config(5), 4)
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step(np.zeros((4, 5), int))
    env.reset(seed=0)
    with pytest.raises(BinGridError, match=r"shape \(4, 5\)"):
        env.step(np.zeros((3, 5), int))
    with pytest.raises(BinGridError, match="accepted 0..1"):
        env.step(np.full((4, 5), 2))


def test_single_env_api_and_spaces():
    env = MazeEnv(maze_config(7), seed=0, render_mode="rgb_array")
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step([0] * 7)
    assert env.bin_grid.counts == (2,) * 7
    np.testing.assert_array_equal(env.bin_grid.values[0], [0.0, 1.0])  # bin 0 off, bin 1 on
    assert env.obs_keys == [("position", 2)]
    obs, info = env.reset()
    assert obs.dtype == np.float32 and info["position"].dtype == np.float64
    assert env.render().shape == (200, 200, 3)
    with pytest.raises(ValueError, match="inside a wall"):
        env.reset(options={"position": (0.52, 0.5)})
    check_env(MazeEnv(maze_config(5), seed=0), skip_render_check=True)
