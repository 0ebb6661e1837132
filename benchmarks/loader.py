"""spin_train's data path against what it replaces, side by side in one run.

Loads: a humanoid-shaped store (D = 67, N = 21, 1000-step episodes) loaded
  - the reference code's way: unpickle a list of (s, a, r, s', done) tuples, stack it with list
    comprehensions into numpy, make tensors (every run pays this);
  - spin's first load: read the Zarr store, fill the .npy cache, place the tensors;
  - spin's second load: cache hit, place the tensors;
  - what a first load spends verifying the store's checksums: its reads alone, and with them.
Sampling (batches/s at batch 256 and 1024):
  - ceiling: ``torch.randint`` indexing five preloaded tensors (s, a, r, s', not_done);
  - spin, device placement and host placement;
  - a PyTorch DataLoader over the Zarr store (what a user would write instead).

    python benchmarks/loader.py [--steps 1000000] [--repeats 5] [--device cpu|cuda]

Prints a table and writes ``benchmarks/results/loader-<device>.json``.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import spin_data  # noqa: F401  (first: pins numpy's BLAS kernels, spin_data/blas.py)
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import timed, write_results  # noqa: E402

from spin_data.envs.bins import BinGrid  # noqa: E402
from spin_data.store import DatasetWriter, open_dataset  # noqa: E402
from spin_data.store.schema import ARRAY_PATHS  # noqa: E402
from spin_train.data import TransitionBuffer, materialise  # noqa: E402
from spin_train.data.cache import verified_arrays  # noqa: E402

D, N, EPISODE = 67, 21, 1000


def build_store(path: Path, steps: int) -> None:
    """Random humanoid-shaped episodes (the loader does not care what the numbers mean)."""
    rng = np.random.default_rng(0)
    writer = DatasetWriter(path, obs_dim=D, bin_grid=BinGrid.unit(N, 3))
    for e in range(steps // EPISODE):
        writer.add_episode(rng.standard_normal((EPISODE + 1, D), dtype=np.float32),
                           rng.integers(0, 3, (EPISODE, N)), rng.random(EPISODE, np.float32),
                           terminated=False, truncated=True, source="random", seed=e)
    writer.publish({"dataset_id": "loader-benchmark"})


def build_reference_pickle(store: Path, path: Path) -> None:
    """The reference code's dataset file: a pickled list of (s, a, r, s', done) tuples."""
    steps = open_dataset(store).transitions()
    tuples = [(steps["observations"][i], steps["actions"][i].astype(np.int64),
               float(steps["rewards"][i]), steps["next_observations"][i],
               bool(steps["terminations"][i] or steps["truncations"][i]))
              for i in range(len(steps["rewards"]))]
    with open(path, "wb") as fh:
        pickle.dump(tuples, fh, protocol=pickle.HIGHEST_PROTOCOL)


def reference_load(path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    with open(path, "rb") as fh:
        data = pickle.load(fh)  # the benchmark's own file: this is the path being measured
    s = torch.tensor(np.array([t[0] for t in data]), device=device)
    a = torch.tensor(np.array([t[1] for t in data]), device=device)
    r = torch.tensor(np.array([t[2] for t in data], dtype=np.float32), device=device)
    s2 = torch.tensor(np.array([t[3] for t in data]), device=device)
    nd = torch.tensor(np.array([1.0 - t[4] for t in data], dtype=np.float32), device=device)
    return {"s": s, "a": a, "r": r, "s2": s2, "nd": nd}


def batches_per_second(sample, n_batches: int, repeats: int, device: torch.device) -> dict:
    def run():
        for _ in range(n_batches):
            sample()
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()  # warm-up
    rates = [n_batches / t for t in timed(run, repeats)["all_s"]]
    return {"min": min(rates), "median": float(np.median(rates)), "max": max(rates)}


class ZarrRows(torch.utils.data.Dataset):
    """Row access straight into the compressed store: the DataLoader a user would write."""

    def __init__(self, location: str) -> None:
        ds = open_dataset(location)
        self.g = ds.group
        self.ends = set((ds.episode_ends - 1).tolist())
        self.n = ds.n_steps

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        g = self.g
        obs = g["steps/observations"][i]
        nxt = obs if i in self.ends else g["steps/observations"][i + 1]
        return (obs, g["steps/actions"][i].astype(np.int64), g["steps/rewards"][i], nxt,
                np.float32(1.0 - g["steps/terminations"][i]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=2000, help="batches per timed sampling run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workdir", default=None, help="keep the store and pickle here")
    args = parser.parse_args()
    device = torch.device(args.device)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="spin-loader-"))
    work.mkdir(parents=True, exist_ok=True)
    store, pkl, cache = work / "store", work / "reference.pkl", work / "cache"
    if not store.exists():
        print(f"building a {args.steps:,}-step store in {store} ...", flush=True)
        build_store(store, args.steps)
    if not pkl.exists():
        print("building the reference pickle ...", flush=True)
        build_reference_pickle(store, pkl)

    load_repeats = max(2, min(args.repeats, 3))
    results: dict = {"steps": args.steps, "device": str(device), "loads_s": {}, "sampling": {}}

    results["loads_s"]["reference pickle"] = timed(lambda: reference_load(pkl, device),
                                                   load_repeats)
    for placement in ("host", "device"):
        def first_load(placement=placement):
            shutil.rmtree(cache, ignore_errors=True)
            TransitionBuffer(materialise(store, cache_dir=cache), device=device,
                             placement=placement)

        def second_load(placement=placement):
            TransitionBuffer(materialise(store, cache_dir=cache), device=device,
                             placement=placement)

        results["loads_s"][f"spin first load ({placement})"] = timed(first_load, load_repeats)
        results["loads_s"][f"spin second load ({placement})"] = timed(second_load, load_repeats)

    # What verifying the store's checksums adds to a first load (every array is read anyway).
    ds = open_dataset(store)
    results["loads_s"]["first load's reads alone (no checksums)"] = timed(
        lambda: [ds.array(path) for path in ARRAY_PATHS], load_repeats)
    results["loads_s"]["first load's reads + checksums (verified_arrays)"] = timed(
        lambda: verified_arrays(ds), load_repeats)

    tensors = reference_load(pkl, device)
    T = tensors["r"].shape[0]
    buffers = {p: TransitionBuffer(materialise(store, cache_dir=cache), device=device,
                                   placement=p, seed=0) for p in ("device", "host")}
    zarr_rows = ZarrRows(str(store))
    for B in (256, 1024):
        gen = torch.Generator(device=device).manual_seed(0)

        def ceiling(B=B, gen=gen):
            idx = torch.randint(0, T, (B,), device=device, generator=gen)
            return (tensors["s"][idx], tensors["a"][idx], tensors["r"][idx], tensors["s2"][idx],
                    tensors["nd"][idx])

        row = {"ceiling (preloaded tensors)": batches_per_second(ceiling, args.batches,
                                                                 args.repeats, device)}
        for placement, buf in buffers.items():
            row[f"spin {placement} placement"] = batches_per_second(
                lambda buf=buf, B=B: buf.sample(B), args.batches, args.repeats, device)
        loader = torch.utils.data.DataLoader(zarr_rows, batch_size=B, shuffle=True,
                                             generator=torch.Generator().manual_seed(0))
        it = iter(loader)
        n_zarr = 3
        start = time.perf_counter()
        for _ in range(n_zarr):
            next(it)
        rate = n_zarr / (time.perf_counter() - start)
        row["DataLoader over Zarr"] = {"min": rate, "median": rate, "max": rate,
                                       "note": f"{n_zarr} batches"}
        results["sampling"][str(B)] = row

    loads = results["loads_s"]
    ref = loads["reference pickle"]["median_s"]
    print(f"\nloads of {args.steps:,} transitions on {device} (seconds, min / median)")
    for name, s in loads.items():
        print(f"  {name:32s} {s['min_s']:8.2f} / {s['median_s']:8.2f}")
    results["ratios"] = {}
    for placement in ("host", "device"):
        first = loads[f"spin first load ({placement})"]["median_s"]
        second = loads[f"spin second load ({placement})"]["median_s"]
        results["ratios"][placement] = {"first_vs_reference": ref / first,
                                        "second_vs_first": first / second}
        print(f"  {placement}: first load {ref / first:.1f}x faster than the reference; "
              f"second load {first / second:.1f}x faster than the first")
    for B, row in results["sampling"].items():
        ceiling_rate = row["ceiling (preloaded tensors)"]["median"]
        print(f"\nbatches/s at batch {B} (min / median)")
        for name, r in row.items():
            print(f"  {name:28s} {r['min']:10.1f} / {r['median']:10.1f}"
                  f"   ({r['median'] / ceiling_rate:6.1%} of ceiling)")
    print(f"\nwrote {write_results(f'loader-{device.type}', {'args': vars(args), **results})}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
