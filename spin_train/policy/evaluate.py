"""Evaluation of a stage-2 policy in the real (discretised) environment.

``evaluate(policy_fn, env_name, env_kwargs)`` runs ``episodes`` full episodes, episode ``i`` reset
with seed ``seed + i``, all of them stepped in lockstep with one batched ``policy_fn`` call per
step on the episodes still running (``spin_data.collect.collect_episodes`` does the stepping).
It reports undiscounted returns, lengths and the mean normalised score where the benchmark
publishes a reference score.

Returns are summed in float64 from the float32 rewards that the rollout records, exactly as the
dataset store and behaviour-policy evaluation compute theirs, so an evaluation return and a
dataset's episode return of the same episode are the same number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from spin_data.collect import collect_episodes
from spin_data.envs.reference import NoReferenceScore
from spin_data.envs.registry import make_env, normalised_score, resolve

#: ``observations (B, D) float32 -> bin indices (B, N) int64``: the trainer's actor, observation
#: normaliser and sampling mode wrapped into one batched call.
PolicyFn = Callable[[np.ndarray], np.ndarray]

#: make_env keyword arguments that a dataset's ``metadata["env"]["kwargs"]`` may carry.
ENV_KWARGS = ("bins", "grid")


def evaluation_seeds(seed: int, step: int) -> tuple[int, int]:
    """``(first environment seed, sampling seed)`` of a run's evaluation at ``step``: the same
    environments at every step of run ``seed``, and a sampling stream per (seed, step), so a
    resumed run, or a script replaying an evaluation, acts identically."""
    return 1_000_000 + 1000 * seed, seed * 1_000_003 + step


@dataclass(frozen=True, eq=False)  # array fields: compare them with numpy, not ==
class EvalResult:
    """Outcome of :func:`evaluate`.

    Attributes:
        returns: float64 ``(episodes,)`` undiscounted episode returns, in seed order.
        lengths: int64 ``(episodes,)`` steps per episode.
        normalised: mean normalised score ``(mean - random) / (expert - random)`` as a fraction
            (1.0 = expert), or None where the benchmark publishes no reference score.
        seeds: int64 ``(episodes,)`` reset seed of each episode.
    """

    returns: np.ndarray
    lengths: np.ndarray
    normalised: float | None
    seeds: np.ndarray

    @property
    def mean(self) -> float:
        """Mean undiscounted return over the episodes."""
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        """Standard deviation of the returns over the episodes (population, ``ddof=0``)."""
        return float(np.std(self.returns))


class _FunctionPolicy:
    """A :class:`spin_data.collect.BatchPolicy` around ``policy_fn``.

    The per-episode generators that ``collect_episodes`` hands over are not used: the trainer's
    policy owns its sampling randomness (or acts greedily).
    """

    def __init__(self, policy_fn: PolicyFn, n_dims: int) -> None:
        self.policy_fn = policy_fn
        self.n_dims = n_dims

    def act(self, observations: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        actions = np.asarray(self.policy_fn(np.asarray(observations, dtype=np.float32)))
        if actions.shape != (len(observations), self.n_dims):
            raise ValueError(f"policy_fn must return bin indices of shape "
                             f"({len(observations)}, {self.n_dims}), got {actions.shape}")
        return actions.astype(np.int64, copy=False)


def env_make_kwargs(env_name: str, env_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :func:`spin_data.envs.make_env` keyword arguments for a dataset's environment.

    ``env_kwargs`` is a dataset's ``metadata["env"]["kwargs"]`` (e.g. ``{"bins": 3, "grid":
    "unit"}``). Datasets record ``grid`` for every task, but only DMC tasks take one (a maze's
    bins are off/on), so it is dropped for mazes.

    Raises:
        ValueError: a key other than ``bins`` / ``grid``.
    """
    env_kwargs = dict(env_kwargs or {})
    unknown = sorted(set(env_kwargs) - set(ENV_KWARGS))
    if unknown:
        raise ValueError(f"env_kwargs for {env_name!r}: unknown key(s) {', '.join(unknown)} "
                         f"(accepted: {', '.join(ENV_KWARGS)})")
    kwargs: dict[str, Any] = {}
    if env_kwargs.get("bins") is not None:
        kwargs["bins"] = env_kwargs["bins"]
    if resolve(env_name).family == "dmc" and env_kwargs.get("grid") is not None:
        kwargs["grid"] = env_kwargs["grid"]
    return kwargs


def reference_bins(env_kwargs: Mapping[str, Any] | None) -> int | None:
    """The bin count under which a task's reference score is published, from ``env_kwargs``.

    Reference scores are keyed by one bin count for every dimension: an int ``bins`` (or a list
    of equal ones) gives that count, no ``bins`` gives None (the task's default), and a list of
    different counts gives ``-1``, which no reference score has.
    """
    bins = (env_kwargs or {}).get("bins")
    if bins is None:
        return None
    if isinstance(bins, (int, np.integer)):
        return int(bins)
    counts = {int(b) for b in bins}
    return counts.pop() if len(counts) == 1 else -1


def mean_normalised(env_name: str, mean_return: float, bins: int | None) -> float | None:
    """``normalised_score(env_name, mean_return, bins)``, or None without a reference score."""
    try:
        return float(normalised_score(env_name, mean_return, bins))
    except NoReferenceScore:
        return None


#: Environments built by this process, reused by later evaluations of the same task: building a
#: DMC task costs 0.05-1 s, which with 10 episodes per evaluation is as much as the episodes of
#: a short task. Reuse is safe: every episode starts with ``reset(seed=...)``.
_ENVS: dict[tuple[str, str], list[Any]] = {}


def eval_envs(env_name: str, kwargs: Mapping[str, Any], n: int) -> list[Any]:
    """At least ``n`` environments ``make_env(env_name, **kwargs)``, built once per process."""
    key = (resolve(env_name).canonical, repr(sorted(kwargs.items())))
    envs = _ENVS.setdefault(key, [])
    while len(envs) < n:
        envs.append(make_env(env_name, **kwargs))
    return envs


def evaluate(policy_fn: PolicyFn, env_name: str, env_kwargs: Mapping[str, Any] | None = None,
             episodes: int = 10, seed: int = 0) -> EvalResult:
    """Run ``episodes`` episodes of ``policy_fn`` in ``env_name`` and report their returns.

    Args:
        policy_fn: ``observations (B, D) float32 -> bin indices (B, N) int64``, called once per
            step on the episodes still running (``B`` shrinks as episodes end).
        env_name: a registry name (a dataset's ``metadata["env"]["name"]``, e.g. ``maze-5``).
        env_kwargs: the dataset's ``metadata["env"]["kwargs"]`` (see :func:`env_make_kwargs`).
        episodes: number of episodes, all stepped in lockstep.
        seed: episode ``i`` is reset with seed ``seed + i``.

    Returns:
        An :class:`EvalResult`; the same policy outputs and seed give the same returns.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    kwargs = env_make_kwargs(env_name, env_kwargs)
    envs = eval_envs(env_name, kwargs, episodes)[:episodes]
    n_dims = int(envs[0].action_space.shape[0])
    seeds = [seed + i for i in range(episodes)]
    rollouts = list(collect_episodes(envs, _FunctionPolicy(policy_fn, n_dims), seeds,
                                     n_envs=episodes))
    returns = np.asarray([np.sum(ep.rewards, dtype=np.float64) for ep in rollouts],
                         dtype=np.float64)
    lengths = np.asarray([len(ep.rewards) for ep in rollouts], dtype=np.int64)
    normalised = mean_normalised(env_name, float(np.mean(returns)), reference_bins(env_kwargs))
    return EvalResult(returns=returns, lengths=lengths, normalised=normalised,
                      seeds=np.asarray(seeds, dtype=np.int64))
