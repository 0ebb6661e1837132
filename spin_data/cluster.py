"""Connecting to Ray: the one place spin starts or joins a Ray instance.

Both of spin's Ray backends (``spin-data generate --backend ray`` and the pipelines' Ray
executor) connect here, so every worker gets the same environment as the driver.
"""

from __future__ import annotations


def connect_ray(address: str | None = None) -> bool:
    """Join the Ray instance at ``address`` or start a local one; True if this call started it.

    ``address``: ``"auto"`` (the running cluster), ``"ray://host:port"``, or None (an instance
    already initialised in this process, else a new local one). The caller that started an
    instance is the one that shuts it down.
    """
    import ray

    if ray.is_initialized():
        return False
    from spin_data.blas import pinned_env

    # Workers of a cluster started elsewhere run the driver's OpenBLAS kernels too.
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": pinned_env()})
    return True
