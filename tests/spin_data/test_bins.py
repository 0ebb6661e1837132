"""BinGrid: index <-> value round trips, nearest-bin quantisation, validation."""

import numpy as np
import pytest

from spin_data.envs.bins import BinGrid, BinGridError


@pytest.mark.parametrize("n_bins", range(2, 31))
def test_round_trip_every_bin_count(n_bins):
    grid = BinGrid.from_bounds([-1.0, -0.8, 0.0], [1.0, 0.8, 1.1], n_bins)
    # every joint index of a few dimensions, as one batch
    idx = np.stack(np.meshgrid(*[np.arange(n_bins)] * 3, indexing="ij"), -1).reshape(-1, 3)
    values = grid.to_values(idx)
    assert values.shape == idx.shape and values.dtype == np.float64
    np.testing.assert_array_equal(grid.quantise(values), idx)
    # endpoints included, evenly spaced
    for i, (lo, hi) in enumerate([(-1.0, 1.0), (-0.8, 0.8), (0.0, 1.1)]):
        np.testing.assert_allclose(grid.values[i], np.linspace(lo, hi, n_bins))
        assert grid.values[i][0] == lo and grid.values[i][-1] == hi


def test_round_trip_per_dimension_counts():
    counts = [2, 3, 5, 30, 7]
    grid = BinGrid.unit(5, counts)
    assert grid.counts == tuple(counts)
    assert grid.joint_size == 2 * 3 * 5 * 30 * 7
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(0, c, size=(4, 50)) for c in counts], axis=-1)  # (4, 50, 5)
    values = grid.to_values(idx)
    assert values.shape == (4, 50, 5)
    np.testing.assert_array_equal(grid.quantise(values), idx)
    assert [len(v) for v in grid.values] == counts


def test_unit_grid_is_the_benchmark_grid():
    grid = BinGrid.unit(2, 3)
    np.testing.assert_array_equal(grid.values[0], [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(grid.to_values([[0, 2], [1, 1]]), [[-1.0, 1.0], [0.0, 0.0]])


@pytest.mark.parametrize("counts", [3, 4, 11, [2, 9, 30]])
def test_quantise_picks_the_nearest_bin(counts):
    grid = BinGrid.from_bounds([-1.0, -0.5, 0.2], [1.0, 2.0, 0.9], counts)
    rng = np.random.default_rng(1)
    # include points beyond the bounds: they go to the end bins
    x = rng.uniform(grid.low - 0.5, grid.high + 0.5, size=(5000, 3))
    got = grid.quantise(x)
    for i, vals in enumerate(grid.values):
        brute = np.abs(x[:, i, None] - vals[None, :]).argmin(axis=1)
        np.testing.assert_array_equal(got[:, i], brute)


def test_quantise_tie_goes_up_and_snap_returns_bin_values():
    grid = BinGrid.unit(1, 3)  # values -1, 0, 1
    assert grid.quantise([[0.5]])[0, 0] == 2
    assert grid.quantise([[-0.5]])[0, 0] == 1
    np.testing.assert_array_equal(grid.snap([[0.3], [-0.9], [7.0]]), [[0.0], [-1.0], [1.0]])


def test_index_dtype_is_smallest_unsigned():
    assert BinGrid.unit(3, 3).index_dtype == np.uint8
    assert BinGrid.unit(3, 256).index_dtype == np.uint8
    assert BinGrid.unit(3, 257).index_dtype == np.uint16


def test_dict_round_trip_and_equality():
    grid = BinGrid.from_bounds([-1, -0.8], [1, 1.1], [3, 5])
    data = grid.to_dict()
    assert data["values"][1] == pytest.approx(np.linspace(-0.8, 1.1, 5).tolist())
    assert BinGrid.from_dict(data) == grid
    assert BinGrid.from_dict(data) != BinGrid.unit(2, [3, 5])


@pytest.mark.parametrize(
    "bins, message",
    [(1, "bins must be >= 2"), (0, "bins must be >= 2"), ([3, 3], "bins list has 2 entries"),
     ([3, 1, 3], "bins must be >= 2"), (2.5, "bins must be an int"), (["3", 3, 3], "integers")],
)
def test_bad_bin_counts_are_rejected(bins, message):
    with pytest.raises(BinGridError, match=message):
        BinGrid.unit(3, bins)


def test_bad_bounds_are_rejected():
    with pytest.raises(BinGridError, match="high > low"):
        BinGrid.from_bounds([0.0], [0.0], 3)


@pytest.mark.parametrize(
    "action, message",
    [([0, 1], r"shape \(\.\.\., 3\)"), ([0, 1, 3], "out of range for dimension 2: accepted 0..2"),
     ([-1, 0, 0], "out of range for dimension 0"), ([0.5, 0, 0], "integer bin indices")],
)
def test_bad_indices_are_rejected(action, message):
    grid = BinGrid.unit(3, 3)
    with pytest.raises(BinGridError, match=message):
        grid.to_values(action)


def test_nan_is_rejected_by_quantise():
    with pytest.raises(BinGridError, match="NaN"):
        BinGrid.unit(2, 3).quantise([0.0, np.nan])
