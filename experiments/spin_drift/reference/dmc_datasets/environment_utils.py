"""``make_env`` for the SPIN reference code (github.com/matthewlanders/SPIN), on spin's pieces.

The reference's ASM.py and IQL.py call ``make_env(task_name=domain, task=task, factorised=True,
bin_size=bins)``, read ``observation_space.shape``, ``action_space.nvec`` and
``env.load_dataset(level=..., data_dir=...)`` (a list of ``(s, a, r, s', done)``), and evaluate
with ``reset(seed=...)`` / ``step(a)`` (Gymnasium's 5-tuple). Here all of it comes from the one
spin store named by ``$SPIN_REFERENCE_STORE``:

- the environment is the one spin's stage-2 trainer evaluates in, built from the store's
  ``metadata["env"]`` by the trainer's own helpers (``env_from_metadata``, ``env_make_kwargs``:
  spin_data's factorised env on the store's bin grid) and checked against the store's
  observation size and bin values (``check_env``);
- ``load_dataset`` reads the store's transitions with spin_data's reader (``open_dataset``).

Where the benchmark's package and spin could differ silently, spin's convention is taken:

- ``done`` is the store's *termination* flag (a true terminal), never its truncation (the time
  limit): IQL.py bootstraps with ``(1 - done)``, and spin's trainer bootstraps through time
  limits. On DM Control no step terminates, so every ``done`` is 0;
- an action is the executed bin index of each dimension, int64 ``(N,)`` (the store keeps
  uint8/uint16); the env's ``step`` takes the same indices;
- observations are float32 ``(D,)`` as stored (the benchmark's env returns float64; the
  reference casts to float32 either way); the next observation of an episode's last step is
  the episode's final observation;
- rewards are the stored float32 rewards, unscaled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import gymnasium as gym
import numpy as np

from spin_data import open_dataset
from spin_data.envs import make_env as spin_make_env
from spin_data.envs.registry import resolve
from spin_train.data import check_env
from spin_train.policy.evaluate import env_make_kwargs
from spin_train.policy.trainer import env_from_metadata

#: The environment variable naming the store (path or URL) that make_env serves.
STORE_VARIABLE = "SPIN_REFERENCE_STORE"

#: One transition as the benchmark's pickles hold it: ``(s (D,) float32, a (N,) int64,
#: r float32, s' (D,) float32, done bool)``.
Transition = tuple[np.ndarray, np.ndarray, np.float32, np.ndarray, np.bool_]


class Transitions(Sequence):
    """A store's transitions as the benchmark's list of ``(s, a, r, s', done)`` tuples.

    Built from whole arrays and yielding tuples of views on demand: a real list of 2M tuples
    would hold 10M numpy objects (about 1 GB) before the reference turns it back into arrays.

    Attributes:
        observations, next_observations: float32 ``(T, D)``.
        actions: int64 ``(T, N)`` bin indices.
        rewards: float32 ``(T,)``.
        dones: bool ``(T,)``: the store's terminations (see the module docstring).
    """

    def __init__(self, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                 next_observations: np.ndarray, dones: np.ndarray) -> None:
        self.observations, self.actions, self.rewards = observations, actions, rewards
        self.next_observations, self.dones = next_observations, dones

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    def __getitem__(self, index: int) -> Transition:
        return (self.observations[index], self.actions[index], self.rewards[index],
                self.next_observations[index], self.dones[index])

    def __iter__(self) -> Iterator[Transition]:
        return zip(self.observations, self.actions, self.rewards, self.next_observations,
                   self.dones)


def read_transitions(dataset) -> Transitions:
    """Every transition of an opened spin ``Dataset``, in the reference's encoding."""
    steps = dataset.transitions()
    return Transitions(steps["observations"].astype(np.float32, copy=False),
                       steps["actions"].astype(np.int64),
                       steps["rewards"].astype(np.float32, copy=False),
                       steps["next_observations"].astype(np.float32, copy=False),
                       steps["terminations"].astype(bool, copy=False))


class ReferenceEnv(gym.Wrapper):
    """spin's env for the store's task, plus the benchmark env's ``load_dataset``.

    ``_max_episode_steps`` is set because IQL.py reads the evaluation's episode limit from it
    (falling back to 1000): it is the task's own limit, which the env also truncates at.
    """

    def __init__(self, env: gym.Env, dataset) -> None:
        super().__init__(env)
        self.dataset = dataset
        self._max_episode_steps = int(env.get_wrapper_attr("max_episode_steps"))

    def load_dataset(self, level: str, return_type: str = "raw",
                     data_dir: str | None = None) -> Transitions:
        """The store's transitions (see :class:`Transitions`).

        Args:
            level: must be the store's quality (``metadata["quality"]``, e.g. medium-expert).
            return_type: ``raw`` only (what the reference asks for).
            data_dir: the reference's ``--dataset-root-dir``; when given it must name the same
                store as ``$SPIN_REFERENCE_STORE`` (same content checksum), so the data and the
                evaluation env cannot come from two stores.
        """
        md = self.dataset.metadata
        if return_type != "raw":
            raise ValueError(f"load_dataset: only return_type='raw' is served, got "
                             f"{return_type!r}")
        if level != md.get("quality"):
            raise ValueError(f"load_dataset: level {level!r} asked for, the store "
                             f"{self.dataset.location} holds {md.get('quality')!r}")
        if data_dir is not None:
            other = open_dataset(data_dir)
            if other.content_checksum != self.dataset.content_checksum:
                raise ValueError(f"load_dataset: data_dir {data_dir} is another store than "
                                 f"${STORE_VARIABLE} ({self.dataset.location})")
        print(f"Loading dataset from spin store {self.dataset.location} "
              f"({md.get('dataset_id')}, {self.dataset.content_checksum[:19]}...)", flush=True)
        return read_transitions(self.dataset)


def store_task(dataset) -> tuple[str, str, str, int]:
    """``(env name, domain, task, bins)`` of an opened store as the reference names them
    (``cheetah-run`` -> ``cheetah``, ``run``; one bin count for every dimension, its
    ``--bin-size``). ValueError in one line when the metadata names no env or bins differ."""
    name = (dataset.metadata.get("env") or {}).get("name")
    if not name:
        raise ValueError(f"{dataset.location}: the store's metadata names no env")
    domain, _, task = resolve(name).canonical.partition("-")
    counts = sorted(set(dataset.bin_grid.counts))
    if len(counts) != 1:
        raise ValueError(f"{dataset.location}: bins {list(dataset.bin_grid.counts)} differ by "
                         f"dimension; the reference takes one --bin-size")
    return name, domain, task, counts[0]


def store_location() -> str:
    """``$SPIN_REFERENCE_STORE``, refused in one line when unset."""
    location = os.environ.get(STORE_VARIABLE)
    if not location:
        raise ValueError(f"${STORE_VARIABLE} is not set: it names the spin store that the "
                         f"reference code's make_env and load_dataset serve")
    return location


def make_env(task_name: str, task: str, bin_size: int = 3,
             factorised: bool = True) -> ReferenceEnv:
    """The store's environment, as the benchmark's ``make_env(domain, task, bin_size)``.

    Raises:
        ValueError: ``factorised=False`` (spin's envs are factorised only), or a task or bin
            count other than the store's (the reference must be told the store's own).
        DatasetOpenError, StoreLocationError: ``$SPIN_REFERENCE_STORE`` holds no spin store.
    """
    if not factorised:
        raise ValueError("make_env: only factorised action spaces are served (spin's envs)")
    dataset = open_dataset(store_location())
    name, domain, store_task_name, bins = store_task(dataset)
    if (task_name, task) != (domain, store_task_name):
        raise ValueError(f"make_env: {task_name}-{task} asked for, the store "
                         f"{dataset.location} holds {domain}-{store_task_name}")
    if bin_size != bins:
        raise ValueError(f"make_env: bin_size {bin_size} asked for, the store "
                         f"{dataset.location} has {bins} bins per dimension")
    name, kwargs = env_from_metadata(dataset.metadata)
    env = spin_make_env(name, **env_make_kwargs(name, kwargs))
    check_env(dataset, env, name)
    return ReferenceEnv(env, dataset)
