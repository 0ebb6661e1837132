"""Checking that a dataset and the environment a run evaluates in describe the same task."""

from __future__ import annotations

import numpy as np

from spin_data.envs.bins import BinGrid


class SchemaMismatch(ValueError):
    """The dataset's observation or action layout differs from the evaluation environment's."""


def check_compatible(
    dataset_name: str, obs_dim: int, grid: BinGrid, env_name: str, env_obs_dim: int,
    env_grid: BinGrid,
) -> None:
    """Raise :class:`SchemaMismatch` naming both sides unless observation dim, N, bins per
    dimension and every bin value agree (values to 1e-9: they come from the same linspace)."""
    problems = []
    if obs_dim != env_obs_dim:
        problems.append(f"observation dim {obs_dim} vs {env_obs_dim}")
    if grid.n_dims != env_grid.n_dims:
        problems.append(f"sub-actions N {grid.n_dims} vs {env_grid.n_dims}")
    elif grid.counts != env_grid.counts:
        problems.append(f"bins {list(grid.counts)} vs {list(env_grid.counts)}")
    else:
        for i, (a, b) in enumerate(zip(grid.values, env_grid.values)):
            if not np.allclose(a, b, rtol=0, atol=1e-9):
                problems.append(f"bin values of dimension {i} {np.round(a, 4).tolist()} vs "
                                f"{np.round(b, 4).tolist()}")
                break
    if problems:
        raise SchemaMismatch(
            f"dataset {dataset_name} does not match environment {env_name}: " + "; ".join(problems)
        )


def check_env(cached, env, env_name: str) -> None:
    """:func:`check_compatible` for a cached dataset and a Gymnasium env made by spin_data."""
    check_compatible(
        f"{cached.metadata.get('dataset_id', '?')} ({cached.location})", cached.obs_dim,
        cached.bin_grid, env_name, int(env.observation_space.shape[0]),
        env.get_wrapper_attr("bin_grid"),
    )
