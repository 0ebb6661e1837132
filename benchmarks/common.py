"""What every benchmark script shares: the machine's description, timing, result files, data;
and, for the training-loop benchmarks (``pretrain.py``, ``policy.py``), the task shapes, the
synthetic store, the command line, and the timing of interleaved step loops (:class:`StepRow`).

torch and spin_train are imported only inside the functions that need them, so the store and
loader benchmarks do not load them by importing this module."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shutil
import socket
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, TypeAlias

import numpy as np

if TYPE_CHECKING:
    import torch

os.environ.setdefault("MUJOCO_GL", "egl")

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("spin", "numpy", "zarr", "numcodecs", "fsspec", "s3fs", "mujoco", "dm_control",
            "torch")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; every core where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


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
    affinity = usable_cores()
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
    """``results/<name>-<host>-<time>.json``, with the machine description if not given; a copy
    also goes into the folder ``$SPIN_BENCHMARK_COPY_TO`` names, when set (``gpu_check.sh``
    gathers its parts' results in the one folder a GPU machine sends back)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{socket.gethostname()}-{stamp}.json"
    path.write_text(json.dumps({"machine": machine_info(), **payload}, indent=2))
    if copy_to := os.environ.get("SPIN_BENCHMARK_COPY_TO"):
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(copy_to) / path.name)
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


# ============================================================================= training-loop benchmarks
#: task -> (observation features D, sub-action dimensions N, bins per dimension, episode length)
TASKS = {
    "humanoid": (67, 21, 3, 1000),
    "cheetah": (17, 6, 3, 1000),
    "finger": (9, 2, 3, 1000),
    "dog30": (223, 38, 30, 1000),
    "maze5": (2, 5, 2, 150),
}

#: One training step's losses: name -> scalar tensor (or float), read on the host only after the
#: clock has stopped.
Losses: TypeAlias = "dict[str, torch.Tensor | float]"


def build_store(path: Path, task: str, steps: int, *, name: str, structured: bool,
                terminate_every: int = 0, seed: int = 0) -> None:
    """A store of the task's shape at ``path`` (dataset id ``<name>-benchmark-<task>``):
    ``max(2, steps // length)`` episodes of N(0, 1) observations and U(0, 1) rewards.

    ``structured``: sub-action i = the bin of the projection ``obs @ w_i`` (quantile edges), so
    actions depend on the state and on each other and a masked loss can fall (``pretrain.py``);
    otherwise uniform random bins (``policy.py``). ``terminate_every`` > 0: every such episode
    (the first included) ends in a true termination, so ``not_done`` is not constant; 0: every
    episode is truncated."""
    from spin_data.envs.bins import BinGrid
    from spin_data.store import DatasetWriter

    D, N, K, length = TASKS[task]
    rng = np.random.default_rng(seed)
    if structured:
        w = rng.standard_normal((D, N)) / math.sqrt(D)
        edges = np.quantile(rng.standard_normal((100_000, D)) @ w,
                            np.linspace(0, 1, K + 1)[1:-1], axis=0)  # (K - 1, N)
    writer = DatasetWriter(path, obs_dim=D, bin_grid=BinGrid.unit(N, K))
    for e in range(max(2, steps // length)):
        obs = rng.standard_normal((length + 1, D), dtype=np.float32)
        if structured:
            actions = ((obs[:-1] @ w)[None] > edges[:, None]).sum(0)  # (L, N) bin indices
        else:
            actions = rng.integers(0, K, (length, N))
        terminated = terminate_every > 0 and e % terminate_every == 0
        writer.add_episode(obs, actions.astype(np.uint8), rng.random(length, np.float32),
                           terminated=terminated, truncated=not terminated, source="random",
                           seed=e)
    writer.publish({"dataset_id": f"{name}-benchmark-{task}"})


@contextmanager
def scratch_store(task: str, steps: int, **store_kwargs: Any) -> Iterator[tuple[Path, Any]]:
    """``(store path, materialised CachedDataset)`` of a :func:`build_store` store (keyword
    arguments go to it) of ``steps`` transitions in a temporary folder, removed on exit."""
    from spin_train.data import materialise

    work = Path(tempfile.mkdtemp(prefix=f"spin-{store_kwargs['name']}-bench-"))
    try:
        print(f"building a {steps:,}-step {task} store ...", flush=True)
        build_store(work / "store", task, steps, **store_kwargs)
        yield work / "store", materialise(work / "store", cache_dir=work / "cache")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def benchmark_parser(description: str, *, batch: int, dataset_steps: int,
                     compile_help: str) -> argparse.ArgumentParser:
    """The options both training-loop benchmarks take (defaults of their own where given)."""
    import torch

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--task", choices=sorted(TASKS), default="humanoid")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help=compile_help)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: every usable core)")
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--n-layers", type=int, default=3)
    parser.add_argument("--dataset-steps", type=int, default=dataset_steps,
                        help="transitions in the synthetic store")
    return parser


def parse_benchmark_args(parser: argparse.ArgumentParser
                         ) -> tuple[argparse.Namespace, int, torch.device]:
    """``(args, threads, device)``: the arguments checked, ``torch.set_num_threads`` applied."""
    import torch

    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1 or args.repeats < 1:
        parser.error("--steps, --warmup and --repeats must be >= 1")
    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for but CUDA is not available on this machine")
    return args, threads, device


def run_payload(args: argparse.Namespace, threads: int, device: torch.device
                ) -> dict[str, Any]:
    """The head of a training-loop benchmark's result file: arguments, threads, device, shape."""
    D, N, K, _ = TASKS[args.task]
    return {"args": vars(args), "threads": threads, "device": str(device),
            "task_shape": {"obs_dim": D, "n_dims": N, "bins": K}}


@dataclass
class StepRow:
    """One timed loop (a row of the table): ``step()`` runs one training step and returns its
    :data:`Losses`; ``rates`` gets one steps/s figure per repeat, ``first`` the losses of the
    first warm-up step and ``last`` those of the last timed step (as floats), ``warmup_s`` the
    wall time of the warm-up."""

    name: str
    step: Callable[[], Losses]
    rates: list[float] = field(default_factory=list)
    first: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    warmup_s: float = 0.0


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op off CUDA)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def warm_up(row: StepRow, steps: int, device: torch.device) -> None:
    """``steps`` untimed steps; ``row.first`` = the first step's losses, ``row.warmup_s``."""
    start = time.perf_counter()
    row.first = {k: float(v) for k, v in row.step().items()}
    for _ in range(steps - 1):
        row.step()
    sync(device)
    row.warmup_s = time.perf_counter() - start


def timed_steps(row: StepRow, steps: int, device: torch.device) -> None:
    """``steps`` steps between two device synchronisations; appends their steps/s to
    ``row.rates`` and sets ``row.last`` to the last step's losses (read after the clock)."""
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        losses = row.step()
    sync(device)
    row.rates.append(steps / (time.perf_counter() - start))
    row.last = {k: float(v) for k, v in losses.items()}


def time_rows(rows: Sequence[StepRow], *, warmup: int, steps: int, repeats: int,
              device: torch.device) -> None:
    """Warm every row up, then ``repeats`` rounds of :func:`timed_steps` with the rows
    interleaved within each round (drift on a shared host hits every row alike), printing
    progress; then exit if any recorded loss is not finite."""
    for row in rows:
        print(f"warming up: {row.name} ...", flush=True)
        warm_up(row, warmup, device)
    for r in range(repeats):
        for row in rows:
            timed_steps(row, steps, device)
        print(f"repeat {r + 1}/{repeats}: " + ", ".join(
            f"{row.rates[-1]:.3g}" for row in rows) + " steps/s", flush=True)
    for row in rows:
        bad = {k: v for k, v in (row.first | {f"last {k}": v for k, v in row.last.items()}).items()
               if not math.isfinite(v)}
        if bad:
            raise SystemExit(f"{row.name}: non-finite losses {bad}")


def rate_stats(rates: Sequence[float]) -> dict[str, Any]:
    """A row's ``steps_per_s`` entry: min, median, max and every figure."""
    return {"min": min(rates), "median": statistics.median(rates), "max": max(rates),
            "all": list(rates)}
