"""Rolling out policies in discretised environments into whole episodes.

An episode is what the store's writer takes: the reset observation and one observation per step
(``L + 1`` rows), the executed bin indices, the rewards, and how it ended.

:func:`collect_episodes` steps several environments in lockstep and asks the policy for all of
their actions in one batched call. Every episode owns its random generator (seeded from its
episode seed), so an episode's actions do not depend on which other episodes share its batch:
the same episode seeds give the same episodes whatever the batch size or number of workers.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, NamedTuple, Protocol, Sequence

import numpy as np

from spin_data.envs.bins import BinGrid

Policy = Callable[[np.ndarray], np.ndarray]


class RolloutEpisode(NamedTuple):
    """One full episode.

    Fields: observations ``(L + 1, D)`` float32, actions ``(L, N)`` int64 bin indices, rewards
    ``(L,)`` float32, terminated, truncated, and the reset seed.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    seed: int | None


class BatchPolicy(Protocol):
    """A policy acting on a batch: ``act(obs (B, D), rngs) -> bin indices (B, N)``, row ``i``
    drawing its randomness from ``rngs[i]`` only."""

    def act(self, observations: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        ...


class UniformRandomPolicy:
    """Every sub-action's bin drawn uniformly (the benchmark's "random")."""

    def __init__(self, bin_grid: BinGrid) -> None:
        self.counts = np.asarray(bin_grid.counts)

    def act(self, observations: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        return np.stack([rng.integers(0, self.counts) for rng in rngs])


class RandomActionPolicy:
    """``policy``'s actions, each row's replaced with probability ``prob`` by a uniform random
    joint action (every sub-action's bin uniform and independent; it may equal the policy's).

    Row ``i`` draws its coin and its random action from ``rngs[i]`` after ``policy`` has drawn
    its own sample there, so an episode's actions still depend on its generator only.
    """

    def __init__(self, policy: BatchPolicy, bin_grid: BinGrid, prob: float) -> None:
        self.policy, self.prob = policy, float(prob)
        self.uniform = UniformRandomPolicy(bin_grid)

    def act(self, observations: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        actions = np.array(self.policy.act(observations, rngs), dtype=np.int64)
        replaced = [i for i, rng in enumerate(rngs) if rng.random() < self.prob]
        if replaced:
            actions[replaced] = self.uniform.act(observations[replaced],
                                                 [rngs[i] for i in replaced])
        return actions


def uniform_random_policy(bin_grid: BinGrid, rng: np.random.Generator) -> Policy:
    """A single-observation uniform-random policy drawing from ``rng``."""
    counts = np.asarray(bin_grid.counts)
    return lambda _obs: rng.integers(0, counts)


def run_episode(
    env: Any, policy: Policy, *, seed: int | None = None, options: dict | None = None
) -> RolloutEpisode:
    """Run ``policy`` (observation -> bin indices ``(N,)``) in ``env`` until the episode ends."""
    obs, _ = env.reset(seed=seed, options=options)
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(policy(obs), dtype=np.int64)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    return RolloutEpisode(np.stack(observations).astype(np.float32), np.stack(actions),
                          np.asarray(rewards, dtype=np.float32), bool(terminated),
                          bool(truncated), seed)


def episode_rng(seed: int) -> np.random.Generator:
    """The action-sampling generator of the episode with reset seed ``seed``.

    Distinct from the environment's own seed stream (a different spawn key), so the policy's
    noise and the simulator's initial state are independent.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))


def collect_episodes(
    make_env: Callable[[], Any] | Sequence[Any], policy: BatchPolicy, seeds: Sequence[int], *,
    n_envs: int = 8,
) -> Iterator[RolloutEpisode]:
    """Roll out one full episode per seed, ``n_envs`` at a time, yielding them in seed order.

    Args:
        make_env: builds one environment (called ``min(n_envs, len(seeds))`` times; those envs
            are closed at the end), or a list of ready environments to use (and leave open).
        policy: acts on the batch of running episodes (see :class:`BatchPolicy`).
        seeds: reset seed of each episode; also seeds its action sampling (:func:`episode_rng`).
        n_envs: environments stepped in lockstep (one batched policy call per step).
    """
    owned = callable(make_env)
    if owned:
        n_envs = max(1, min(n_envs, len(seeds)))
        envs = [make_env() for _ in range(n_envs)]
    else:
        envs = list(make_env)[: max(1, min(len(make_env), len(seeds)))]
        n_envs = len(envs)
    pending = list(seeds)[::-1]
    finished: dict[int, RolloutEpisode] = {}
    total = len(seeds)
    slots: list[dict | None] = [None] * n_envs
    next_index = 0
    yielded = 0

    def start(slot: int) -> None:
        nonlocal next_index
        seed = pending.pop()
        obs, _ = envs[slot].reset(seed=int(seed))
        slots[slot] = {"index": next_index, "seed": int(seed), "rng": episode_rng(int(seed)),
                       "obs": [obs], "actions": [], "rewards": []}
        next_index += 1

    for slot in range(n_envs):
        if pending:
            start(slot)
    while any(s is not None for s in slots):
        active = [i for i, s in enumerate(slots) if s is not None]
        observations = np.stack([slots[i]["obs"][-1] for i in active])
        actions = np.asarray(policy.act(observations, [slots[i]["rng"] for i in active]),
                             dtype=np.int64)
        for row, i in enumerate(active):
            s = slots[i]
            obs, reward, terminated, truncated, _ = envs[i].step(actions[row])
            s["obs"].append(obs)
            s["actions"].append(actions[row])
            s["rewards"].append(reward)
            if terminated or truncated:
                finished[s["index"]] = RolloutEpisode(
                    np.stack(s["obs"]).astype(np.float32), np.stack(s["actions"]),
                    np.asarray(s["rewards"], dtype=np.float32), bool(terminated),
                    bool(truncated), s["seed"])
                slots[i] = None
                if pending:
                    start(i)
        while yielded < total and yielded in finished:
            yield finished.pop(yielded)
            yielded += 1
    if owned:
        for env in envs:
            env.close()
