"""spin_train's data path: Zarr store -> local cache -> device-resident (or host) sampler."""

from spin_train.data.buffer import Batch, ObservationNormaliser, PhaseData, TransitionBuffer
from spin_train.data.cache import CachedDataset, default_cache_dir, materialise
from spin_train.data.compat import SchemaMismatch, check_compatible, check_env
from spin_train.data.split import episode_ends, split_episodes

__all__ = [
    "Batch",
    "CachedDataset",
    "ObservationNormaliser",
    "PhaseData",
    "SchemaMismatch",
    "TransitionBuffer",
    "check_compatible",
    "check_env",
    "default_cache_dir",
    "episode_ends",
    "load_buffer",
    "materialise",
    "split_episodes",
]


def load_buffer(location, *, device="cpu", placement="auto", device_budget=None, normalise=False,
                seed=0, cache_dir=None, storage_options=None, steps=None) -> TransitionBuffer:
    """Open a store (path or URL), materialise it into the cache once, and return a sampler."""
    cached = materialise(location, cache_dir=cache_dir, storage_options=storage_options)
    return TransitionBuffer(cached, device=device, placement=placement,
                            device_budget=device_budget, normalise=normalise, seed=seed,
                            steps=steps)
