"""Compression codecs for the dataset store: ratio, write MB/s and read MB/s.

Compares the codec spin uses (``schema.compressor``: Blosc-zstd clevel 3 with bit shuffle) with
alternatives, on the store's own chunk/shard layout (``schema.layout``) through zarr-python, for:

    random-obs   N(0, 1) float32 observations, 67 wide (humanoid-shaped)   - worst case
    real-obs     humanoid observations from uniform-random-policy rollouts (tiled to --rows)
    actions      uint8 bin indices in {0, 1, 2}, 21 wide (humanoid's grid)
    bools        per-step flags: True at every 1000th step (an episode end), else False

Arrays live in a zarr MemoryStore, so the figures are codec + zarr pipeline, without disk. Raw MB
are the array's uncompressed bytes; MB/s are raw MB per second of ``array[:] = data`` (write) and
``array[...]`` (read).

Real observations are tiled from --real-steps steps of rollouts; a chunk (4096 rows of 67
float32) is far shorter than one tile, so tiling does not let a codec see repeats.

    python benchmarks/store_codecs.py [--rows 1048576] [--repeats 3] [--real-steps 20000]

Prints a table and writes ``benchmarks/results/store_codecs-<host>-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import time
from pathlib import Path

import spin_data  # noqa: F401  (first: pins numpy's BLAS kernels, spin_data/blas.py)
import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import humanoid_rollouts, machine_info, timed, write_results  # noqa: E402


# ----------------------------------------------------------------------------- codecs
def codecs(kind: str) -> dict:
    """Name -> zarr compressor list (None: no compression) for an array of dtype kind."""
    from zarr.codecs import BloscCodec, BloscShuffle, ZstdCodec

    from spin_data.store import schema

    current = schema.compressor(np.dtype("float32" if kind == "f" else "uint8"))
    return {
        "none": None,
        "blosc-zstd3-shuffle": [BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle)],
        "blosc-zstd3-bitshuffle": [BloscCodec(cname="zstd", clevel=3,
                                              shuffle=BloscShuffle.bitshuffle)],
        "blosc-zstd1-shuffle": [BloscCodec(cname="zstd", clevel=1, shuffle=BloscShuffle.shuffle)],
        "zstd1": [ZstdCodec(level=1)],
        "zstd3": [ZstdCodec(level=3)],
        "blosc-lz4-shuffle": [BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.shuffle)],
        "blosc-lz4-bitshuffle": [BloscCodec(cname="lz4", clevel=5,
                                            shuffle=BloscShuffle.bitshuffle)],
        "_current": [current],
    }


def _same_codec(a, b) -> bool:
    keys = ("cname", "clevel", "shuffle", "level")
    return type(a) is type(b) and all(getattr(a, k, None) == getattr(b, k, None) for k in keys)


def bench_array(data: np.ndarray, per: str, width: str | None, compressors, repeats: int):
    import zarr
    from zarr.storage import MemoryStore

    from spin_data.store import schema

    spec = schema.ArraySpec("bench", str(data.dtype), per, width)
    chunks, shards = schema.layout(spec, data.shape, data.dtype)
    state = {}

    def write():
        store = MemoryStore()
        arr = zarr.create_array(store, shape=data.shape, dtype=data.dtype, chunks=chunks,
                                shards=shards, compressors=compressors, fill_value=0,
                                zarr_format=3)
        arr[:] = data
        state["store"], state["array"] = store, arr

    w = timed(write, repeats)
    stored = sum(len(v) for k, v in state["store"]._store_dict.items()
                 if not k.endswith("zarr.json"))
    out = {}

    def read():
        out["data"] = state["array"][...]

    r = timed(read, repeats)
    assert np.array_equal(out["data"], data)
    mb = data.nbytes / 1e6
    return {
        "raw_mb": mb, "stored_mb": stored / 1e6, "ratio": data.nbytes / stored,
        "chunks": list(chunks), "shards": list(shards),
        "write_mb_s_best": mb / w["min_s"], "write_mb_s_median": mb / w["median_s"],
        "read_mb_s_best": mb / r["min_s"], "read_mb_s_median": mb / r["median_s"],
        "write_s": w, "read_s": r,
    }


def datasets(rows: int, real_steps: int) -> dict:
    rng = np.random.default_rng(0)
    print(f"collecting {real_steps} humanoid random-policy steps ...", flush=True)
    start = time.perf_counter()
    episodes = humanoid_rollouts(real_steps)
    real = np.concatenate([e[0][:-1] for e in episodes])
    print(f"  {len(real)} steps in {time.perf_counter() - start:.1f} s", flush=True)
    reps = -(-rows // len(real))
    flags = np.zeros(rows, dtype=bool)
    flags[999::1000] = True
    return {
        "random-obs": (rng.standard_normal((rows, 67), dtype=np.float32), "step", "obs"),
        "real-obs": (np.tile(real, (reps, 1))[:rows].copy(), "step", "obs"),
        "actions": (rng.integers(0, 3, (rows, 21), dtype=np.uint8), "step", "act"),
        "bools": (flags, "step", None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1 << 20, help="rows per array (steps)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--real-steps", type=int, default=20_000,
                        help="humanoid rollout steps collected for real-obs (then tiled)")
    args = parser.parse_args(argv)

    info = machine_info()
    print(f"{info['cpu']} | {info['cores']} cores | Python {info['python']} | "
          f"zarr {info['versions']['zarr']} | numcodecs {info['versions']['numcodecs']}")
    data = datasets(args.rows, args.real_steps)
    results: dict = {}
    header = (f"{'data':<11} {'codec':<24} {'raw MB':>8} {'ratio':>7} "
              f"{'write MB/s':>11} {'read MB/s':>10}")
    print(header)
    print("-" * len(header))
    for name, (array, per, width) in data.items():
        results[name] = {"dtype": str(array.dtype), "shape": list(array.shape)}
        table = codecs(array.dtype.kind)
        current = table.pop("_current")[0]
        for codec_name, compressors in table.items():
            is_default = bool(compressors) and _same_codec(compressors[0], current)
            res = bench_array(array, per, width, compressors, args.repeats)
            res["is_spin_default"] = is_default
            results[name][codec_name] = res
            mark = " *" if res["is_spin_default"] else ""
            print(f"{name:<11} {codec_name + mark:<24} {res['raw_mb']:>8.1f} {res['ratio']:>7.2f} "
                  f"{res['write_mb_s_best']:>11.0f} {res['read_mb_s_best']:>10.0f}", flush=True)
    print("* = spin's current choice (schema.compressor); MB/s: best of "
          f"{args.repeats} (medians in the JSON)")
    path = write_results("store_codecs", {
        "benchmark": "store_codecs", "command": " ".join([os.path.basename(sys.executable),
                                                          *sys.argv]),
        "args": vars(args), "machine": info,
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "results": results,
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
