"""Dataset tools on published stores: verify, combine, export, import, describe.

Every tool reads published stores read-only and writes new data only through
:class:`~spin_data.store.writer.DatasetWriter` (a new store, published atomically) or to a new
file; nothing already published is ever modified. The only place anything is unpickled is
:func:`import_benchmark_pickle`, and only when the caller passes ``allow_pickle=True``; even then a
restricted unpickler refuses every global but the few numpy needs to rebuild arrays and scalars.

Library errors are :class:`ToolError` (a ``ValueError``) or the store's own errors
(:class:`~spin_data.store.reader.DatasetOpenError`, :class:`~spin_data.store.location.StoreLocationError`,
:class:`~spin_data.store.writer.DatasetWriteError`, :class:`~spin_data.store.writer.StagingExists`),
each one line naming the store and the problem.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from spin_data.envs.bins import BinGrid
from spin_data.store import schema
from spin_data.store.location import parse_location
from spin_data.store.reader import Dataset, open_dataset
from spin_data.store.writer import DatasetWriter, discard, return_statistics


class ToolError(ValueError):
    """A tool cannot do what was asked (inputs disagree, corrupted input, bad pickle...)."""


class PickleNotAllowed(ToolError):
    """Importing a pickle was asked for without explicit permission to unpickle."""


PICKLE_REFUSAL = (
    "unpickling runs code from the file: only import pickles you trust; pass --allow-pickle "
    "(allow_pickle=True)"
)


def _open(location: str | os.PathLike | Dataset) -> Dataset:
    """An opened dataset (a :class:`Dataset` passes through)."""
    if isinstance(location, Dataset):
        return location
    return open_dataset(location)


def _read(ds: Dataset, path: str, rows: slice | None = None) -> np.ndarray:
    """Rows of one array (all by default); a corrupted chunk becomes a :class:`ToolError`."""
    try:
        arr = ds.group[path]
        return arr[...] if rows is None else arr[rows]
    except Exception as err:  # zarr/numcodecs raise assorted types for damaged chunks
        raise ToolError(
            f"{ds.location}: array {path} unreadable (corrupted chunk?): "
            f"{type(err).__name__}: {err}; run `spin-data verify {ds.location}`"
        ) from None


# ============================================================================= verify
@dataclass
class VerifyReport:
    """What :func:`verify` checked and what it found.

    Attributes:
        location: the store as given.
        n_steps, n_episodes: T and E as the store's arrays declare them.
        checks: one short name per check performed (each array's checksum, each invariant).
        problems: one line per problem found (empty: the store is intact).
    """

    location: str
    n_steps: int
    n_episodes: int
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def check(self, name: str, passed: bool, problem: str = "") -> bool:
        """Record a check and, if it failed, its problem; returns ``passed``."""
        self.checks.append(name)
        if not passed:
            self.problems.append(problem or f"{name}: failed")
        return passed


def _first(mask: np.ndarray) -> int:
    """Index of the first True row of a (rows, ...) mask."""
    return int(np.argwhere(mask)[0][0])


def verify(location: str | os.PathLike) -> VerifyReport:
    """Re-check a published store against its recorded checksums and the schema's invariants.

    Every array is read in blocks of :data:`schema.CHECKSUM_BLOCK_ROWS` rows (one shard of a
    per-step array at a time, so memory stays ~ one shard per array) and hashed exactly as the
    writer hashed it; the same pass checks the per-step invariants. Checked:

    - each array's dtype and shape against the schema (T steps, E episodes, D, N);
    - each array's checksum against ``checksums``; ``content_checksum`` against both the recorded
      and the recomputed array checksums;
    - episode ends strictly increasing from >= 1 with the last == T, lengths == diff of ends;
    - returns == per-episode float64 sum of the float32 rewards (up to summation-order rounding);
    - actions inside their bins (``< counts`` per dimension);
    - observations, rewards and final observations finite;
    - terminations/truncations only at episode ends, exactly one of them at each end;
    - source codes valid; metadata totals and observation_dim agree with the arrays;
    - next observations: their shape is (T, D) exactly when final_observations is (E, D) and the
      ends are valid, which is checked; continuity inside an episode needs no check, because the
      schema stores each observation once (next_observations[t] *is* observations[t + 1]).

    A chunk that cannot be decoded (zarr/blosc raising) is reported as
    ``array X: unreadable (corrupted chunk?)`` instead of raised.

    Raises:
        DatasetOpenError, StoreLocationError: nothing openable at ``location``.
    """
    ds = _open(location)
    g = ds.group
    T, E = ds.n_steps, ds.n_episodes
    D, grid = ds.obs_dim, ds.bin_grid
    N, counts = grid.n_dims, np.asarray(grid.counts, dtype=np.int64)
    report = VerifyReport(str(location), T, E)
    B = schema.CHECKSUM_BLOCK_ROWS
    computed: dict[str, str] = {}
    episodes: dict[str, np.ndarray] = {}
    unreadable: set[str] = set()

    def scan(path: str, on_block: Callable[[int, np.ndarray], None] | None) -> None:
        """Hash one array block by block (and hand each block to ``on_block``)."""
        spec = next(s for s in schema.ARRAYS if s.path == path)
        arr = g[path]
        rows = T if spec.per == "step" else E
        shape = schema.array_shape(spec, rows, D, N)
        dtype = schema.array_dtype(spec, grid.counts)
        if not report.check(f"{path} dtype/shape", arr.dtype == dtype and arr.shape == shape,
                            f"array {path}: dtype {arr.dtype} shape {arr.shape}, the schema says "
                            f"{dtype} {shape}"):
            unreadable.add(path)
            return
        digests = []
        for start in range(0, rows, B):
            stop = min(start + B, rows)
            try:
                block = arr[start:stop]
            except Exception as err:  # blosc/zstd/sharding errors on damaged bytes
                report.check(f"{path} readable", False,
                             f"array {path}: unreadable (corrupted chunk?) in rows "
                             f"{start}..{stop - 1}: {type(err).__name__}: {err}")
                unreadable.add(path)
                return
            digests.append(schema.block_digest(block))
            if on_block is not None:
                on_block(start, block)
        report.check(f"{path} readable", True)
        computed[path] = schema.combine_digests(shape, dtype, digests)
        recorded = ds.checksums.get(path)
        report.check(f"{path} checksum", computed[path] == recorded,
                     f"array {path}: checksum mismatch (recorded {recorded}, content hashes to "
                     f"{computed[path]})")

    # ---- per-episode arrays first: small (E rows), and the per-step checks need the ends.
    for path in schema.EPISODE_ARRAYS:
        parts: list[np.ndarray] = []
        scan(path, lambda _start, block: parts.append(block))
        if path not in unreadable:
            episodes[path] = np.concatenate(parts) if parts else np.zeros(0)

    ends = episodes.get("episodes/ends")
    ends_ok = False
    if ends is not None:
        increasing = bool(np.all(np.diff(ends) > 0)) and (E == 0 or ends[0] >= 1)
        report.check("episode ends strictly increasing", increasing,
                     "episodes/ends: not strictly increasing from >= 1")
        last = int(ends[-1]) if E else 0
        report.check("last episode end == steps", last == T,
                     f"episodes/ends: last end is {last}, the store has {T} steps")
        ends_ok = increasing and last == T
        if "episodes/lengths" in episodes:
            lengths = episodes["episodes/lengths"]
            want = np.diff(ends, prepend=0)
            same = lengths.shape == want.shape and bool(np.all(lengths == want))
            report.check("lengths == diff of ends", same,
                         "episodes/lengths: differ from the differences of episodes/ends"
                         + (f" (first at episode {_first(lengths != want)})" if not same and
                            lengths.shape == want.shape else ""))
    if "episodes/sources" in episodes:
        bad = episodes["episodes/sources"] >= len(schema.SOURCES)
        report.check("source codes valid", not bad.any(),
                     f"episodes/sources: code {int(episodes['episodes/sources'][bad][0])} at "
                     f"episode {_first(bad)} is not one of 0..{len(schema.SOURCES) - 1}"
                     if bad.any() else "")
    if "episodes/final_observations" in episodes:
        finals = episodes["episodes/final_observations"]
        finite = np.isfinite(finals).all(axis=1)
        report.check("final observations finite", bool(finite.all()),
                     f"episodes/final_observations: NaN/inf at episode {_first(~finite)}"
                     if not finite.all() else "")
        # next_observations() is observations shifted by one row with each episode's last row
        # replaced by its final observation: (T, D) exactly when finals are (E, D) and the ends
        # are valid (both checked), so the whole (T, D) array need not be built here.
        report.check("next observations well-formed", finals.shape == (E, D) and ends_ok,
                     "next observations cannot be formed: final_observations or ends are invalid")

    # ---- per-step arrays, one block at a time.
    end_rows = ends - 1 if ends_ok else None
    reward_sums = np.zeros(E, dtype=np.float64)
    reward_abs = np.zeros(E, dtype=np.float64)
    flags_at_end = {p: np.zeros(E, dtype=bool) for p in ("steps/terminations", "steps/truncations")}
    first_bad: dict[str, int] = {}

    def note(name: str, row: int) -> None:
        first_bad.setdefault(name, row)

    def on_observations(start: int, block: np.ndarray) -> None:
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            note("steps/observations", start + _first(bad))

    def on_actions(start: int, block: np.ndarray) -> None:
        bad = (block.astype(np.int64) >= counts).any(axis=1)
        if bad.any():
            note("steps/actions", start + _first(bad))

    def on_rewards(start: int, block: np.ndarray) -> None:
        bad = ~np.isfinite(block)
        if bad.any():
            note("steps/rewards", start + _first(bad))
        if end_rows is not None:
            episode = np.searchsorted(ends, np.arange(start, start + len(block)), side="right")
            r = block.astype(np.float64)
            reward_sums[:] += np.bincount(episode, weights=r, minlength=E)[:E]
            reward_abs[:] += np.bincount(episode, weights=np.abs(r), minlength=E)[:E]

    def on_flags(path: str) -> Callable[[int, np.ndarray], None]:
        def check(start: int, block: np.ndarray) -> None:
            if end_rows is None:
                return
            rows = np.flatnonzero(block) + start
            stray = rows[~np.isin(rows, end_rows)]
            if stray.size:
                note(path, int(stray[0]))
            here = (end_rows >= start) & (end_rows < start + len(block))
            flags_at_end[path][here] = block[end_rows[here] - start]
        return check

    scan("steps/observations", on_observations)
    scan("steps/actions", on_actions)
    scan("steps/rewards", on_rewards)
    scan("steps/terminations", on_flags("steps/terminations"))
    scan("steps/truncations", on_flags("steps/truncations"))

    if "steps/observations" not in unreadable:
        report.check("observations finite", "steps/observations" not in first_bad,
                     f"steps/observations: NaN/inf at step {first_bad.get('steps/observations')}")
    if "steps/actions" not in unreadable:
        report.check("actions inside their bins", "steps/actions" not in first_bad,
                     f"steps/actions: bin index out of range (counts {list(grid.counts)}) at step "
                     f"{first_bad.get('steps/actions')}")
    if "steps/rewards" not in unreadable:
        report.check("rewards finite", "steps/rewards" not in first_bad,
                     f"steps/rewards: NaN/inf at step {first_bad.get('steps/rewards')}")
        returns = episodes.get("episodes/returns")
        if end_rows is not None and returns is not None:
            # The writer sums each episode's float32 rewards in float64 (pairwise); bincount sums
            # sequentially, so the two differ only by rounding: ~1e-16 relative per step.
            close = np.abs(returns - reward_sums) <= 1e-9 * (reward_abs + 1.0)
            report.check("returns == sum of rewards", bool(close.all()),
                         f"episodes/returns: episode {_first(~close)} records "
                         f"{float(returns[_first(~close)])!r}, its rewards sum to "
                         f"{float(reward_sums[_first(~close)])!r}" if not close.all() else "")
    flags_read = not ({"steps/terminations", "steps/truncations"} & unreadable)
    if end_rows is not None and flags_read:
        for path in ("steps/terminations", "steps/truncations"):
            report.check(f"{path} only at episode ends", path not in first_bad,
                         f"{path}: set at step {first_bad.get(path)}, which is not an episode's "
                         f"last step")
        term, trunc = flags_at_end["steps/terminations"], flags_at_end["steps/truncations"]
        one = term ^ trunc
        report.check("exactly one of termination/truncation per episode", bool(one.all()),
                     f"episode {_first(~one)}: ends with terminated={bool(term[_first(~one)])}, "
                     f"truncated={bool(trunc[_first(~one)])}; exactly one must be set"
                     if not one.all() else "")
        totals = ds.metadata.get("totals", {})
        report.check("metadata terminated_episodes",
                     totals.get("terminated_episodes") == int(term.sum()),
                     f"metadata: totals.terminated_episodes is {totals.get('terminated_episodes')}"
                     f", the arrays hold {int(term.sum())}")

    # ---- metadata and the content checksum.
    totals = ds.metadata.get("totals", {})
    report.check("metadata totals", totals.get("steps") == T and totals.get("episodes") == E,
                 f"metadata: totals say {totals.get('steps')} steps / {totals.get('episodes')} "
                 f"episodes, the arrays hold {T} / {E}")
    report.check("metadata observation_dim", ds.metadata.get("observation_dim") == D,
                 f"metadata: observation_dim is {ds.metadata.get('observation_dim')}, the "
                 f"observations have {D} columns")
    missing = [p for p in schema.ARRAY_PATHS if p not in ds.checksums]
    report.check("checksums recorded for every array", not missing,
                 f"checksums: no entry for {', '.join(missing)}")
    if not missing:
        recorded_content = schema.content_checksum(ds.checksums)
        report.check("content checksum matches recorded checksums",
                     recorded_content == ds.content_checksum,
                     f"content_checksum {ds.content_checksum} does not match the recorded array "
                     f"checksums ({recorded_content})")
    if len(computed) == len(schema.ARRAY_PATHS):
        actual = schema.content_checksum(computed)
        report.check("content checksum matches content", actual == ds.content_checksum,
                     f"content_checksum: recorded {ds.content_checksum}, the content hashes to "
                     f"{actual}")
    return report


# ============================================================================= combine
def _quality(ds: Dataset) -> str | None:
    """The dataset's quality: its metadata's, else its episodes' source if they all share one."""
    quality = ds.metadata.get("quality")
    if quality:
        return str(quality)
    sources = np.unique(_read(ds, "episodes/sources"))
    return schema.SOURCES[int(sources[0])] if len(sources) == 1 else None


def combined_quality(qualities: Sequence[str | None]) -> str:
    """Inputs that are all ``medium`` or ``expert``, with both present -> ``medium-expert``;
    anything else -> ``mixed`` (the benchmark names no other combination of whole datasets)."""
    return "medium-expert" if set(qualities) == {"medium", "expert"} else "mixed"


def _default_id(out: str) -> str:
    """A dataset id from the output location's last path component (``.zip`` dropped)."""
    name = os.path.basename(parse_location(out).target.rstrip("/"))
    return name[:-4] if name.endswith(".zip") else name


#: Metadata keys a combined dataset takes from its first input (computed keys are recomputed).
INHERITED_KEYS = ("env", "observation_keys")


def combine(
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    dataset_id: str | None = None,
    workers: int = 1,
) -> str:
    """Publish a new dataset holding every episode of ``sources``, in input order.

    E.g. a medium store + an expert store -> a medium-expert store. Each episode keeps its
    source code and reset seed; arrays are read once per input (whole) and sliced per episode.
    Every array read is checked against its recorded checksum first, so a damaged input is
    refused instead of being re-published under fresh checksums. The inputs are only read.

    Metadata: ``dataset_id`` (default: ``out``'s name), ``quality`` (:func:`combined_quality`),
    ``env`` / ``observation_keys`` / any ``reference*`` keys from the first input, and
    ``combined_from``: one ``{location, dataset_id, content_checksum, quality, behaviour}``
    per input.

    Args:
        sources: two or more store locations with the same env, observation size and bin grid.
        out: where to publish (must not exist); staging goes beside it.
        workers: processes building shards while publishing.

    Returns:
        ``out`` as a location string.

    Raises:
        ToolError: fewer than two inputs, inputs that disagree (naming both), a damaged input.
        StoreLocationError: a store already exists at ``out``.
        StagingExists: an interrupted write of ``out`` is in its staging area.
    """
    if len(sources) < 2:
        raise ToolError(f"combine needs at least two stores, got {len(sources)}")
    datasets = [_open(s) for s in sources]
    first = datasets[0]
    for ds in datasets[1:]:
        pair = f"cannot combine {first.location} and {ds.location}"
        if ds.obs_dim != first.obs_dim:
            raise ToolError(f"{pair}: observation dims differ ({first.obs_dim} vs {ds.obs_dim})")
        if ds.bin_grid != first.bin_grid:
            raise ToolError(f"{pair}: bin grids differ ({first.bin_grid!r} with counts "
                            f"{list(first.bin_grid.counts)} vs {ds.bin_grid!r} with counts "
                            f"{list(ds.bin_grid.counts)}, or different bounds)")
        if ds.metadata.get("env") != first.metadata.get("env"):
            raise ToolError(f"{pair}: environments differ ({first.metadata.get('env')} vs "
                            f"{ds.metadata.get('env')})")

    qualities = [_quality(ds) for ds in datasets]
    metadata: dict[str, Any] = {
        "dataset_id": dataset_id or _default_id(os.fspath(out)),
        **{k: first.metadata[k] for k in INHERITED_KEYS if k in first.metadata},
        **{k: v for k, v in first.metadata.items() if k.startswith("reference")},
        "quality": combined_quality(qualities),
        "combined_from": [
            {"location": str(ds.location), "dataset_id": ds.metadata.get("dataset_id"),
             "content_checksum": ds.content_checksum, "quality": q,
             "behaviour": ds.metadata.get("behaviour")}
            for ds, q in zip(datasets, qualities)
        ],
    }

    writer = DatasetWriter(out, obs_dim=first.obs_dim, bin_grid=first.bin_grid)
    try:
        for ds in datasets:
            _copy_episodes(ds, writer)
        return writer.publish(metadata, workers=workers)
    except BaseException:
        # A combine is not resumable (it restarts from its inputs), so a failed one must not
        # leave a staging area that would block the next attempt.
        writer.close()
        discard(out)
        raise


def _checked(ds: Dataset, path: str) -> np.ndarray:
    """A whole array, refused unless it hashes to its recorded checksum."""
    data = _read(ds, path)
    if schema.array_checksum(data) != ds.checksums.get(path):
        raise ToolError(f"{ds.location}: array {path} does not match its recorded checksum "
                        f"(damaged store); run `spin-data verify {ds.location}`")
    return data


def _copy_episodes(ds: Dataset, writer: DatasetWriter) -> None:
    """Append every episode of ``ds`` to ``writer`` from whole arrays read once."""
    a = {path: _checked(ds, path) for path in schema.ARRAY_PATHS if path != "episodes/returns"}
    ends = a["episodes/ends"]
    starts = np.concatenate([[0], ends[:-1]])
    for i, (start, stop) in enumerate(zip(starts.tolist(), ends.tolist())):
        last = stop - 1
        writer.add_episode(
            np.concatenate([a["steps/observations"][start:stop],
                            a["episodes/final_observations"][i : i + 1]]),
            a["steps/actions"][start:stop],
            a["steps/rewards"][start:stop],
            terminated=bool(a["steps/terminations"][last]),
            truncated=bool(a["steps/truncations"][last]),
            source=schema.SOURCES[int(a["episodes/sources"][i])],
            seed=int(a["episodes/seeds"][i]),
        )


# ============================================================================= export
def export_npz(location: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write a dataset as one D4RL-style ``.npz`` of plain numeric arrays.

    Keys (T steps, E episodes, D obs dim, N sub-actions): ``observations`` (T, D) float32,
    ``actions`` (T, N) int64 bin indices, ``rewards`` (T,) float32, ``next_observations`` (T, D)
    float32, ``terminals`` (T,) bool (= terminations), ``timeouts`` (T,) bool (= truncations),
    ``episode_ends`` (E,) int64 (cumulative, exclusive), ``episode_sources`` (E,) uint8 (codes
    into ``SOURCES``), ``episode_seeds`` (E,) int64. No object arrays: loads with
    ``np.load(path, allow_pickle=False)``.

    The file is written beside ``out_path`` and linked into place, so a reader never sees half a
    file and an existing file is never replaced.

    Raises:
        ToolError: ``out_path`` exists, or the store cannot be read.
    """
    out = Path(out_path)
    if out.exists():
        raise ToolError(f"{out}: already exists; exports never replace a file")
    ds = _open(location)
    obs = _read(ds, "steps/observations")
    try:
        next_obs = ds.next_observations(obs)
    except Exception as err:  # final_observations or ends damaged
        raise ToolError(f"{ds.location}: cannot form next observations ({type(err).__name__}: "
                        f"{err}); run `spin-data verify {ds.location}`") from None
    arrays = {
        "observations": obs,
        "actions": _read(ds, "steps/actions").astype(np.int64),
        "rewards": _read(ds, "steps/rewards"),
        "next_observations": next_obs,
        "terminals": _read(ds, "steps/terminations"),
        "timeouts": _read(ds, "steps/truncations"),
        "episode_ends": _read(ds, "episodes/ends").astype(np.int64),
        "episode_sources": _read(ds, "episodes/sources").astype(np.uint8),
        "episode_seeds": _read(ds, "episodes/seeds").astype(np.int64),
    }
    for key, value in arrays.items():
        assert value.dtype.kind in "biuf", (key, value.dtype)  # never an object array
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:  # a file object: savez appends no ".npz" suffix
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, out)  # fails rather than replace a file created meanwhile
        except FileExistsError:
            raise ToolError(f"{out}: already exists; exports never replace a file") from None
    finally:
        os.unlink(tmp)
    return out


# ============================================================================= import
def _numpy_attr(module_names: Sequence[str], name: str) -> Any:
    """``name`` from the first of ``module_names`` that exists (numpy 1.x vs 2.x layouts)."""
    for module in module_names:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {module_names} has {name}")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Every global a pickle of numpy arrays, numpy scalars and plain Python values needs.

    Keyed by the (module, name) a pickle may spell - numpy 1.x pickles say ``numpy.core``, numpy
    2.x ones ``numpy._core`` - and resolved here to this numpy's objects, so find_class never
    imports a module named by the file.
    """
    multiarray = ("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = ("numpy._core.numeric", "numpy.core.numeric")
    reconstruct = _numpy_attr(multiarray, "_reconstruct")  # ndarray.__reduce__ (protocol <= 4)
    scalar = _numpy_attr(multiarray, "scalar")  # numpy scalars (np.float32(1.0), np.bool_)
    frombuffer = _numpy_attr(numeric, "_frombuffer")  # ndarray.__reduce_ex__ (protocol 5)
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray,
                                           ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    # Protocol 0-2 pickles spell bytes as _codecs.encode(text, "latin1"); allow only that codec.
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only numpy arrays/scalars and plain Python values.

    Any other global (``os.system``, ``builtins.eval``, a class of some package...) is refused
    before it is looked up, so a hostile file cannot run its payload through ``find_class``.
    """

    def __init__(self, file: io.BufferedIOBase, *, source: str) -> None:
        # latin1: how numpy's Python 2 pickles spell array bytes; Python 3 pickles never use it.
        super().__init__(file, encoding="latin1")
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self._source}: refused to load global {module}.{name}: a benchmark pickle may "
                f"hold only numpy arrays, numpy scalars and plain Python values"
            ) from None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ImportedEpisodes:
    """Benchmark transitions split into episodes (T transitions, E episodes).

    Attributes:
        observations: ``(T, D)`` float32 ``s`` of each transition.
        actions: ``(T, N)`` int64 bin indices.
        rewards: ``(T,)`` float32.
        final_observations: ``(E, D)`` float32 ``s'`` of each episode's last transition.
        ends: ``(E,)`` int64 cumulative (exclusive) end row of each episode.
        terminated: ``(E,)`` bool; an episode not terminated is truncated.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    final_observations: np.ndarray
    ends: np.ndarray
    terminated: np.ndarray


def split_benchmark_transitions(
    transitions: Sequence[tuple],
    *,
    obs_dim: int,
    bin_grid: BinGrid,
    time_limit: int,
    actions: Literal["auto", "indices", "values"] = "auto",
    source_name: str = "pickle",
) -> ImportedEpisodes:
    """Turn the benchmark's ``(s, a, r, s', done)`` tuples into episodes.

    Episode boundaries: after a tuple whose ``done`` is true, and wherever ``s'`` of one tuple is
    not bit-for-bit the ``s`` of the next (a reset the file did not flag), and after the last tuple.

    Termination vs truncation (the format's one ``done`` flag does not say which): an episode that
    ends with ``done`` after exactly ``time_limit`` steps is a truncation (it hit the time limit;
    bootstrapping goes on), one that ends with ``done`` earlier is a termination. An episode that
    ends without ``done`` (unflagged reset, or the end of the file) was cut, not terminated: a
    truncation. Known ambiguity of the format: a true terminal on exactly the last allowed step
    (e.g. a maze goal reached on step 150) is recorded as a truncation.

    Actions (``actions="auto"``): integer arrays are bin indices, float arrays are continuous
    values that must be exactly bin values of ``bin_grid`` (compared in the file's own float
    dtype) and are quantised to indices.

    Raises:
        ToolError: wrong shapes, non-bin action values, non-finite data, an episode longer than
            ``time_limit``.
    """
    if not isinstance(transitions, (list, tuple)) or not transitions:
        raise ToolError(f"{source_name}: expected a non-empty list of (s, a, r, s', done) tuples, "
                        f"got {type(transitions).__name__}")
    try:
        cols = list(zip(*transitions, strict=True))
    except (TypeError, ValueError):
        raise ToolError(f"{source_name}: every entry must be an (s, a, r, s', done) tuple") from None
    if len(cols) != 5:
        raise ToolError(f"{source_name}: entries have {len(cols)} fields, expected 5 "
                        "(s, a, r, s', done)")
    try:
        s = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in cols[0]])
        s_next = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in cols[3]])
        raw_actions = np.stack([np.asarray(x).reshape(-1) for x in cols[1]])
        rewards = np.array([np.asarray(x, dtype=np.float64).reshape(()) for x in cols[2]])
        done = np.array([bool(np.asarray(x).reshape(())) for x in cols[4]])
    except (TypeError, ValueError) as err:
        raise ToolError(f"{source_name}: malformed transitions ({err})") from None
    T = len(transitions)
    if s.shape != (T, obs_dim) or s_next.shape != (T, obs_dim):
        raise ToolError(f"{source_name}: observations have {s.shape[1]} values, the environment "
                        f"has {obs_dim}")
    if not (np.isfinite(s).all() and np.isfinite(s_next).all() and np.isfinite(rewards).all()):
        raise ToolError(f"{source_name}: observations and rewards must be finite")
    if raw_actions.shape[1] != bin_grid.n_dims:
        raise ToolError(f"{source_name}: actions have {raw_actions.shape[1]} values, the "
                        f"environment has {bin_grid.n_dims} sub-actions")

    if raw_actions.dtype.kind == "b":  # on/off flags written as booleans
        raw_actions = raw_actions.astype(np.int64)
    mode = actions
    if mode == "auto":
        mode = "indices" if raw_actions.dtype.kind in "iub" else "values"
    if mode == "indices":
        try:
            indices = bin_grid.check_indices(raw_actions)
        except ValueError as err:
            raise ToolError(f"{source_name}: {err}") from None
    else:
        if raw_actions.dtype.kind not in "iuf":
            raise ToolError(f"{source_name}: continuous actions must be numbers, got "
                            f"{raw_actions.dtype}")
        values = raw_actions.astype(np.float64)
        if not np.isfinite(values).all():
            raise ToolError(f"{source_name}: actions must be finite")
        indices = bin_grid.quantise(values)
        # Exact bin values only: anything else means the file was made on another grid.
        dtype = raw_actions.dtype if raw_actions.dtype.kind == "f" else np.float64
        off = raw_actions != bin_grid.to_values(indices).astype(dtype)
        if off.any():
            row, dim = (int(v) for v in np.argwhere(off)[0])
            bin_values = [round(float(v), 6) for v in bin_grid.values[dim]]
            raise ToolError(
                f"{source_name}: action value {float(raw_actions[row, dim])} (transition {row}, "
                f"dimension {dim}) is not a bin value of the grid ({bin_values} in that "
                f"dimension); wrong --env, --bins or --grid?"
            )

    # Boundary after row t: done, or an unflagged reset (s' != next s), or the last row.
    cut = done.copy()
    cut[:-1] |= np.any(s_next[:-1] != s[1:], axis=1)
    cut[-1] = True
    ends = np.flatnonzero(cut) + 1
    lengths = np.diff(ends, prepend=0)
    if (lengths > time_limit).any():
        e = int(np.argmax(lengths > time_limit))
        raise ToolError(f"{source_name}: episode {e} has {int(lengths[e])} steps, more than the "
                        f"environment's time limit {time_limit}; wrong --env?")
    terminated = done[ends - 1] & (lengths < time_limit)
    return ImportedEpisodes(
        observations=s.astype(np.float32),
        actions=indices,
        rewards=rewards.astype(np.float32),
        final_observations=s_next[ends - 1].astype(np.float32),
        ends=ends.astype(np.int64),
        terminated=terminated,
    )


def import_benchmark_pickle(
    pickle_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    env_name: str,
    bins: int | None = None,
    allow_pickle: bool = False,
    source: str = "other",
    grid: Literal["unit", "actuator"] = "unit",
    actions: Literal["auto", "indices", "values"] = "auto",
    dataset_id: str | None = None,
    workers: int = 1,
) -> str:
    """Import one of the discretised benchmark's pickles (a list of ``(s, a, r, s', done)``).

    Unpickling runs code named by the file, so nothing is read unless ``allow_pickle`` is True,
    and even then :class:`RestrictedUnpickler` rebuilds only numpy arrays/scalars and plain
    values. Episodes are split and classified by :func:`split_benchmark_transitions` (a ``done``
    after exactly the env's ``max_episode_steps`` is a truncation, earlier a termination).

    Args:
        env_name, bins: the environment (``spin_data.envs.make_env``) the data was collected on;
            it fixes D, the bin grid, observation keys and the time limit.
        grid: DMC only: the benchmark's pickles were made on the ``unit`` ([-1, 1]) grid.
        source: the episodes' source code (``random``/``medium``/``expert``/``other``).
        actions: how to read actions (see :func:`split_benchmark_transitions`).
        dataset_id: default ``out``'s name. Seeds are unknown: every episode records seed -1.

    Metadata: dataset_id, env ``{name, kwargs}``, observation_keys, quality ``imported``,
    ``imported_from {path, sha256}``, the import rules, and ``reference_scores`` when published.

    Raises:
        PickleNotAllowed: ``allow_pickle`` is False.
        ToolError: the file is missing, refused by the restricted unpickler, or malformed.
    """
    if not allow_pickle:
        raise PickleNotAllowed(f"{pickle_path}: refused: {PICKLE_REFUSAL}")
    from spin_data.envs import registry

    path = Path(pickle_path)
    if not path.is_file():
        raise ToolError(f"{path}: no such file")
    if source not in schema.SOURCES:
        raise ToolError(f"unknown source {source!r}: accepted {', '.join(schema.SOURCES)}")
    spec = registry.resolve(env_name)
    kwargs: dict[str, Any] = {"bins": spec.default_bins if bins is None else bins}
    if spec.family == "dmc":
        kwargs["grid"] = grid
    env = registry.make_env(env_name, **kwargs)
    try:
        obs_dim = int(env.observation_space.shape[0])
        bin_grid: BinGrid = env.get_wrapper_attr("bin_grid")
        time_limit = int(env.get_wrapper_attr("max_episode_steps"))
        obs_keys = [[str(k), int(n)] for k, n in env.get_wrapper_attr("obs_keys")]
    finally:
        env.close()

    digest = _sha256_file(path)
    with open(path, "rb") as fh:
        try:
            transitions = RestrictedUnpickler(fh, source=str(path)).load()
        except pickle.UnpicklingError as err:
            raise ToolError(str(err) if str(err).startswith(str(path)) else
                            f"{path}: not a readable pickle ({err})") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
            raise ToolError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None
    data = split_benchmark_transitions(transitions, obs_dim=obs_dim, bin_grid=bin_grid,
                                       time_limit=time_limit, actions=actions,
                                       source_name=str(path))
    metadata: dict[str, Any] = {
        "dataset_id": dataset_id or _default_id(os.fspath(out)),
        "env": {"name": env_name, "kwargs": kwargs},
        "observation_keys": obs_keys,
        "quality": "imported",
        "imported_from": {
            "path": str(path.resolve()),
            "sha256": digest,
            "format": "benchmark pickle: list of (s, a, r, s', done)",
            "rules": ("episode ends: done, or s' != next s, or end of file; a done after exactly "
                      f"the time limit ({time_limit} steps) is a truncation, earlier a "
                      "termination; an end without done is a truncation; seeds unknown (-1)"),
        },
    }
    ref = registry.reference_score(env_name, kwargs["bins"])
    if ref is not None:
        metadata["reference_scores"] = {"expert": ref.expert, "random": ref.random,
                                        "source": ref.source}

    writer = DatasetWriter(out, obs_dim=obs_dim, bin_grid=bin_grid)
    try:
        starts = np.concatenate([[0], data.ends[:-1]])
        for e, (start, stop) in enumerate(zip(starts.tolist(), data.ends.tolist())):
            writer.add_episode(
                np.concatenate([data.observations[start:stop], data.final_observations[e : e + 1]]),
                data.actions[start:stop], data.rewards[start:stop],
                terminated=bool(data.terminated[e]), truncated=not bool(data.terminated[e]),
                source=source, seed=-1,
            )
        return writer.publish(metadata, workers=workers)
    except BaseException:
        writer.close()
        discard(out)  # an import restarts from its file: leave no staging behind
        raise


# ============================================================================= info
def info_dict(ds: Dataset) -> dict[str, Any]:
    """JSON-ready summary of a dataset (what :func:`info_card` shows)."""
    md = ds.metadata
    returns = md.get("returns")
    if not returns:  # older or hand-made stores: recompute from the (small) episode arrays
        returns = return_statistics(ds.array("episodes/returns"), ds.array("episodes/sources"))
    reference = md.get("reference_scores")
    normalised = None
    if isinstance(reference, dict) and {"expert", "random"} <= set(reference):
        span = float(reference["expert"]) - float(reference["random"])
        if span:
            normalised = {name: (stats["mean"] - float(reference["random"])) / span
                          for name, stats in returns.items()}
    totals = md.get("totals", {})
    return {
        "location": str(ds.location),
        "dataset_id": md.get("dataset_id"),
        "dataset_version": md.get("dataset_version"),
        "env": md.get("env"),
        "quality": md.get("quality"),
        "steps": ds.n_steps,
        "episodes": ds.n_episodes,
        "terminated_episodes": totals.get("terminated_episodes"),
        "truncated_episodes": totals.get("truncated_episodes"),
        "observation_dim": ds.obs_dim,
        "observation_keys": md.get("observation_keys"),
        "sub_actions": ds.bin_grid.n_dims,
        "bins": list(ds.bin_grid.counts),
        "joint_actions": ds.bin_grid.joint_size,  # an exact Python int (may exceed 2**63)
        "returns": returns,
        "reference_scores": reference,
        "normalised_mean_return": normalised,
        "behaviour": md.get("behaviour"),
        "warnings": md.get("warnings") or [],
        "combined_from": md.get("combined_from"),
        "imported_from": md.get("imported_from"),
        "creator": md.get("creator"),
        "created": md.get("created"),
        "versions": md.get("versions"),
        "schema_version": ds.schema_version,
        "content_checksum": ds.content_checksum,
    }


def info_card(ds: Dataset) -> str:
    """A readable multi-line card describing a dataset."""
    d = info_dict(ds)
    env = d["env"] or {}
    kwargs = env.get("kwargs") or {}
    env_text = env.get("name", "?") + (
        " (" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")" if kwargs else "")
    bins = d["bins"]
    bins_text = str(bins[0]) if len(set(bins)) == 1 else str(bins)
    lines = [
        f"{d['dataset_id']}  (version {d['dataset_version']}, schema {d['schema_version']})",
        f"  location      {d['location']}",
        f"  env           {env_text}",
        f"  quality       {d['quality']}",
        f"  steps         {d['steps']:,} in {d['episodes']:,} episodes "
        f"({d['terminated_episodes']} terminated, {d['truncated_episodes']} truncated)",
        f"  observations  dim {d['observation_dim']}"
        + (" (" + ", ".join(f"{k} {n}" for k, n in d["observation_keys"]) + ")"
           if d["observation_keys"] else ""),
        f"  actions       N = {d['sub_actions']} sub-actions, bins {bins_text} "
        f"({d['joint_actions']} joint actions)",
        "  returns       source      episodes      mean       std       min       max",
    ]
    for name, s in d["returns"].items():
        norm = d["normalised_mean_return"]
        extra = f"  (normalised {norm[name]:.3f})" if norm else ""
        lines.append(f"                {name:<10}{s['episodes']:>9}{s['mean']:>10.2f}"
                     f"{s['std']:>10.2f}{s['min']:>10.2f}{s['max']:>10.2f}{extra}")
    ref = d["reference_scores"]
    if isinstance(ref, dict) and {"expert", "random"} <= set(ref):
        lines.append(f"  reference     expert {float(ref['expert']):.2f}, random "
                     f"{float(ref['random']):.2f}" + (f" ({ref['source']})" if ref.get("source")
                                                      else ""))
    behaviour = d["behaviour"]
    if isinstance(behaviour, dict) and behaviour.get("policies"):
        learner = behaviour.get("algorithm", "?") + (
            f" ({behaviour['learner_library']})" if behaviour.get("learner_library") else "")
        picks = ", ".join(
            f"{source} step {p['step']:,}" + (f" (normalised {p['normalised']:.3f})"
                                             if p.get("normalised") is not None else "")
            for source, p in behaviour["policies"].items())
        lines.append(f"  behaviour     {learner}, {behaviour.get('training_steps', 0):,} steps; "
                     f"{picks}")
    lines.extend(f"  {w}" for w in d["warnings"])
    if d["combined_from"]:
        lines.append("  combined from " + ", ".join(
            f"{c.get('dataset_id')} ({c.get('quality')})" for c in d["combined_from"]))
    if d["imported_from"]:
        lines.append(f"  imported from {d['imported_from'].get('path')} "
                     f"(sha256 {str(d['imported_from'].get('sha256'))[:16]}...)")
    creator = d["creator"] or {}
    lines.append(f"  created       {d['created']} by {creator.get('name', '?')}")
    versions = d["versions"] or {}
    if versions:
        lines.append("  versions      " + ", ".join(f"{k} {v}" for k, v in versions.items()
                                                   if v is not None))
    lines.append(f"  content       {d['content_checksum']}")
    return "\n".join(lines)
