"""Stage-2 evaluation in the real environments, and the reports over run directories.

Run directories are written here by hand in the trainer's file format (config.json and
metrics.jsonl), so every expected number below is known exactly.
"""

import csv
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from spin_data.collect import run_episode
from spin_data.envs import make_env, normalised_score
from spin_train.cli import main as spin_train_main
from spin_train.policy.evaluate import EvalResult, env_make_kwargs, evaluate, reference_bins
from spin_train.report import (compare, format_table, load_run, plot_learning_curves, plot_run,
                               return_at_step, target_threshold, time_to_target, write_csv)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ============================================================================= evaluate
# maze-5 actuators point at 0, 72, 144, 216 and 288 degrees.
RIGHT, UP, LEFT = np.array([1, 1, 0, 0, 1]), np.array([0, 1, 1, 0, 0]), np.array([0, 0, 1, 1, 0])
DOWN_LEFT, DOWN_RIGHT = np.array([0, 0, 0, 1, 1]), np.array([0, 0, 0, 0, 1])


def around_the_wall(observations: np.ndarray) -> np.ndarray:
    """A deterministic maze-5 policy: right past the wall, up, left over it, down to the goal.
    The maze's noise makes some episodes reach the goal and others time out."""
    actions = []
    for x, y in observations[:, :2]:
        if y < 0.5 and x < 0.58:
            actions.append(RIGHT)
        elif y < 0.85 and x >= 0.55:
            actions.append(UP)
        elif y > 0.5 and x > 0.3:
            actions.append(LEFT)
        elif y > 0.5:
            actions.append(DOWN_LEFT if x > 0.27 else DOWN_RIGHT)
        else:
            actions.append(UP)
    return np.stack(actions).astype(np.int64)


class Recorder:
    """Wraps a policy_fn and records every batched call's observations and actions."""

    def __init__(self, policy_fn):
        self.policy_fn = policy_fn
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, observations):
        actions = self.policy_fn(observations)
        self.calls.append((observations.copy(), actions.copy()))
        return actions


def per_episode_actions(calls, lengths) -> list[np.ndarray]:
    """Split the recorded batched calls into each episode's actions: call t holds, in episode
    order, the rows of the episodes still running (those longer than t steps)."""
    actions = [[] for _ in lengths]
    for t, (_, batch) in enumerate(calls):
        running = [i for i, n in enumerate(lengths) if n > t]
        assert len(batch) == len(running)
        for row, i in enumerate(running):
            actions[i].append(batch[row])
    return [np.stack(a) for a in actions]


def single_env_returns(env_name, seeds, actions, **kwargs):
    """Each episode replayed alone in one env with the recorded actions: (returns, lengths)."""
    env = make_env(env_name, **kwargs)
    returns, lengths = [], []
    for seed, episode_actions in zip(seeds, actions):
        steps = iter(episode_actions)
        ep = run_episode(env, lambda _obs: next(steps), seed=int(seed))
        returns.append(float(np.sum(ep.rewards, dtype=np.float64)))
        lengths.append(len(ep.rewards))
    return np.asarray(returns), np.asarray(lengths)


def random_policy(seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(0, 2, size=(len(obs), 5))


@pytest.mark.parametrize("policy", ["around_the_wall", "random"])
def test_maze_evaluation_equals_single_episodes(policy):
    policy_fn = around_the_wall if policy == "around_the_wall" else random_policy(7)
    recorder = Recorder(policy_fn)
    result = evaluate(recorder, "maze-5", {"bins": 2, "grid": "actuator"}, episodes=8, seed=0)

    assert isinstance(result, EvalResult)
    assert result.returns.shape == (8,) and result.returns.dtype == np.float64
    assert result.lengths.shape == (8,) and result.lengths.dtype == np.int64
    np.testing.assert_array_equal(result.seeds, np.arange(8))
    # One batched call per step, on the running episodes only: the longest episode's length.
    assert len(recorder.calls) == result.lengths.max()
    assert sum(len(a) for _, a in recorder.calls) == result.lengths.sum()
    assert all(obs.dtype == np.float32 and obs.shape[1] == 2 for obs, _ in recorder.calls)

    actions = per_episode_actions(recorder.calls, result.lengths)
    returns, lengths = single_env_returns("maze-5", result.seeds, actions)
    np.testing.assert_array_equal(result.returns, returns)
    np.testing.assert_array_equal(result.lengths, lengths)
    assert result.mean == float(np.mean(returns)) and result.std == float(np.std(returns))
    assert result.normalised == normalised_score("maze-5", result.mean, 2)
    if policy == "around_the_wall":  # both endings occur: the batch shrinks as goals are hit
        assert (result.lengths < 150).any() and (result.lengths == 150).any()
        assert result.returns.max() > 90 and result.returns.min() == pytest.approx(-7.5)


def test_maze_evaluation_is_reproducible_and_depends_on_the_seed():
    a = evaluate(random_policy(0), "maze-5", {"bins": 2}, episodes=6, seed=11)
    b = evaluate(random_policy(0), "maze-5", {"bins": 2}, episodes=6, seed=11)
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    c = evaluate(around_the_wall, "maze-5", None, episodes=6, seed=0)
    d = evaluate(around_the_wall, "maze-5", None, episodes=6, seed=1)
    # Same policy, seeds shifted by one: episodes 1..5 of c are episodes 0..4 of d.
    np.testing.assert_array_equal(c.returns[1:], d.returns[:5])


def test_evaluation_env_kwargs_and_reference_bins():
    assert env_make_kwargs("maze-5", {"bins": 2, "grid": "actuator"}) == {"bins": 2}
    assert env_make_kwargs("finger", {"bins": 3, "grid": "unit"}) == {"bins": 3, "grid": "unit"}
    assert env_make_kwargs("cheetah", None) == {}
    with pytest.raises(ValueError, match="continuous"):
        env_make_kwargs("cheetah", {"bins": 3, "continuous": True})
    assert reference_bins({"bins": 3}) == 3
    assert reference_bins({"bins": [5, 5, 5]}) == 5
    assert reference_bins({"bins": [3, 5]}) == -1
    assert reference_bins({}) is None


def test_evaluation_without_reference_score_and_bad_policy_output():
    result = evaluate(lambda obs: np.zeros((len(obs), 12), np.int64), "merlion", {"bins": 2},
                      episodes=2)
    assert result.normalised is None  # MERLION publishes no reference score
    # All actuators off: the agent stays put unless noise moves it; it never reaches the goal.
    np.testing.assert_array_equal(result.lengths, [60, 60])
    with pytest.raises(ValueError, match=r"shape \(3, 5\)"):
        evaluate(lambda obs: np.zeros((len(obs), 4), np.int64), "maze-5", episodes=3)


def test_dmc_evaluation_runs_to_the_time_limit():
    ones = lambda obs: np.ones((len(obs), 2), np.int64)  # noqa: E731
    a = evaluate(ones, "finger", {"bins": 3, "grid": "unit"}, episodes=2, seed=0)
    np.testing.assert_array_equal(a.lengths, [1000, 1000])  # finger never terminates: truncation
    assert np.isfinite(a.returns).all()
    assert a.normalised == normalised_score("finger", a.mean, 3)
    b = evaluate(ones, "finger", {"bins": 3, "grid": "unit"}, episodes=2, seed=0)  # reused envs
    np.testing.assert_array_equal(a.returns, b.returns)


# ============================================================================= run directories
def write_run(root, name, *, actor, algo, seed, evals, dataset_id="cheetah-me", env="cheetah",
              reference_scores=None, extra_rows=True):
    """A stage-2 run directory: config.json and metrics.jsonl with evaluation rows
    ``(step, return mean, wall-clock seconds)`` interleaved with training-stat rows."""
    run = root / name
    run.mkdir(parents=True)
    config = {"actor": actor, "algo": algo, "seed": seed, "dataset_id": dataset_id, "env": env,
              "reference_scores": reference_scores}
    (run / "config.json").write_text(json.dumps(config))
    lines = []
    for step, mean, wall in evals:
        if extra_rows:
            lines.append({"step": step, "loss/actor": 0.5, "wall_clock_s": wall - 1})
        lines.append({"step": step, "eval_return_mean": mean, "eval_return_std": 2.0,
                      "eval_normalised": None if reference_scores is None else mean / 1000,
                      "wall_clock_s": wall})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return run


def curve(steps, returns, walls):
    return list(zip(steps, returns, walls))


def test_load_run_skips_training_rows_and_keeps_the_latest_evaluation(tmp_path):
    run_dir = write_run(tmp_path, "r", actor="spin", algo="iql", seed=0,
                        evals=curve([0, 5000, 10000], [1.0, 2.0, 3.0], [60, 90, 120]))
    with open(run_dir / "metrics.jsonl", "a") as f:  # a resumed run evaluated step 5000 again
        f.write(json.dumps({"step": 5000, "eval_return_mean": 2.5, "wall_clock_s": 95}) + "\n")
        f.write('{"step": 15000, "eval_ret')  # a line cut by a kill
    run = load_run(run_dir)
    np.testing.assert_array_equal(run.steps, [0, 5000, 10000])
    np.testing.assert_array_equal(run.returns, [1.0, 2.5, 3.0])
    np.testing.assert_array_equal(run.wall_clock, [60.0, 95.0, 120.0])
    assert np.isnan(run.returns_std[1]) and run.returns_std[0] == 2.0
    assert np.isnan(run.normalised).all() and run.final_normalised() is None
    assert run.key == ("cheetah-me", "spin", "iql") and run.final_return() == 3.0


def test_load_run_refuses_other_directories(tmp_path):
    with pytest.raises(ValueError, match="empty.*no config.json"):
        (tmp_path / "empty").mkdir()
        load_run(tmp_path / "empty")
    pre = tmp_path / "pretrain"
    pre.mkdir()
    (pre / "config.json").write_text(json.dumps({"dataset": "x", "objective": "mam"}))
    with pytest.raises(ValueError, match="pretrain.*lacks actor, algo, seed, dataset_id"):
        load_run(pre)
    fresh = write_run(tmp_path, "fresh", actor="spin", algo="iql", seed=0, evals=[])
    with open(fresh / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 100, "loss/actor": 1.0}) + "\n")
    with pytest.raises(ValueError, match="fresh has no evaluations"):
        load_run(fresh)


def test_time_to_target(tmp_path):
    run = load_run(write_run(tmp_path, "r", actor="spin", algo="iql", seed=0,
                             evals=curve([0, 1000, 2000, 3000, 4000],
                                         [10.0, 50.0, 94.9, 95.0, 99.0],
                                         [60.0, 120.0, 180.0, 240.0, 300.0])))
    assert time_to_target(run, 100.0) == 240.0  # first return >= 95
    assert time_to_target(run, 100.0, fraction=0.5) == 120.0  # 50 >= 50 counts
    assert time_to_target(run, 100.0, fraction=1.0) is None
    assert time_to_target(run, 200.0) is None
    assert time_to_target(run, 5.0) == 60.0
    assert return_at_step(run, 2999) == 94.9 and return_at_step(run, 10_000) == 99.0


def test_the_at_step_column_names_the_step_it_was_read_at(tmp_path):
    """A 300-step run compared at the default 10,000 steps is read at its last evaluation:
    the column says @300, not @10,000."""
    short = write_run(tmp_path, "short", actor="spin", algo="iql", seed=0,
                      evals=curve([0, 150, 300], [1.0, 2.0, 3.0], [10, 20, 30]))
    result = compare([short], at_step=10_000, target=6.0)
    [group] = result.values()
    assert group["at_step"] == 10_000 and group["at_step_read"] == 300
    assert group["fraction_at_step_mean"] == pytest.approx(0.5)
    assert "% of target @300 steps" in format_table(result).splitlines()[0]


def test_time_to_target_with_a_negative_target(tmp_path):
    # Maze returns can be negative: "within 5% of -10" is -10.5 or better (not -9.5).
    assert target_threshold(-10.0) == -10.5
    assert target_threshold(100.0) == 95.0 and target_threshold(0.0) == 0.0
    run = load_run(write_run(tmp_path, "r", actor="spin", algo="iql", seed=0, env="maze-5",
                             evals=curve([0, 1, 2, 3], [-20.0, -10.6, -10.4, -9.0],
                                         [10.0, 20.0, 30.0, 40.0])))
    assert time_to_target(run, -10.0) == 30.0
    assert time_to_target(run, -10.0, fraction=1.0) == 40.0  # -9 >= -10, -10.4 is not
    assert time_to_target(run, -5.0) is None


@pytest.fixture
def runs(tmp_path):
    """cheetah-me x iql: factored (3 seeds), spin (2 seeds); cheetah-me x awac: spin only
    (reference scores known); maze-me x iql: saint only (no reference scores)."""
    ref = {"expert": 664.57, "random": 5.39}
    steps = [0, 5000, 10000, 20000]
    dirs = [
        write_run(tmp_path, "f0", actor="factored", algo="iql", seed=0, reference_scores=ref,
                  evals=curve(steps, [0.0, 300.0, 434.0, 600.0], [0, 100, 200, 400])),
        write_run(tmp_path, "f1", actor="factored", algo="iql", seed=1, reference_scores=ref,
                  evals=curve(steps, [0.0, 300.0, 496.0, 640.0], [0, 100, 200, 400])),
        write_run(tmp_path, "f2", actor="factored", algo="iql", seed=2, reference_scores=ref,
                  evals=curve(steps, [0.0, 600.0, 620.0, 620.0], [0, 100, 200, 400])),
        # SPIN's clock starts with stage 1 (300 s here).
        write_run(tmp_path, "s0", actor="spin", algo="iql", seed=0, reference_scores=ref,
                  evals=curve(steps, [100.0, 400.0, 590.0, 650.0], [300, 400, 500, 600])),
        write_run(tmp_path, "s1", actor="spin", algo="iql", seed=1, reference_scores=ref,
                  evals=curve([0, 8000, 16000], [100.0, 310.0, 580.0], [300, 420, 540])),
        write_run(tmp_path, "a0", actor="spin", algo="awac", seed=0, reference_scores=ref,
                  evals=curve(steps, [0.0, 300.0, 640.0, 660.0], [300, 360, 420, 540])),
        write_run(tmp_path, "m0", actor="saint", algo="iql", seed=0, dataset_id="maze-me",
                  env="maze-5", evals=curve([0, 20000], [-7.5, 50.0], [0, 60])),
    ]
    return dirs


def test_compare_groups_and_default_targets(runs):
    result = compare(runs)
    assert list(result) == [("cheetah-me", "spin", "awac"), ("cheetah-me", "spin", "iql"),
                            ("cheetah-me", "factored", "iql"), ("maze-me", "saint", "iql")]

    factored = result[("cheetah-me", "factored", "iql")]
    assert factored["seeds"] == 3
    assert factored["final_return_mean"] == 620.0
    assert factored["final_return_std"] == pytest.approx(math.sqrt(800 / 3))
    assert factored["normalised_mean"] == pytest.approx(0.62)  # the rows' eval_normalised
    assert factored["target"] == 620.0
    assert factored["target_source"] == "factored-iql final (3 seeds)"
    # Threshold 0.95 * 620 = 589: f0 at 400 s (600), f1 at 400 s (640), f2 at 100 s (600).
    assert factored["reached"] == 3
    assert factored["time_to_target_s_mean"] == 300.0
    assert factored["time_to_target_s_std"] == pytest.approx(math.sqrt(20_000))
    # At 10k steps: 434, 496, 620 of 620 -> 0.7, 0.8, 1.0.
    assert factored["fraction_at_step_mean"] == pytest.approx((0.7 + 0.8 + 1.0) / 3)
    assert factored["fraction_at_step_runs"] == 3

    spin = result[("cheetah-me", "spin", "iql")]
    assert spin["seeds"] == 2 and spin["final_return_mean"] == 615.0
    assert spin["final_return_std"] == 35.0
    assert spin["target"] == 620.0  # F-IQL's final, not SPIN's own
    assert spin["reached"] == 1 and spin["time_to_target_s_mean"] == 500.0  # s1 peaks at 580
    assert spin["time_to_target_s_std"] == 0.0
    # s0 at step 10000: 590; s1 at step 8000 (its last evaluation <= 10000): 310.
    assert spin["fraction_at_step_mean"] == pytest.approx((590 / 620 + 310 / 620) / 2)

    awac = result[("cheetah-me", "spin", "awac")]  # no factored-awac runs: reference expert
    assert awac["target"] == 664.57 and awac["target_source"] == "reference expert"
    assert awac["time_to_target_s_mean"] == 420.0  # 640 >= 0.95 * 664.57 = 631.34

    maze = result[("maze-me", "saint", "iql")]  # neither factored runs nor reference scores
    assert maze["target"] is None and maze["target_source"] == "none"
    assert maze["time_to_target_s_mean"] is None and maze["reached"] == 0
    assert maze["fraction_at_step_mean"] is None and maze["normalised_mean"] is None
    assert maze["final_return_mean"] == 50.0 and maze["final_return_std"] == 0.0


def test_compare_with_a_given_target_and_step(runs):
    result = compare(runs, target=500.0, fraction=1.0, at_step=5000)
    spin = result[("cheetah-me", "spin", "iql")]
    assert spin["target_source"] == "given" and spin["target"] == 500.0
    assert spin["reached"] == 2 and spin["time_to_target_s_mean"] == 520.0  # 500 s and 540 s
    assert spin["fraction_at_step_mean"] == pytest.approx((400 + 100) / 2 / 500)  # s1 at step 0
    maze = result[("maze-me", "saint", "iql")]
    assert maze["reached"] == 0 and maze["fraction_at_step_mean"] == pytest.approx(-7.5 / 500)


def test_compare_averages_the_last_evaluations_when_asked(runs, tmp_path):
    result = compare(runs, last=2)
    factored = result[("cheetah-me", "factored", "iql")]
    # Last two evaluations: (434 + 600) / 2, (496 + 640) / 2, (620 + 620) / 2.
    finals = [517.0, 568.0, 620.0]
    assert factored["last"] == 2 and factored["final_return_mean"] == pytest.approx(
        np.mean(finals))
    assert factored["target"] == pytest.approx(np.mean(finals))  # F-IQL's, averaged alike
    assert result[("maze-me", "saint", "iql")]["final_return_mean"] == pytest.approx(21.25)
    everything = compare(runs, last=99)  # more than a run has: all of its evaluations
    assert everything[("maze-me", "saint", "iql")]["final_return_mean"] == pytest.approx(21.25)
    with pytest.raises(ValueError, match="last must be >= 1 evaluation, got 0"):
        compare(runs, last=0)
    res = CliRunner().invoke(spin_train_main, ["compare", *map(str, runs), "--last", "2",
                                               "--plot", str(tmp_path / "c.png")])
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if " factored " in line)
    assert f"{np.mean(finals):.2f} ± {np.std(finals):.2f}" in row


def test_compare_takes_targets_from_runs_it_does_not_compare(runs, tmp_path):
    """Table 4's denominator: F-IQL trained apart (here to 40k steps) sets the target of the
    compared groups of its dataset; the compared F-IQL runs are compared, not used."""
    ref = {"expert": 664.57, "random": 5.39}
    long = [write_run(tmp_path / "long", f"l{i}", actor="factored", algo="iql", seed=i,
                      reference_scores=ref, evals=curve([0, 20000, 40000], [0.0, 700.0, final],
                                                        [0, 300, 600]))
            for i, final in enumerate([800.0, 900.0])]
    result = compare(runs, target_runs=long, last=1)
    for key in [("cheetah-me", "spin", "iql"), ("cheetah-me", "factored", "iql")]:
        assert result[key]["target"] == 850.0
        assert result[key]["target_source"] == "factored-iql final (2 seeds at 40,000 steps)"
    # At 10k steps the compared F-IQL runs reached 434, 496, 620 of 850.
    assert result[("cheetah-me", "factored", "iql")]["fraction_at_step_mean"] == pytest.approx(
        (434 + 496 + 620) / 3 / 850)
    assert result[("cheetah-me", "factored", "iql")]["final_return_mean"] == 620.0  # its own
    # Groups the target runs do not cover fall back as before (awac: the reference expert).
    assert result[("cheetah-me", "spin", "awac")]["target_source"] == "reference expert"
    averaged = compare(runs, target_runs=long, last=2)  # the targets average alike
    assert averaged[("cheetah-me", "spin", "iql")]["target"] == pytest.approx(
        ((700 + 800) / 2 + (700 + 900) / 2) / 2)
    assert compare(runs, target=500.0, target_runs=long)[
        ("cheetah-me", "spin", "iql")]["target_source"] == "given"
    res = CliRunner().invoke(spin_train_main, ["compare", *map(str, runs), "--target-from",
                                               str(long[0]), "--target-from", str(long[1]),
                                               "--plot", str(tmp_path / "c.png")])
    assert res.exit_code == 0, res.output
    assert "850.00 (factored-iql final (2 seeds at 40,000 steps))" in res.output
    res = CliRunner().invoke(spin_train_main, ["compare", *map(str, runs), "--target-from",
                                               str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "nowhere" in res.output and "does not exist" in res.output


def test_format_table_and_csv(runs, tmp_path):
    result = compare(runs)
    table = format_table(result)
    lines = table.splitlines()
    assert len(lines) == 2 + len(result)
    assert lines[0].split()[:4] == ["dataset", "actor", "algo", "seeds"]
    assert set(lines[1]) <= {"-", " "}
    spin_line = next(line for line in lines if "spin" in line and "iql" in line)
    assert "615.00 ± 35.00" in spin_line
    assert "8.3 ± 0.0 (1/2)" in spin_line  # 500 s
    assert "620.00 (factored-iql final (3 seeds))" in spin_line
    assert "- (0/1)" in next(line for line in lines if "maze-me" in line)
    # Aligned: every column starts at the same offset in every row.
    seeds_col = lines[0].index("seeds")
    assert all(line[seeds_col + 4] in "s123" for line in lines[2:])
    # The 0-100 scale: the same cells x100 with one decimal, everything else unchanged.
    spin = next(g for g in result.values() if g["actor"] == "spin" and g["algo"] == "iql")
    percent = format_table(result, "percent").splitlines()
    assert "normalised (0-100)" in percent[0]
    spin_percent = next(line for line in percent if "spin" in line and "iql" in line)
    assert (f"{100 * spin['normalised_mean']:.1f} ± {100 * spin['normalised_std']:.1f}"
            in spin_percent)
    assert f"{spin['normalised_mean']:.3f} ± {spin['normalised_std']:.3f}" in spin_line
    assert spin_percent.replace(" ", "").replace(
        f"{100 * spin['normalised_mean']:.1f}±{100 * spin['normalised_std']:.1f}", "") == \
        spin_line.replace(" ", "").replace(
            f"{spin['normalised_mean']:.3f}±{spin['normalised_std']:.3f}", "")

    path = write_csv(result, tmp_path / "out" / "compare.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    spin = rows[1]
    assert (spin["dataset_id"], spin["actor"], spin["algo"], spin["seeds"]) == (
        "cheetah-me", "spin", "iql", "2")
    assert float(spin["final_return_mean"]) == 615.0
    assert float(spin["time_to_target_s_mean"]) == 500.0 and spin["reached"] == "1"
    assert float(spin["target"]) == 620.0 and spin["env"] == "cheetah"
    assert rows[3]["target"] == "" and rows[3]["time_to_target_s_mean"] == ""


def assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    rgb = np.round(image[..., :3] * 255).astype(np.uint32)
    colours = np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
    assert len(colours) > 10  # curves, bands, text: not a blank canvas


#: matplotlib's default colour cycle (C0, C1, ...), as 0xRRGGBB.
CYCLE = (0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD, 0x8C564B)


def curve_colours(path, min_pixels=150) -> set[int]:
    """Indices of the default-cycle colours drawn opaque on at least ``min_pixels`` pixels."""
    import matplotlib.image

    rgb = np.round(matplotlib.image.imread(path)[..., :3] * 255).astype(np.uint32)
    packed = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    return {i for i, c in enumerate(CYCLE) if int((packed == c).sum()) >= min_pixels}


def test_learning_curve_plots_are_pngs(runs, tmp_path):
    both = plot_learning_curves(runs, tmp_path / "plots" / "curves.png", target=620.0)
    assert_png(both)
    # One curve per (dataset, actor, algo) group: four groups, four cycle colours drawn.
    assert curve_colours(both) == {0, 1, 2, 3}
    steps_only = plot_learning_curves([load_run(r) for r in runs[:5]], tmp_path / "steps.png",
                                      x="step")
    assert_png(steps_only)
    assert curve_colours(steps_only) == {0, 1}  # factored (3 seeds) and spin (2 seeds)
    # One panel is narrower than two.
    import matplotlib.image

    assert matplotlib.image.imread(steps_only).shape[1] < matplotlib.image.imread(both).shape[1]
    with pytest.raises(ValueError, match="x must be"):
        plot_learning_curves(runs, tmp_path / "bad.png", x="epochs")
    assert_png(plot_run(runs[3], tmp_path / "run.png"))
