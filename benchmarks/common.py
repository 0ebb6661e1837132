"""What every benchmark script shares: the machine's description, timing, result files, data."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import statistics
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("spin", "numpy", "zarr", "numcodecs", "fsspec", "s3fs", "mujoco", "dm_control",
            "torch")


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, memory, GPU, Python, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "memory_gib": mem_gib,
        "gpu": gpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def timed(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """min and median wall seconds of ``fn()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"min_s": min(times), "median_s": statistics.median(times), "all_s": times}


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """``results/<name>-<host>-<time>.json``, with the machine description if not given."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{socket.gethostname()}-{stamp}.json"
    path.write_text(json.dumps({"machine": machine_info(), **payload}, indent=2))
    return path


def humanoid_rollouts(steps: int, *, seed: int = 0) -> list[tuple]:
    """Uniform-random-policy humanoid episodes until ``steps`` steps are collected: a list of
    (observations (L+1, 67) float32, actions (L, 21) uint8, rewards (L,) float32, terminated,
    truncated)."""
    from spin_data.collect import run_episode, uniform_random_policy
    from spin_data.envs import make_env

    env = make_env("humanoid")
    policy = uniform_random_policy(env.bin_grid, np.random.default_rng(seed))
    episodes, total, episode_seed = [], 0, seed
    while total < steps:
        e = run_episode(env, policy, seed=episode_seed)
        episodes.append((e.observations, e.actions.astype(np.uint8), e.rewards, e.terminated,
                         e.truncated))
        total += len(e.rewards)
        episode_seed += 1
    return episodes
