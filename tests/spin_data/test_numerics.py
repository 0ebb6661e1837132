"""Datasets that do not depend on the CPU: the numeric code paths a CPU picks must not move them.

Another CPU is played here by forcing the other code paths on this one, in subprocesses (both
libraries read their variables once, when they load): ``OPENBLAS_CORETYPE`` for numpy's
OpenBLAS, which dm_control's tasks call while they simulate, and ``MKL_CBWR`` for the MKL inside
torch, which runs the behaviour policy's network.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from spin_data.blas import CORETYPE, cpu_runs_pinned_kernels, openblas_core

REPO = Path(__file__).resolve().parents[2]
FISH_MEDIUM = (REPO / "datasets" / "ladders" / "fish-swim-3bins-sac-sbx" / "checkpoints"
               / "step-450000.safetensors")


def run_python(code: str, env: dict[str, str]) -> dict:
    """Run ``code`` in a fresh interpreter with ``env`` added (OpenBLAS / MKL variables
    removed first, so each run starts from the machine's own choice); its printed JSON."""
    base = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "MKL_CBWR")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


#: 200 fish episodes reset from their seeds and stepped 5 times: a sha256 of the physics states.
FISH_STATES = """
import hashlib, json, numpy as np
from spin_data.blas import openblas_core
from spin_data.envs import registry
env = registry.make_env("fish", bins=3, grid="unit")
physics, h = env._env.physics, hashlib.sha256()
for seed in range(200):
    env.reset(seed=seed)
    for _ in range(5):
        env.step(np.ones(env.bin_grid.n_dims, dtype=np.int64))
    h.update(physics.data.qpos.tobytes() + physics.data.qvel.tobytes())
print(json.dumps({"core": openblas_core(), "states": h.hexdigest()}))
"""


def other_coretype() -> str:
    """An OpenBLAS kernel set this CPU runs besides the pinned one."""
    flags = Path("/proc/cpuinfo").read_text()
    return "SkylakeX" if " avx512f " in flags else "Sandybridge"


@pytest.mark.skipif(not cpu_runs_pinned_kernels() or openblas_core() is None,
                    reason="needs numpy's own OpenBLAS on a Linux CPU with AVX2 and FMA")
def test_simulation_is_the_same_whatever_openblas_kernels_the_cpu_would_pick():
    other = other_coretype()
    own = run_python("import spin_data\n" + FISH_STATES, {})
    forced = run_python("import spin_data\n" + FISH_STATES, {"OPENBLAS_CORETYPE": other})
    # Importing spin_data pins the kernels before numpy loads, whatever the variable said.
    assert own["core"] == forced["core"] == CORETYPE
    assert own["states"] == forced["states"]
    # numpy loaded first: the pin cannot apply, and the other kernels run.
    unpinned = run_python("import numpy\nimport spin_data\n" + FISH_STATES,
                          {"OPENBLAS_CORETYPE": other})
    assert unpinned["core"] == other
    if other == "SkylakeX":  # measured: fish's resets differ in their last bits under these
        assert unpinned["states"] != own["states"]


#: The fish medium policy's pre-tanh means and modes on 20,000 observations, saved to OUT.
POLICY_OUTPUTS = """
import json, sys, numpy as np, torch
torch.set_num_threads(1)
from spin_data.behaviour import load_policy
obs = np.random.default_rng(0).standard_normal((20000, 24)).astype(np.float32)
policy = load_policy(CHECKPOINT)
dist = policy.distribution(obs)
float32 = load_policy(CHECKPOINT).module.float()  # SB3's own float32 forward, for comparison
with torch.no_grad():
    mean32 = float32.actor.get_action_dist_params(torch.as_tensor(obs))[0].numpy()
np.savez(OUT, mean=dist.mean, std=dist.std, mode=policy.act(obs, deterministic=True),
         mean32=mean32)
print(json.dumps({"dtype": str(dist.mean.dtype)}))
"""


def test_behaviour_policy_acts_the_same_on_either_mkl_code_path(tmp_path):
    outputs = {}
    for name, env in (("auto", {}), ("compatible", {"MKL_CBWR": "COMPATIBLE"})):
        code = (f"CHECKPOINT = {str(FISH_MEDIUM)!r}\nOUT = {str(tmp_path / name)!r}\n"
                + POLICY_OUTPUTS)
        assert run_python(code, env) == {"dtype": "float64"}
        outputs[name] = np.load(tmp_path / f"{name}.npz")
    auto, compatible = outputs["auto"], outputs["compatible"]
    # float64: the two code paths agree to rounding (about 1e-14 measured), so no bin moves.
    assert np.abs(auto["mean"] - compatible["mean"]).max() < 1e-10
    assert np.abs(auto["std"] - compatible["std"]).max() < 1e-10
    assert np.array_equal(auto["mode"], compatible["mode"])
    # The float32 forward it replaced agrees with it only to float32's precision...
    assert np.abs(auto["mean"] - auto["mean32"]).max() < 1e-4
    if torch.backends.mkl.is_available():
        # ...and moves with MKL's code path (measured: up to 5e-6 on fish's data).
        assert np.abs(auto["mean32"] - compatible["mean32"]).max() > 1e-8


@pytest.mark.skipif(not cpu_runs_pinned_kernels() or openblas_core() is None,
                    reason="needs numpy's own OpenBLAS on a Linux CPU with AVX2 and FMA")
def test_a_dataset_made_without_the_pinned_kernels_says_so(tmp_path):
    make = f"""
import json
from spin_data.generate import generate
from spin_data.recipe import Recipe
from spin_data.store import open_dataset
recipe = Recipe(env="maze-5", quality="random", size=300, seed=0, episodes_per_task=4)
generate(recipe, {str(tmp_path)!r} + "/" + NAME, progress=False)
md = open_dataset({str(tmp_path)!r} + "/" + NAME).metadata
print(json.dumps({{"numerics": md["numerics"], "warnings": md["warnings"]}}))
"""
    other = other_coretype()
    pinned = run_python("import spin_data\nNAME = 'pinned'\n" + make, {"OPENBLAS_CORETYPE": other})
    assert pinned == {"numerics": {"behaviour_forward": "float64", "openblas_core": CORETYPE},
                      "warnings": []}
    late = run_python("import numpy\nNAME = 'late'\n" + make, {"OPENBLAS_CORETYPE": other})
    assert late["numerics"]["openblas_core"] == other
    [warning] = late["warnings"]
    assert warning.startswith(f"numpy's OpenBLAS runs {other} kernels, not the {CORETYPE} ones")


#: Connects to the Ray cluster at ADDRESS as spin's backends do: the kernels a worker there runs.
RAY_WORKER = """
import json, os, ray
from spin_data.cluster import connect_ray
connect_ray(ADDRESS)

@ray.remote
def kernels():
    import numpy  # noqa: F401  (before spin, so the worker's own environment decides)
    from spin_data.blas import openblas_core
    return {"env": os.environ.get("OPENBLAS_CORETYPE"), "core": openblas_core()}

print(json.dumps(ray.get(kernels.remote())))
"""


@pytest.mark.skipif(not cpu_runs_pinned_kernels() or openblas_core() is None,
                    reason="needs numpy's own OpenBLAS on a Linux CPU with AVX2 and FMA")
def test_workers_of_a_ray_cluster_started_elsewhere_run_the_pinned_kernels():
    """A cluster whose nodes were started with other kernels (another CPU's choice, forced
    here) still runs spin's tasks on the driver's pinned ones."""
    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Ray >= 2.59 starts local clusters with token auth; head and driver share one token.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env.update(auth, OPENBLAS_CORETYPE=other_coretype())
    temp_dir = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths have a length limit
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
         f"--port={port}", "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        worker = run_python(f"ADDRESS = '127.0.0.1:{port}'\n" + RAY_WORKER, auth)
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert worker == {"env": CORETYPE, "core": CORETYPE}
