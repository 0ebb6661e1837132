"""The learners a behaviour run can use, and how their policies become plain torch weights.

A learner is an (algorithm, library) pair:

==========  ===================================  ===========================================
algorithm   ``library="sb3"`` (torch)            ``library="sbx"`` (JAX, optional ``.[sbx]``)
==========  ===================================  ===========================================
sac         ``stable_baselines3.SAC``            ``sbx.SAC``
tqc         ``sb3_contrib.TQC``                  ``sbx.TQC``
crossq      (not offered: see below)             ``sbx.CrossQ``
ppo         ``stable_baselines3.PPO``            (not offered)
==========  ===================================  ===========================================

Whatever trained it, a squashed-Gaussian policy (sac, tqc, crossq) is stored in one format:
the state dict of stable-baselines3's SAC ``Actor`` (``actor.latent_pi.*``, ``actor.mu.*``,
``actor.log_std.*``), which :func:`spin_data.behaviour.policy.load_policy` rebuilds without
unpickling and without JAX. sbx's Dense kernels are transposed into torch's layout, and
CrossQ's batch-renormalisation layers (fixed running statistics at evaluation time) are folded
into the neighbouring linear layers, so the stored actor computes exactly what the learner's
actor computes in evaluation mode (tested). sb3-contrib's torch CrossQ is left out: its actor's
batch-renorm layers would need the same folding for a learner that measured no faster here.

Threads: a behaviour run is one small MLP update per env step, far too small to gain from
intra-op parallelism (2 XLA threads measured no faster than 1 on 2 cores, see
``benchmarks/README.md``), so torch and XLA are pinned to one thread, as collection is, which
also keeps a busy host from slowing the run to a crawl.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

ALGORITHMS: tuple[str, ...] = ("sac", "tqc", "crossq", "ppo")
LIBRARIES: tuple[str, ...] = ("sb3", "sbx")
#: (algorithm, library) pairs spin can train.
LEARNERS: tuple[tuple[str, str], ...] = (
    ("sac", "sb3"), ("tqc", "sb3"), ("ppo", "sb3"),
    ("sac", "sbx"), ("tqc", "sbx"), ("crossq", "sbx"),
)
#: Learners whose policy is a tanh-squashed Gaussian on the continuous view.
SQUASHED_GAUSSIAN: tuple[str, ...] = ("sac", "tqc", "crossq")
#: The XLA flags that keep JAX's CPU backend on one thread (set before JAX is imported).
ONE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


class LearnerUnavailable(RuntimeError):
    """The learner's library is not installed (e.g. sbx without the ``.[sbx]`` extra)."""


def sbx_installed() -> bool:
    """Whether the JAX learners (``sbx-rl`` and JAX) can be imported."""
    return importlib.util.find_spec("sbx") is not None and importlib.util.find_spec("jax") is not None


def check_learner(algorithm: str, library: str) -> None:
    """Raise ``ValueError`` naming what is accepted if (algorithm, library) is not offered."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}: accepted {', '.join(ALGORITHMS)}")
    if library not in LIBRARIES:
        raise ValueError(f"unknown library {library!r}: accepted {', '.join(LIBRARIES)}")
    if (algorithm, library) not in LEARNERS:
        offered = ", ".join(f"{a}/{lib}" for a, lib in LEARNERS)
        raise ValueError(f"{algorithm} is not offered with {library}: accepted {offered}")


def _xla_one_thread() -> None:
    # XLA reads its flags once, when JAX is imported: later calls cannot change them.
    if "jax" not in sys.modules:
        os.environ.setdefault("XLA_FLAGS", ONE_THREAD_XLA_FLAGS)


def pin_threads() -> None:
    """One torch thread and (if JAX is not imported yet) one XLA thread for this process."""
    import torch

    torch.set_num_threads(1)
    _xla_one_thread()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """:func:`pin_threads` for the duration of a block; torch's thread count is restored after."""
    import torch

    before = torch.get_num_threads()
    pin_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def algorithm_class(algorithm: str, library: str) -> Any:
    """The SB3-API class that trains ``algorithm`` with ``library``.

    Raises:
        LearnerUnavailable: ``library`` (or sb3-contrib for TQC) is not installed.
    """
    check_learner(algorithm, library)
    if library == "sbx":
        if not sbx_installed():
            raise LearnerUnavailable(
                f"{algorithm}/sbx needs the JAX learners: pip install -e '.[sbx]' "
                "(or choose --library sb3)")
        _xla_one_thread()
        import sbx

        return {"sac": sbx.SAC, "tqc": sbx.TQC, "crossq": sbx.CrossQ}[algorithm]
    if algorithm == "tqc":
        if importlib.util.find_spec("sb3_contrib") is None:
            raise LearnerUnavailable("tqc/sb3 needs sb3-contrib: pip install -e '.[sbx]'")
        from sb3_contrib import TQC

        return TQC
    from stable_baselines3 import PPO, SAC

    return SAC if algorithm == "sac" else PPO


def activation(name: str, library: str) -> Any:
    """The activation function ``name`` (an entry of ``config.ACTIVATIONS``) for ``library``."""
    if library == "sbx":
        import flax.linen as nn

        return {"ReLU": nn.relu, "Tanh": nn.tanh, "ELU": nn.elu, "GELU": nn.gelu,
                "LeakyReLU": nn.leaky_relu}[name]
    import torch

    return getattr(torch.nn, name)


# ============================================================================= export
def actor_state_dict(model: Any, algorithm: str, library: str) -> dict[str, Any]:
    """The policy of a trained learner as torch tensors, in the stored format.

    PPO: the whole ``ActorCriticPolicy`` state dict. Squashed-Gaussian learners: SB3's SAC
    ``Actor`` state dict with every key prefixed ``actor.`` (what
    :func:`spin_data.behaviour.policy.build_policy_module` builds for ``"sac"``).
    """
    import torch

    if library == "sb3":
        if algorithm == "ppo":
            return {k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()}
        return {f"actor.{k}": v.detach().cpu().clone()
                for k, v in model.policy.actor.state_dict().items()}
    state = model.policy.actor_state
    if algorithm == "crossq":  # params and batch statistics are held apart
        params = _to_numpy(state.params)
        layers = _fold_batch_renorm(params, _to_numpy(state.batch_stats),
                                    n_hidden=len(_dense_names(params)) - 2)
    else:
        params = _to_numpy(state.params["params"])
        layers = [(params[name]["kernel"], params[name]["bias"]) for name in _dense_names(params)]
    hidden, (mu_k, mu_b), (ls_k, ls_b) = layers[:-2], layers[-2], layers[-1]
    out: dict[str, Any] = {}
    for i, (kernel, bias) in enumerate(hidden):
        out[f"actor.latent_pi.{2 * i}.weight"] = kernel.T
        out[f"actor.latent_pi.{2 * i}.bias"] = bias
    out.update({"actor.mu.weight": mu_k.T, "actor.mu.bias": mu_b,
                "actor.log_std.weight": ls_k.T, "actor.log_std.bias": ls_b})
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}


def _to_numpy(tree: Any) -> Any:
    if isinstance(tree, dict) or hasattr(tree, "items"):
        return {k: _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree, dtype=np.float64)


def _dense_names(params: dict[str, Any]) -> list[str]:
    # flax numbers layers in creation order: hidden layers, then the mean and log-std heads.
    names = [k for k in params if k.startswith("Dense_")]
    return sorted(names, key=lambda k: int(k.split("_")[1]))


def _fold_batch_renorm(params: dict[str, Any], stats: dict[str, Any], n_hidden: int
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
    """CrossQ's actor ``BRN_0 -> [Dense_i -> act -> BRN_{i+1}] * n -> Dense mean / log-std`` in
    evaluation mode, with each batch-renorm (an affine map from its running statistics) folded
    into the Dense layers that read its output. Returns (kernel (in, out), bias) per Dense."""
    from sbx.common.jax_layers import BatchRenorm

    eps = BatchRenorm.epsilon  # the class default, which sbx's actor does not override
    affine = []
    for j in range(n_hidden + 1):
        name = f"BatchRenorm_{j}"
        inv = params[name]["scale"] / np.sqrt(stats[name]["var"] + eps)  # use_scale, use_bias
        bias = params[name]["bias"]
        affine.append((inv, bias - stats[name]["mean"] * inv))  # y = x * s + t
    layers = []
    for i, name in enumerate(_dense_names(params)):
        s, t = affine[min(i, n_hidden)]  # both heads read the last batch-renorm's output
        kernel, bias = params[name]["kernel"], params[name]["bias"]
        layers.append((s[:, None] * kernel, bias + t @ kernel))
    return layers
