"""Device choice and the speed settings that go with it (autocast, compile)."""

from __future__ import annotations

import contextlib

import torch


class DeviceError(ValueError):
    """A device that does not exist on this machine."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; refuses a CUDA device that is absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: accepted auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for but CUDA is not available on this machine: "
                          f"use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"unsupported device {name!r}: accepted auto, cpu, cuda, cuda:N")
    return device


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (the fused attention kernels run in bf16); a no-op on CPU, where
    bf16 matmuls are slower than float32 on most machines."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def maybe_compile(fn, enabled: bool):
    """``torch.compile(fn)`` when asked (CUDA pays the compile time back on long runs)."""
    return torch.compile(fn) if enabled else fn


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's global RNG states a run on ``device`` draws from: the CPU's, and the device's on
    CUDA (dropout and sampling on a GPU use the CUDA generator), for exact resumes."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor] | torch.Tensor, device: torch.device) -> None:
    """Restore :func:`rng_state`'s states (a bare tensor: a CPU state from older checkpoints)."""
    if isinstance(state, torch.Tensor):
        torch.set_rng_state(state)
        return
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
