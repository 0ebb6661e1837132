"""``spin-data verify``: check a published store's arrays, checksums and metadata."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from spin_data.store import schema
from spin_data.tools.base import open_any


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
    ds = open_any(location)
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


