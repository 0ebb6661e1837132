"""Sampling minibatches of transitions from a cached dataset, on the device or from host memory.

Two placements behind one API (:class:`TransitionBuffer`):

- ``"device"``: every array lives on the training device and :meth:`TransitionBuffer.sample`
  draws indices with ``torch.randint`` on that device and gathers there: no host round trip and
  no synchronisation per step. Used on an accelerator when the arrays fit its memory budget.
- ``"host"``: arrays stay memory-mapped in host memory; a batch is gathered on the host and,
  on CUDA, copied through a pinned staging buffer on a side stream while the previous batch is
  in use (one batch of prefetch). On a CPU-only machine the gathered arrays are the batch; this
  is the CPU default, as numpy gathers from memory-mapped arrays beat torch indexing there.

Both placements draw the same indices for the same seed on the same device, so a run's batches do
not depend on where the data sits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import torch

from spin_train.data.cache import CachedDataset

Placement = Literal["auto", "device", "host"]


@dataclass
class Batch:
    """A minibatch of B transitions (tensors on the training device).

    Attributes:
        observations: ``(B, D)`` float32 (normalised if the buffer normalises).
        actions: ``(B, N)`` int64 bin indices.
        rewards: ``(B,)`` float32.
        next_observations: ``(B, D)`` float32 (normalised like ``observations``).
        not_done: ``(B,)`` float32: 0 only where the step ended in a true termination; a
            time-limit truncation keeps 1, so its value is still bootstrapped.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    not_done: torch.Tensor


@dataclass
class PhaseData:
    """What a learner's first phase (before RL) draws on: ``Learner.first_phase``."""

    sample: Callable[[int], Batch]  # n transitions as the learner sees them (normalised, scaled)
    batch_size: int                 # the run's transitions per gradient step
    generator: torch.Generator      # the phase's own sampling stream (seeded by the trainer)
    progress: bool                  # show tqdm bars


@dataclass(frozen=True)
class ObservationNormaliser:
    """``(obs - mean) / std`` with statistics computed once from a dataset.

    Saved with every model trained on normalised observations (:meth:`to_dict`), so evaluation
    and later runs apply exactly the same transform.
    """

    mean: np.ndarray  # (D,) float32
    std: np.ndarray  # (D,) float32, floored at ``min_std``
    min_std: float = 1e-3

    @classmethod
    def from_cached(cls, cached: CachedDataset, min_std: float = 1e-3) -> "ObservationNormaliser":
        # Constant features (std 0) would blow up; flooring keeps them near 0 after centring.
        return cls(cached.obs_mean.astype(np.float32),
                   np.maximum(cached.obs_std, min_std).astype(np.float32), min_std)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "min_std": self.min_std}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ObservationNormaliser":
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32),
                   float(data.get("min_std", 1e-3)))

    def on(self, device: torch.device | str):
        """``obs -> (obs - mean) / std`` with the statistics moved to ``device`` once (for a hot
        loop; ``__call__`` converts them on every call)."""
        mean = torch.as_tensor(self.mean, device=device)
        std = torch.as_tensor(self.std, device=device)
        return lambda obs: (obs - mean) / std

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, device=obs.device)
        std = torch.as_tensor(self.std, device=obs.device)
        return (obs - mean) / std


def default_device_budget(device: torch.device) -> int:
    """Bytes the dataset may take on a CUDA device: half its free memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return 0


def choose_placement(device: torch.device, need_bytes: int, budget: int) -> str:
    """``"device"`` when the arrays fit the budget of an accelerator, else ``"host"``.

    A CPU device always gets the host placement: there the "device" is host memory anyway, and
    numpy gathers from memory-mapped arrays measured faster than torch indexing of the same
    arrays (``benchmarks/loader.py``), with no copy of the dataset at start-up.
    """
    if device.type == "cpu":
        return "host"
    return "device" if need_bytes <= budget else "host"


def device_nbytes(cached: CachedDataset) -> int:
    """Bytes the device placement takes: the cache's packed rows, next-row indices, actions."""
    return cached.nbytes - sum(
        (cached.path / f"{name}.npy").stat().st_size for name in ("terminations", "truncations"))


class TransitionBuffer:
    """Uniform random minibatches of a cached dataset.

    Args:
        cached: the materialised dataset (:func:`spin_train.data.materialise`).
        device: the training device (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        placement: ``"auto"`` (see :func:`choose_placement`: on an accelerator, device if the
            arrays fit ``device_budget``, else host; host on a CPU), ``"device"`` or ``"host"``.
        device_budget: bytes the arrays may take on the device (default
            :func:`default_device_budget`).
        normalise: normalise observations with the dataset's mean/std (see :attr:`normaliser`).
        seed: seed of the index generator; same seed -> same batches.
        steps: optional int64 array of the step indices to sample from (e.g. the training
            episodes of a split, :func:`spin_train.data.split_episodes`); default every step.
    """

    def __init__(
        self,
        cached: CachedDataset,
        *,
        device: str | torch.device = "cpu",
        placement: Placement = "auto",
        device_budget: int | None = None,
        normalise: bool = False,
        seed: int = 0,
        steps: np.ndarray | None = None,
    ) -> None:
        if placement not in ("auto", "device", "host"):
            raise ValueError(f"unknown placement {placement!r}: accepted auto, device, host")
        self.cached = cached
        self.device = torch.device(device)
        if placement == "auto":
            budget = default_device_budget(self.device) if device_budget is None else device_budget
            placement = choose_placement(self.device, device_nbytes(cached), budget)
        self.placement: Literal["device", "host"] = placement
        self.normaliser = ObservationNormaliser.from_cached(cached) if normalise else None
        if steps is not None:
            steps = np.asarray(steps, dtype=np.int64)
            if (steps.ndim != 1 or len(steps) == 0 or steps.min() < 0
                    or steps.max() >= cached.n_steps):
                raise ValueError(f"steps must be a non-empty 1-D array of indices in "
                                 f"[0, {cached.n_steps}), got shape {steps.shape}")
        self.n_steps = cached.n_steps if steps is None else len(steps)
        # Indices come from a generator on the training device in the device placement and from
        # a CPU generator in the host placement; on a CPU device both are the same generator.
        gen_device = self.device if placement == "device" else torch.device("cpu")
        self._generator = torch.Generator(device=gen_device)
        self._generator.manual_seed(int(seed))
        self._gen_device = gen_device
        # The same three arrays either way: torch tensors on the device, or memory-mapped numpy.
        names = ("rows", "next_rows", "actions")
        if placement == "device":
            self._rows, self._next_rows, self._actions = (
                torch.from_numpy(cached.load(n, mmap=False)).to(self.device) for n in names)
            self._steps = None if steps is None else torch.from_numpy(steps).to(self.device)
        else:
            self._rows, self._next_rows, self._actions = (cached.load(n) for n in names)
            self._steps = steps
            self._staging: dict[int, list[dict[str, torch.Tensor]]] = {}
            self._slot = 0
            self._slot_done: list[Any] = [None, None]
            self._inflight: Batch | None = None
            self._state_before_inflight = self._generator.get_state()
            self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        if self.normaliser is not None:
            self._mean = torch.as_tensor(self.normaliser.mean, device=self.device)
            self._std = torch.as_tensor(self.normaliser.std, device=self.device)

    def __len__(self) -> int:
        return self.n_steps

    # ----------------------------------------------------------------------------- device path
    def _sample_on_device(self, batch_size: int) -> Batch:
        idx = torch.randint(0, self.n_steps, (batch_size,), device=self._gen_device,
                            generator=self._generator)
        if self._steps is not None:
            idx = self._steps[idx]
        D = self.cached.obs_dim
        rows = self._rows[idx]
        return Batch(
            observations=rows[:, :D],
            actions=self._actions[idx],
            rewards=rows[:, D],
            next_observations=self._rows[self._next_rows[idx], :D],
            not_done=rows[:, D + 1],
        )

    # ----------------------------------------------------------------------------- host path
    def _gather_on_host(self, batch_size: int) -> dict[str, np.ndarray]:
        idx = torch.randint(0, self.n_steps, (batch_size,), generator=self._generator).numpy()
        if self._steps is not None:
            idx = self._steps[idx]
        D = self.cached.obs_dim
        rows = self._rows[idx]
        return {
            "observations": rows[:, :D],
            "actions": self._actions[idx],
            "rewards": rows[:, D],
            "next_observations": self._rows[self._next_rows[idx], :D],
            "not_done": rows[:, D + 1],
        }

    def _to_device_async(self, arrays: dict[str, np.ndarray]) -> Batch:
        """Pinned staging copy + non-blocking transfer on the side stream (CUDA only)."""
        B = arrays["rewards"].shape[0]
        if B not in self._staging:
            self._staging[B] = [
                {k: torch.empty(v.shape, dtype=torch.from_numpy(v[:0]).dtype, pin_memory=True)
                 for k, v in arrays.items()} for _ in range(2)]
        # Two slots: a slot is refilled only after the transfer that read it has finished.
        slot = self._staging[B][self._slot]
        done = self._slot_done[self._slot]
        if done is not None:
            done.synchronize()
        assert self._stream is not None
        out = {}
        with torch.cuda.stream(self._stream):
            for k, v in arrays.items():
                slot[k].copy_(torch.from_numpy(v))
                out[k] = slot[k].to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        self._slot_done[self._slot] = event
        self._slot ^= 1
        return Batch(**out)

    def _sample_from_host(self, batch_size: int) -> Batch:
        if self._stream is None:
            return Batch(**{k: torch.from_numpy(v) for k, v in
                            self._gather_on_host(batch_size).items()})
        if self._inflight is None or self._inflight.rewards.shape[0] != batch_size:
            self._inflight = self._to_device_async(self._gather_on_host(batch_size))
        current = self._inflight
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        for t in vars(current).values():
            t.record_stream(torch.cuda.current_stream(self.device))
        # Prefetch: gather the next batch now; its copy overlaps the caller's compute. Its
        # indices are drawn ahead of time, so the state *before* them is what a checkpoint must
        # save (generator_state) for a resumed run to draw the same next batch.
        self._state_before_inflight = self._generator.get_state()
        self._inflight = self._to_device_async(self._gather_on_host(batch_size))
        return current

    # ----------------------------------------------------------------------------- public
    def generator_state(self) -> torch.Tensor:
        """The index generator's state as of the next :meth:`sample` (saved in checkpoints so a
        resumed run draws the very batches an uninterrupted one would).

        With a prefetched batch in flight (host placement on CUDA) that is the state before
        the prefetch drew its indices, not the generator's current state.
        """
        if self.placement == "host" and self._inflight is not None:
            return self._state_before_inflight.clone()
        return self._generator.get_state()

    def set_generator_state(self, state: torch.Tensor) -> None:
        """Continue from :meth:`generator_state`'s state (a batch in flight is dropped)."""
        self._generator.set_state(state)
        if self.placement == "host":
            self._inflight = None

    def sample(self, batch_size: int) -> Batch:
        """B uniform random transitions (with replacement)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.placement == "device":
            batch = self._sample_on_device(batch_size)
        else:
            batch = self._sample_from_host(batch_size)
        if self.normaliser is not None:
            batch.observations = (batch.observations - self._mean) / self._std
            batch.next_observations = (batch.next_observations - self._mean) / self._std
        return batch
