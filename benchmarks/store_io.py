"""Writing and reading a whole dataset store on local disk, against plain ``.npy`` files.

1. **Write**: --steps humanoid-shaped transitions of random data (observations 67 float32
   N(0, 1), 21 actions uint8 in {0, 1, 2}, float32 rewards, 1000-step truncated episodes) through
   ``DatasetWriter.add_episode`` (collect) and ``publish`` (build + checksums + atomic rename),
   timed separately, with ``publish(workers=1)`` and ``publish(workers=2)``.
2. **Read**: the whole store into numpy via ``open_dataset(...).transitions()`` and via
   ``Dataset.array`` for every array of the schema, against ``np.load`` of the same arrays saved as
   ``.npy`` files (page cache warm for both: every file was just written).
3. **Size**: the store's bytes on disk against the raw bytes of its arrays, for the random data and
   for real humanoid uniform-random-policy rollouts (--real-episodes episodes of 1000 steps).

    python benchmarks/store_io.py [--steps 1000000] [--repeats 3] [--real-episodes 50]

Prints tables and writes ``benchmarks/results/store_io-<host>-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import spin_data  # noqa: F401  (first: pins numpy's BLAS kernels, spin_data/blas.py)
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import humanoid_rollouts, machine_info, write_results  # noqa: E402

OBS_DIM, N_ACTIONS, EPISODE_STEPS = 67, 21, 1000
METADATA = {"dataset_id": "bench-humanoid-random-v0", "env": {"name": "humanoid", "kwargs": {}}}


def stats(times: list[float]) -> dict:
    return {"min_s": min(times), "median_s": statistics.median(times), "all_s": times}


def du(path: Path) -> int:
    """Bytes of the files under a directory (the store's size on disk, without block rounding)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def random_data(steps: int, seed: int = 0):
    """Pre-generated random episodes (generation is not part of any timing)."""
    rng = np.random.default_rng(seed)
    n_episodes = -(-steps // EPISODE_STEPS)
    lengths = [EPISODE_STEPS] * (steps // EPISODE_STEPS)
    if steps % EPISODE_STEPS:
        lengths.append(steps % EPISODE_STEPS)
    obs = rng.standard_normal((steps + n_episodes, OBS_DIM), dtype=np.float32)
    actions = rng.integers(0, 3, (steps, N_ACTIONS), dtype=np.uint8)
    rewards = rng.random(steps, dtype=np.float32)
    episodes, o, s = [], 0, 0
    for length in lengths:
        episodes.append((obs[o : o + length + 1], actions[s : s + length],
                         rewards[s : s + length], False, True))
        o += length + 1
        s += length
    return episodes


def collect(location: Path, grid, episodes) -> float:
    from spin_data.store import DatasetWriter

    start = time.perf_counter()
    writer = DatasetWriter(location, obs_dim=OBS_DIM, bin_grid=grid)
    for i, (obs, act, rew, te, tr) in enumerate(episodes):
        writer.add_episode(obs, act, rew, terminated=te, truncated=tr, source="random", seed=i)
    writer.close()
    return time.perf_counter() - start


def bench_write(root: Path, grid, episodes, repeats: int) -> dict:
    from spin_data.store import publish

    out = {}
    for workers in (1, 2):
        adds, pubs, totals = [], [], []
        for r in range(repeats):
            location = root / f"write-w{workers}-{r}"
            add = collect(location, grid, episodes)
            start = time.perf_counter()
            publish(location, METADATA, workers=workers)
            pub = time.perf_counter() - start
            adds.append(add)
            pubs.append(pub)
            totals.append(add + pub)
            if r < repeats - 1 or workers == 1:
                shutil.rmtree(location)
        out[f"workers={workers}"] = {"add_episode": stats(adds), "publish": stats(pubs),
                                     "total": stats(totals)}
    return out


def bench_read(store: Path, npy_dir: Path, repeats: int) -> dict:
    from spin_data import open_dataset
    from spin_data.store import schema

    ds = open_dataset(store)
    arrays = {path: ds.array(path) for path in schema.ARRAY_PATHS}
    npy_dir.mkdir(parents=True, exist_ok=True)
    for path, arr in arrays.items():
        np.save(npy_dir / (path.replace("/", "__") + ".npy"), arr)
    raw = sum(a.nbytes for a in arrays.values())

    def transitions():
        return open_dataset(store).transitions()

    def every_array():
        d = open_dataset(store)
        return {p: d.array(p) for p in schema.ARRAY_PATHS}

    def npy():
        return {p: np.load(npy_dir / (p.replace("/", "__") + ".npy")) for p in schema.ARRAY_PATHS}

    def npy_transitions():
        """What transitions() returns, built from .npy files (next observations included)."""
        a = npy()
        obs = a["steps/observations"]
        nxt = np.empty_like(obs)
        nxt[:-1] = obs[1:]
        nxt[a["episodes/ends"] - 1] = a["episodes/final_observations"]
        return {"observations": obs, "actions": a["steps/actions"],
                "rewards": a["steps/rewards"], "next_observations": nxt,
                "terminations": a["steps/terminations"],
                "truncations": a["steps/truncations"]}

    # Check once that all four return the same numbers.
    t_zarr, t_npy = transitions(), npy_transitions()
    for k in t_zarr:
        assert np.array_equal(t_zarr[k], t_npy[k]), k
    del t_zarr, t_npy
    out = {"raw_mb": raw / 1e6}
    for name, fn in (("zarr every array", every_array), ("npy every array", npy),
                     ("zarr transitions()", transitions), ("npy transitions", npy_transitions)):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
            del result
        out[name] = stats(times)
    out["ratio every array (zarr/npy, min)"] = (out["zarr every array"]["min_s"]
                                                / out["npy every array"]["min_s"])
    out["ratio transitions (zarr/npy, min)"] = (out["zarr transitions()"]["min_s"]
                                                / out["npy transitions"]["min_s"])
    return out


def size_report(store: Path) -> dict:
    from spin_data import open_dataset
    from spin_data.store import schema

    ds = open_dataset(store)
    per_array = {}
    for path in schema.ARRAY_PATHS:
        raw = ds.array(path).nbytes
        stored = du(store / path)
        per_array[path] = {"raw_bytes": raw, "stored_bytes": stored,
                           "ratio": raw / stored if stored else None}
    raw = sum(v["raw_bytes"] for v in per_array.values())
    stored = du(store)
    return {"steps": ds.n_steps, "episodes": ds.n_episodes, "raw_bytes": raw,
            "stored_bytes": stored, "ratio": raw / stored, "arrays": per_array}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--real-episodes", type=int, default=50,
                        help="humanoid random-policy episodes for the real-data size row")
    parser.add_argument("--workdir", default=None,
                        help="where stores are built (default: a temporary directory)")
    args = parser.parse_args(argv)

    from spin_data.envs import make_env

    grid = make_env("humanoid").bin_grid
    assert grid.n_dims == N_ACTIONS
    info = machine_info()
    print(f"{info['cpu']} | {info['cores']} cores | Python {info['python']} | "
          f"zarr {info['versions']['zarr']} | numcodecs {info['versions']['numcodecs']}")
    root = Path(tempfile.mkdtemp(prefix="spin-store-io-", dir=args.workdir))
    try:
        episodes = random_data(args.steps)
        print(f"\n== write {args.steps:,} steps ({len(episodes)} episodes), best / median of "
              f"{args.repeats} ==")
        write = bench_write(root, grid, episodes, args.repeats)
        print(f"{'':<12} {'add_episode s':>15} {'publish s':>15} {'total s':>15} {'steps/s':>11}")
        for key, res in write.items():
            cells = " ".join(f"{res[k]['min_s']:>7.2f} /{res[k]['median_s']:>6.2f}"
                             for k in ("add_episode", "publish", "total"))
            print(f"{key:<12} {cells} {args.steps / res['total']['min_s']:>11,.0f}")

        store = root / f"write-w2-{args.repeats - 1}"
        print(f"\n== read the whole store into numpy, best / median of {args.repeats} ==")
        read = bench_read(store, root / "npy", args.repeats)
        print(f"raw {read['raw_mb']:.0f} MB")
        for name in ("zarr every array", "npy every array", "zarr transitions()",
                     "npy transitions"):
            r = read[name]
            print(f"{name:<20} {r['min_s']:>7.2f} /{r['median_s']:>6.2f} s "
                  f"{read['raw_mb'] / r['min_s']:>7.0f} MB/s")
        print(f"zarr / npy: every array {read['ratio every array (zarr/npy, min)']:.2f}x, "
              f"transitions {read['ratio transitions (zarr/npy, min)']:.2f}x")

        sizes = {"random": size_report(store)}
        del episodes
        print(f"\ncollecting {args.real_episodes} humanoid random-policy episodes ...", flush=True)
        start = time.perf_counter()
        real = humanoid_rollouts(args.real_episodes * EPISODE_STEPS)
        print(f"  {sum(len(e[2]) for e in real):,} steps in {time.perf_counter() - start:.1f} s")
        from spin_data.store import DatasetWriter

        writer = DatasetWriter(root / "real", obs_dim=OBS_DIM, bin_grid=grid)
        for i, (obs, act, rew, te, tr) in enumerate(real):
            writer.add_episode(obs, act, rew, terminated=te, truncated=tr, source="random",
                               seed=i)
        writer.publish(METADATA)
        sizes["real humanoid"] = size_report(root / "real")
        print("\n== store size on disk vs raw array bytes ==")
        print(f"{'data':<14} {'steps':>9} {'raw MB':>9} {'store MB':>9} {'ratio':>6}   "
              f"obs / actions / rewards ratio")
        for name, s in sizes.items():
            a = s["arrays"]
            print(f"{name:<14} {s['steps']:>9,} {s['raw_bytes'] / 1e6:>9.1f} "
                  f"{s['stored_bytes'] / 1e6:>9.1f} {s['ratio']:>6.2f}   "
                  f"{a['steps/observations']['ratio']:.2f} / {a['steps/actions']['ratio']:.2f} / "
                  f"{a['steps/rewards']['ratio']:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    path = write_results("store_io", {
        "benchmark": "store_io",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "args": vars(args), "machine": info,
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "write": write, "read": read, "sizes": sizes,
    })
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
