"""Behaviour policies rebuilt from plain weights, sampling with a numpy generator.

A run directory holds ``policy.json`` (what is needed to rebuild the SB3 policy module: the
algorithm, observation and action spaces, network architecture) and
``checkpoints/step-N.safetensors`` (the module's ``state_dict`` in the safetensors format).
:func:`load_policy` instantiates the SB3 policy class named by the algorithm (from a fixed
allow-list) and loads the weights, which can carry no code: safetensors holds tensors only, and
the ``.pt`` files of runs trained before it are read with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers. SB3's own ``PPO.load`` / ``SAC.load``
unpickle and are never used on checkpoints.

Why safetensors: its bytes are a function of the tensors (names, dtypes, shapes, values), so a
checkpoint's sha256 is the same on every machine that computes the same weights. ``torch.save``
writes a random ``serialization_id`` into every file, so two identical ``.pt`` checkpoints never
hash alike and the hashes recorded in ladders could not be reproduced.

:class:`BehaviourPolicy` turns observations into bin indices. Its randomness comes from numpy
generators passed in by the caller, never from torch's global RNG, so dataset collection is
reproducible from episode seeds alone (and matches :class:`spin_data.collect.BatchPolicy`).

Why float64: the network runs in float64 (weights upcast exactly from the float32 checkpoint,
observations taken as the float32 values a dataset stores). In float32, the matmul kernels a
BLAS picks for a CPU round differently (measured: up to 5.5e-6 in fish's pre-tanh mean between
MKL's default and ``MKL_CBWR=COMPATIBLE`` paths on one machine), so an action near a bin
boundary could land in another bin on another machine and the episode, and the dataset's
bytes, diverge from there. In float64 the same two paths differ by about 1e-14, so a pick moves
only for an action within that distance of a boundary: datasets are the same on every CPU.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from spin_data.envs.bins import BinGrid
from spin_data.files import file_sha256, replace_atomically

POLICY_SPEC_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint or policy.json cannot be loaded (missing, malformed, or not plain weights)."""


# ============================================================================= policy.json
def _encode_floats(values: np.ndarray) -> list[float | str]:
    # JSON has no infinities: unbounded observation dimensions are written as "inf" / "-inf".
    return [float(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
            for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _decode_floats(values: Sequence[float | str]) -> np.ndarray:
    return np.asarray([float(v) for v in values], dtype=np.float64)


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """JSON-ready description of a flat ``Box`` or ``MultiDiscrete`` space."""
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _encode_floats(space.low), "high": _encode_floats(space.high)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": [int(n) for n in space.nvec.reshape(-1)]}
    raise CheckpointError(f"unsupported space {space!r}: behaviour policies use Box or MultiDiscrete")


def space_from_dict(data: dict[str, Any]) -> gym.Space:
    """Inverse of :func:`space_to_dict`."""
    if data["type"] == "Box":
        shape, dtype = tuple(data["shape"]), np.dtype(data["dtype"])
        return gym.spaces.Box(_decode_floats(data["low"]).reshape(shape).astype(dtype),
                              _decode_floats(data["high"]).reshape(shape).astype(dtype), shape,
                              dtype=dtype)
    if data["type"] == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64))
    raise CheckpointError(f"unsupported space type {data['type']!r}")


def make_policy_spec(
    algorithm: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    net_arch: list[int],
    activation_fn: str,
    bin_grid: BinGrid,
    **extra: Any,
) -> dict[str, Any]:
    """The content of ``policy.json``: everything :func:`build_policy_module` needs.

    ``extra`` (env name, cache key, versions, ...) is recorded alongside for provenance.
    """
    import stable_baselines3

    return {
        "format": "spin-behaviour-policy",
        "version": POLICY_SPEC_VERSION,
        "algorithm": algorithm,
        "policy_class": _POLICY_CLASSES[algorithm],
        "observation_space": space_to_dict(observation_space),
        "action_space": space_to_dict(action_space),
        "policy_kwargs": {"net_arch": list(net_arch), "activation_fn": activation_fn},
        "bin_grid": bin_grid.to_dict(),
        "versions": {"stable_baselines3": stable_baselines3.__version__,
                     "torch": torch.__version__.split("+")[0]},
        **extra,
    }


# The only classes a policy.json can ask for (never an import path taken from the file).
_POLICY_CLASSES = {
    "sac": "stable_baselines3.sac.policies.SACPolicy",
    "ppo": "stable_baselines3.common.policies.ActorCriticPolicy",
}


def build_policy_module(spec: dict[str, Any]) -> torch.nn.Module:
    """Instantiate the (untrained) SB3 policy module that ``spec`` (a policy.json) describes."""
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.sac.policies import SACPolicy

    algorithm = spec.get("algorithm")
    if algorithm not in _POLICY_CLASSES:
        raise CheckpointError(f"policy.json names unknown algorithm {algorithm!r}")
    kwargs = spec["policy_kwargs"]
    from spin_data.behaviour.config import ACTIVATIONS

    if kwargs["activation_fn"] not in ACTIVATIONS:
        raise CheckpointError(f"policy.json names unknown activation {kwargs['activation_fn']!r}")
    cls = SACPolicy if algorithm == "sac" else ActorCriticPolicy
    module = cls(
        space_from_dict(spec["observation_space"]),
        space_from_dict(spec["action_space"]),
        lr_schedule=lambda _: 0.0,
        net_arch=list(kwargs["net_arch"]),
        activation_fn=getattr(torch.nn, kwargs["activation_fn"]),
    )
    module.set_training_mode(False)
    return module


# ============================================================================= checkpoints
#: File suffix of behaviour checkpoints (safetensors); ``.pt`` files of older runs still load.
CHECKPOINT_SUFFIX = ".safetensors"


def checkpoint_name(step: int) -> str:
    """A rung's checkpoint path relative to its run directory."""
    return f"checkpoints/step-{step}{CHECKPOINT_SUFFIX}"


def state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """The safetensors bytes of a dict of tensors (CPU, contiguous): the same tensors give the
    same bytes on any machine (no metadata is written: its order would not be fixed)."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in state.items()})


def save_weights(module: torch.nn.Module, path: Path) -> str:
    """Save the module's ``state_dict`` to ``path`` (see :func:`save_state`); returns its sha256."""
    return save_state({k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, path)


def save_state(state: dict[str, torch.Tensor], path: Path) -> str:
    """Write a dict of tensors to ``path`` atomically as safetensors; returns the file's sha256
    (a function of the tensors alone, see the module docstring)."""
    data = state_bytes(state)
    replace_atomically(path, lambda tmp: tmp.write_bytes(data))
    return hashlib.sha256(data).hexdigest()


def load_into(module: torch.nn.Module, spec: dict[str, Any], state: dict[str, torch.Tensor]
              ) -> None:
    """Load ``state`` into a module built by :func:`build_policy_module`, every key checked.

    A ``"sac"`` spec's checkpoint may hold the actor alone (``actor.*``: what every
    squashed-Gaussian learner stores, see :mod:`spin_data.behaviour.learners`) or the whole
    SB3 ``SACPolicy`` (the format before actor-only checkpoints).

    Raises:
        RuntimeError: missing or unexpected keys, or shapes that do not fit.
    """
    if spec["algorithm"] == "sac" and state and all(k.startswith("actor.") for k in state):
        module.actor.load_state_dict({k[len("actor."):]: v for k, v in state.items()},
                                     strict=True)
    else:
        module.load_state_dict(state, strict=True)


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint: safetensors, or a ``.pt`` file of an older run with
    ``torch.load(weights_only=True)`` (no arbitrary unpickling either way).

    Raises:
        CheckpointError: the file is missing, holds anything but a dict of tensors, or would
            need full unpickling (an arbitrary Python object).
    """
    if Path(path).suffix == CHECKPOINT_SUFFIX:
        return _load_safetensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path}: refused: not a plain weights file ({_first_line(err)})"
                              ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: not a state_dict (a dict of tensors)")
    return state


def _first_line(err: BaseException) -> str:
    """An error's first line (its type's name when it has no text)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a safetensors weights file ({_first_line(err)})"
                              ) from None


# ============================================================================= distributions
@dataclass(frozen=True)
class CategoricalFactors:
    """Independent categorical sub-actions (PPO on MultiDiscrete).

    ``probs[i]``: float64 ``(B, counts[i])``, the probabilities of dimension i's bins.
    """

    probs: list[np.ndarray]


@dataclass(frozen=True)
class SquashedGaussian:
    """SAC's tanh-squashed diagonal Gaussian, rescaled to ``[low, high]`` then snapped to bins.

    ``mean``, ``std``: float64 ``(B, N)``, of the Gaussian *before* tanh. ``low``, ``high``:
    ``(N,)`` bounds of the continuous action (the bin grid's).
    """

    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray


RngLike = np.random.Generator | Sequence[np.random.Generator]


class BehaviourPolicy:
    """A trained behaviour policy: observations ``(B, D)`` -> bin indices ``(B, N)``.

    Runs the network in float64 (see the module docstring): ``module`` is converted in place.

    Attributes:
        module: the SB3 policy module (eval mode, float64).
        spec: the policy.json content.
        bin_grid: the grid the indices refer to.
        algorithm: ``"sac"`` or ``"ppo"``.
        checkpoint: the weights file, if loaded from one.
        sha256: that file's sha256 (None if not loaded from a file).
    """

    def __init__(self, module: torch.nn.Module, spec: dict[str, Any],
                 checkpoint: Path | None = None, sha256: str | None = None) -> None:
        # load_state_dict copies float32 checkpoints into these float64 parameters exactly.
        self.module = module.double()
        self.spec = spec
        self.algorithm: str = spec["algorithm"]
        self.bin_grid = BinGrid.from_dict(spec["bin_grid"])
        self.checkpoint = checkpoint
        self.sha256 = sha256

    def _tensor(self, observations: np.ndarray) -> torch.Tensor:
        obs = np.asarray(observations, dtype=np.float32)
        if obs.ndim != 2:
            raise ValueError(f"observations must have shape (B, D), got {obs.shape}")
        device = next(self.module.parameters()).device  # a training module may sit on a GPU
        return torch.as_tensor(obs, device=device)

    @torch.no_grad()
    def distribution(self, observations: np.ndarray) -> CategoricalFactors | SquashedGaussian:
        """The action distribution at each observation (float32-castable ``(B, D)``), computed in
        float64 from the float32 observations."""
        module = self.module
        if self.algorithm == "ppo":
            features = self._features(observations, module.pi_features_extractor)
            logits = module.action_net(module.mlp_extractor.forward_actor(features))
            split = torch.split(logits, list(module.action_dist.action_dims), dim=1)
            return CategoricalFactors([torch.softmax(x, dim=1).cpu().numpy() for x in split])
        from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN

        actor = module.actor
        latent = actor.latent_pi(self._features(observations, actor.features_extractor))
        # SB3's Actor.get_action_dist_params, minus its float32 cast of the observations.
        log_std = torch.clamp(actor.log_std(latent), LOG_STD_MIN, LOG_STD_MAX)
        return SquashedGaussian(actor.mu(latent).cpu().numpy(), log_std.exp().cpu().numpy(),
                                self.bin_grid.low, self.bin_grid.high)

    def _features(self, observations: np.ndarray, extractor: torch.nn.Module) -> torch.Tensor:
        """SB3's ``extract_features`` in float64: its preprocessing casts to float32, which the
        float32 observations survive exactly, then the upcast."""
        from stable_baselines3.common.preprocessing import preprocess_obs

        obs = preprocess_obs(self._tensor(observations), self.module.observation_space,
                             normalize_images=self.module.normalize_images)
        return extractor(obs.double())

    def act(self, observations: np.ndarray, rng: RngLike | None = None,
            deterministic: bool = False) -> np.ndarray:
        """Bin indices (int64 ``(B, N)``) for observations ``(B, D)``.

        Args:
            rng: one generator (rows draw from it in row order: ``rng.random((B, N))`` or
                ``rng.standard_normal((B, N))``), or a sequence of ``B`` generators (row ``i``
                draws ``(N,)`` from ``rng[i]`` only, as :class:`spin_data.collect.BatchPolicy`
                asks). Not needed when ``deterministic``.
            deterministic: the distribution's mode (per-dimension argmax for PPO, ``tanh(mean)``
                for SAC) instead of a sample: the SB3 model's own deterministic action.
        """
        dist = self.distribution(observations)
        batch = np.asarray(observations).shape[0]
        n_dims = self.bin_grid.n_dims
        if isinstance(dist, CategoricalFactors):
            if deterministic:
                return np.stack([p.argmax(axis=1) for p in dist.probs], axis=1).astype(np.int64)
            uniforms = _draw(rng, "random", batch, n_dims)
            out = np.empty((batch, n_dims), dtype=np.int64)
            for i, p in enumerate(dist.probs):
                # Inverse CDF: the bin whose cumulative-probability interval holds u.
                cdf = np.cumsum(p, axis=1)
                out[:, i] = np.minimum((uniforms[:, i:i + 1] >= cdf[:, :-1]).sum(axis=1),
                                       p.shape[1] - 1)
            return out
        pre_tanh = dist.mean if deterministic else (
            dist.mean + dist.std * _draw(rng, "standard_normal", batch, n_dims))
        values = dist.low + 0.5 * (np.tanh(pre_tanh) + 1.0) * (dist.high - dist.low)
        return self.bin_grid.quantise(values)

    def __repr__(self) -> str:
        where = f", checkpoint={str(self.checkpoint)!r}" if self.checkpoint else ""
        return f"BehaviourPolicy({self.algorithm}, {self.bin_grid!r}{where})"


def _draw(rng: RngLike | None, method: str, batch: int, n_dims: int) -> np.ndarray:
    if rng is None:
        raise ValueError("sampling needs a numpy Generator (or one per row); pass rng=")
    if isinstance(rng, np.random.Generator):
        return getattr(rng, method)((batch, n_dims))
    rngs = list(rng)
    if len(rngs) != batch:
        raise ValueError(f"got {len(rngs)} generators for {batch} observations")
    if batch == 0:
        return np.empty((0, n_dims))
    return np.stack([getattr(r, method)(n_dims) for r in rngs])


# ============================================================================= loading
def read_policy_spec(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a ``policy.json``."""
    try:
        spec = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no policy.json (needed to rebuild the network)") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not JSON ({err})") from None
    if spec.get("format") != "spin-behaviour-policy":
        raise CheckpointError(f"{path}: not a spin behaviour-policy description")
    if spec.get("version", 0) > POLICY_SPEC_VERSION:
        raise CheckpointError(f"{path}: version {spec['version']} is newer than this spin reads")
    return spec


def load_policy(checkpoint_path: str | os.PathLike,
                policy_json: str | os.PathLike | None = None) -> BehaviourPolicy:
    """Rebuild a behaviour policy from a ladder checkpoint, without unpickling anything.

    Args:
        checkpoint_path: a ``checkpoints/step-N.safetensors`` (or older ``.pt``) file of a run
            directory.
        policy_json: the run's ``policy.json``; default: two levels up from the checkpoint
            (``<run>/checkpoints/step-N.safetensors`` -> ``<run>/policy.json``).

    Raises:
        CheckpointError: missing or malformed files, or a checkpoint that is not plain weights.
    """
    path = Path(checkpoint_path)
    spec_path = Path(policy_json) if policy_json is not None else path.parent.parent / "policy.json"
    spec = read_policy_spec(spec_path)
    state = load_weights(path)
    module = build_policy_module(spec)
    try:
        load_into(module, spec, state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit {spec_path}: {err}") from None
    return BehaviourPolicy(module, spec, checkpoint=path, sha256=file_sha256(path))
