import os

# Stepping needs no display; rendering (where tested) uses EGL. Set before dm_control is imported.
os.environ.setdefault("MUJOCO_GL", "egl")

import torch

# The tests train and run small networks; on a 2-core machine extra intra-op threads only
# contend with the simulators and with each other.
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def maze_medium_expert(tmp_path_factory):
    """A real maze-5 medium-expert store made by ``spin-data generate``'s library call: PPO
    behaviour policies (test budget) trained here, 20,000 transitions. Shared by the stage-1 and
    stage-2 tests; returns ``(store path, generate summary)``."""
    from spin_data.generate import generate
    from spin_data.recipe import Recipe

    root = tmp_path_factory.mktemp("maze-me")
    recipe = Recipe(env="maze-5", quality="medium-expert", size=20_000, seed=0, budget="test")
    summary = generate(recipe, str(root / "store"), workers=1, cache_dir=str(root / "cache"),
                       progress=False)
    return root / "store", summary
