import os

# Stepping needs no display; rendering (where tested) uses EGL. Set before dm_control is imported.
os.environ.setdefault("MUJOCO_GL", "egl")

# Before numpy loads: tests run with the OpenBLAS kernels the CLIs pin (spin_data/blas.py).
import spin_data  # noqa: E402,F401
import torch  # noqa: E402

# The tests train and run small networks; on a 2-core machine extra intra-op threads only
# contend with the simulators and with each other.
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def behaviour_cache(tmp_path_factory):
    """One behaviour cache for the session: maze-5's PPO (default budget, 300k steps, about 1.5
    minutes on 2 cores) trains once for both maze stores below."""
    return str(tmp_path_factory.mktemp("behaviour-cache"))


def _maze_store(tmp_path_factory, cache, **recipe_kwargs):
    from spin_data.generate import generate
    from spin_data.recipe import Recipe

    root = tmp_path_factory.mktemp("maze-me")
    recipe = Recipe(env="maze-5", quality="medium-expert", size=20_000, seed=0,
                    budget="default", **recipe_kwargs)
    summary = generate(recipe, str(root / "store"), workers=1, cache_dir=cache, progress=False)
    return root / "store", summary


@pytest.fixture(scope="session")
def maze_medium_expert(tmp_path_factory, behaviour_cache):
    """A real maze-5 medium-expert store made by ``spin-data generate``'s library call: PPO
    behaviour policies (default budget: expert about 98) trained here, 20,000 transitions,
    sampled actions. Shared
    by the stage-1 and stage-2 tests; returns ``(store path, generate summary)``."""
    return _maze_store(tmp_path_factory, behaviour_cache)


@pytest.fixture(scope="session")
def maze_deterministic(tmp_path_factory, behaviour_cache):
    """The same recipe with ``deterministic=True``: the same behaviour policies acting with
    their mode, so each source's action tuple is a function of the state."""
    return _maze_store(tmp_path_factory, behaviour_cache, deterministic=True)
