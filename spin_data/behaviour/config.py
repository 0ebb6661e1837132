"""What a behaviour-policy run is: :class:`BehaviourConfig`, its budget presets and cache key.

Every field that changes what a run produces is part of the config, and the cache key hashes
the config's resolved form (defaults filled in, the env name made canonical), so two configs
that would train the same policy share one cache entry - which is what lets the medium and the
expert dataset of a task come from one run's checkpoint ladder.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from spin_data.behaviour.learners import ALGORITHMS, SQUASHED_GAUSSIAN, check_learner, sbx_installed
from spin_data.envs import registry
from spin_data.envs.bins import GRID_KINDS, GridKind

Algorithm = Literal["sac", "tqc", "crossq", "ppo"]
Library = Literal["sb3", "sbx"]
BUDGET_PRESETS: tuple[str, ...] = ("test", "default")

#: Keys of ``hyperparameters`` that spin consumes itself; every other key is passed to the SB3
#: algorithm's constructor unchanged.
SPIN_KEYS = ("net_arch", "activation_fn", "reward_shaping_scale")
#: Activation functions a ``policy.json`` may name (an allow-list: no arbitrary imports).
ACTIVATIONS = ("ReLU", "Tanh", "ELU", "GELU", "LeakyReLU")

#: SAC on the continuous view (DMC tasks). SB3's defaults except where noted.
SAC_DEFAULTS: dict[str, Any] = {
    "learning_rate": 3e-4,  # Adam, actor, critics and entropy coefficient
    "buffer_size": 1_000_000,  # replay capacity in transitions
    "learning_starts": 10_000,  # uniform-random Box actions before the first update (env steps)
    "batch_size": 256,  # transitions per gradient step
    "tau": 0.005,  # Polyak rate of the target critics
    "gamma": 0.99,  # discount
    "train_freq": 1,  # env steps (per env) between updates
    "gradient_steps": 1,  # gradient steps per update
    "ent_coef": "auto",  # entropy temperature, tuned towards target_entropy = -N
    "net_arch": [256, 256],  # hidden units of actor and each critic
    "activation_fn": "ReLU",  # hidden activation (a name from ACTIVATIONS)
}

#: TQC (Kuznetsov et al. 2020) on the continuous view: SAC's settings plus distributional critics
#: with both libraries' defaults (2 critics x 25 quantiles), the top 2 quantiles of each dropped.
TQC_DEFAULTS: dict[str, Any] = {**SAC_DEFAULTS, "top_quantiles_to_drop_per_net": 2}

#: CrossQ (Bhatt et al. 2024): no target networks, batch renormalisation, actor updated every
#: 3rd step, Adam(lr 1e-3, beta1 0.5) - sbx's defaults - except the critic width: 256-256 like
#: the actor (the paper's 2048-wide critics cost 16x the compute per step, measured 24 vs 160
#: steps/s on one CPU core at 1024).
CROSSQ_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,  # Adam, actor and critics
    "buffer_size": 1_000_000,  # replay capacity in transitions
    "learning_starts": 5_000,  # uniform-random Box actions before the first update (env steps)
    "batch_size": 256,  # transitions per gradient step
    "gamma": 0.99,  # discount
    "train_freq": 1,  # env steps (per env) between updates
    "gradient_steps": 1,  # gradient steps per update
    "policy_delay": 3,  # critic updates per actor update
    "ent_coef": "auto",  # entropy temperature, tuned towards target_entropy = -N
    "net_arch": [256, 256],  # hidden units of actor and each critic
    "activation_fn": "ReLU",  # hidden activation (a name from ACTIVATIONS)
}

#: PPO on the native MultiDiscrete space (mazes). Tuned on maze-5, 2 CPU cores, 8 envs. Without
#: shaping PPO rarely finds the goal (ent_coef 0.01, n_steps 256: never in 300k steps; ent_coef
#: 0.05, n_steps 512: mean return 40 after 150k steps). With the shaping below: mean return 97
#: (normalised 0.98) after about 57k steps, 98.1 (0.988) at 205k; about 16 s / 57 s of training.
PPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 3e-4,  # Adam
    "n_steps": 512,  # rollout length per env between updates
    "batch_size": 512,  # minibatch size (transitions)
    "n_epochs": 10,  # passes over each rollout
    "gamma": 0.99,  # discount (also the shaping discount)
    "gae_lambda": 0.95,  # GAE trace decay
    "clip_range": 0.2,  # PPO ratio clip
    "ent_coef": 0.01,  # entropy bonus: keeps exploring the 2**N joint actions early on
    "vf_coef": 0.5,  # value-loss weight
    "max_grad_norm": 0.5,  # gradient-norm clip
    "net_arch": [64, 64],  # hidden units of the policy and value MLPs (separate nets)
    "activation_fn": "Tanh",  # hidden activation (a name from ACTIVATIONS)
    # Maze only: potential-based shaping phi = -scale * geodesic distance to the goal, training
    # rewards only (see spin_data.behaviour.shaping); 0 disables it.
    "reward_shaping_scale": 50.0,
}


def default_hyperparameters(algorithm: str, family: str) -> dict[str, Any]:
    """A fresh copy of the documented defaults of ``algorithm`` for an env ``family``."""
    if algorithm in SQUASHED_GAUSSIAN:
        return copy.deepcopy({"sac": SAC_DEFAULTS, "tqc": TQC_DEFAULTS,
                              "crossq": CROSSQ_DEFAULTS}[algorithm])
    params = copy.deepcopy(PPO_DEFAULTS)
    if family != "maze":
        del params["reward_shaping_scale"]  # shaping knows only the maze's geometry
    return params


def default_algorithm(env: str) -> str:
    """SAC (continuous view) for DMC tasks, PPO (MultiDiscrete) for mazes."""
    return "sac" if registry.resolve(env).family == "dmc" else "ppo"


def default_library(algorithm: str) -> str:
    """The JAX port (sbx) for the continuous-view learners when it is installed - measured
    1.7x SB3's training steps/s on a CPU core with the same hyperparameters
    (``benchmarks/behaviour.py``) - else stable-baselines3. PPO: stable-baselines3.

    The choice is recorded in every run's config and dataset metadata; recipes that must give
    the same bytes everywhere name their library."""
    if algorithm == "ppo":
        return "sb3"
    if algorithm == "crossq":
        return "sbx"
    return "sbx" if sbx_installed() else "sb3"


@dataclass
class BehaviourConfig:
    """One behaviour-policy training run (an SB3 learner plus its evaluation ladder).

    ``None`` fields are filled in by ``__post_init__`` from the env's family, and
    ``hyperparameters`` is merged over the algorithm's defaults, so a config always holds the
    complete description that :meth:`cache_key` hashes.
    """

    # Registry name of the task (``cheetah``, ``walker-walk``, ``maze-5``, ...).
    env: str
    # Bins per action dimension; None = the env's default (3 for DMC, 2 for mazes).
    bins: int | None = None
    # DMC bin grid: each actuator's real bounds ("actuator") or [-1, 1] ("unit"); mazes: "actuator".
    grid: GridKind = "actuator"
    # "sac", "tqc", "crossq" (on the continuous view) or "ppo" (on MultiDiscrete); None = sac for
    # DMC, ppo for mazes.
    algorithm: Algorithm | None = None
    # "sb3" (stable-baselines3 / sb3-contrib, torch) or "sbx" (their JAX port, extra .[sbx]);
    # None = default_library(algorithm).
    library: Library | None = None
    # Total training env steps (summed over the vectorised envs).
    budget: int = 100_000
    # Env steps between ladder rungs (checkpoint + evaluation); rung 0 is the untrained policy.
    eval_every: int = 10_000
    # Episodes per rung evaluation (stochastic policy, fixed evaluation seeds).
    eval_episodes: int = 10
    # Training envs stepped together (SB3 DummyVecEnv); env i is seeded seed + i.
    n_envs: int = 1
    # Seed of the learner (torch, action noise) and of the training envs.
    seed: int = 0
    # Algorithm hyperparameters, merged over SAC_DEFAULTS / PPO_DEFAULTS (see there for units).
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = registry.resolve(self.env)  # raises UnknownEnvironment
        registry.check_bins(self.env, self.bins)
        registry.check_grid(self.env, self.grid)
        self.bins = spec.default_bins if self.bins is None else self.bins
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 2:
            raise ValueError(f"bins must be an integer >= 2, got {self.bins!r}")
        if self.grid not in GRID_KINDS:
            accepted = " or ".join(map(repr, GRID_KINDS))
            raise ValueError(f"grid must be {accepted}, got {self.grid!r}")
        self.algorithm = default_algorithm(self.env) if self.algorithm is None else self.algorithm
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}: accepted {', '.join(ALGORITHMS)}")
        self.library = default_library(self.algorithm) if self.library is None else self.library
        check_learner(self.algorithm, self.library)
        for name in ("budget", "eval_every", "eval_episodes", "n_envs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        params = default_hyperparameters(self.algorithm, spec.family)
        unknown_spin = {"reward_shaping_scale"} - set(params)
        if unknown_spin & set(self.hyperparameters):
            raise ValueError("reward_shaping_scale applies to PPO on mazes only")
        unknown = sorted(set(self.hyperparameters) - set(params))
        if unknown:
            raise ValueError(f"unknown hyperparameter {unknown[0]!r} for {self.algorithm}: "
                             f"accepted {', '.join(params)}")
        for key, value in self.hyperparameters.items():
            params[key] = _checked_value(key, value, params[key])
        if params["activation_fn"] not in ACTIVATIONS:
            raise ValueError(
                f"activation_fn must be one of {', '.join(ACTIVATIONS)}, got {params['activation_fn']!r}"
            )
        self.hyperparameters = params

    def changed_hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters that differ from the algorithm's documented defaults."""
        defaults = default_hyperparameters(self.algorithm, self.family)
        return {k: v for k, v in self.hyperparameters.items() if defaults.get(k) != v}

    @property
    def canonical_env(self) -> str:
        """The task's full registry name (``cheetah`` -> ``cheetah-run``, ``maze`` -> ``maze-5``)."""
        return registry.resolve(self.env).canonical

    @property
    def family(self) -> str:
        """``"dmc"`` or ``"maze"``."""
        return registry.resolve(self.env).family

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (what ``config.json`` holds)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BehaviourConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def cache_key(self) -> str:
        """First 16 hex digits of the sha256 of everything that determines the run.

        Hashed: canonical env, bins, grid, algorithm, budget, seed, the resolved hyperparameters,
        and also n_envs, eval_every and eval_episodes (they change the trained policy or the
        ladder itself, so two runs differing in them must not share an entry).
        """
        identity = self.to_dict()
        identity["env"] = self.canonical_env
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _checked_value(key: str, value: Any, default: Any) -> Any:
    """``value`` for hyperparameter ``key`` if it has the kind of its default (a whole float
    such as 1e6 for an integer becomes an int); else ValueError naming what is accepted."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        if number and float(value).is_integer():
            value = int(value)
        ok, kind = number and isinstance(value, int), "an integer"
    elif isinstance(default, float):
        ok, kind = number, "a number"
    elif isinstance(default, list):
        ok = isinstance(value, list) and len(value) > 0 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        kind = "a list of layer widths such as [256, 256]"
    else:  # text defaults: an activation name, or ent_coef's "auto" (a number is accepted too)
        ok, kind = isinstance(value, str) or number, "text or a number"
    if not ok:
        raise ValueError(f"hyperparameter {key} must be {kind}, got {value!r}")
    return copy.deepcopy(value)


# ================================================================================ presets
#: Realistic training budgets (env steps) per canonical DMC task, SAC on the continuous view.
#: Hours of CPU time each (SAC trains at about 100 steps/s on 2 cores): run these on a GPU.
DMC_DEFAULT_BUDGETS: dict[str, int] = {
    "cheetah-run": 500_000,
    "finger-spin": 600_000,
    "fish-swim": 1_250_000,
    "walker-walk": 1_000_000,
    # Measured (sbx SAC, seed 0): 1.10 of the benchmark expert at 900k steps, confirmed on 100
    # fresh episodes; the 2M it had before is where that run was cut from (datasets/README.md).
    "quadruped-walk": 1_000_000,
    # Measured (sbx SAC, seed 0): 1.0 of the benchmark expert at 1M steps, fresh episodes too;
    # the 3M it had before is where that run was cut from (datasets/README.md).
    "humanoid-stand": 1_000_000,
    "dog-trot": 3_000_000,
}
#: Budget of any other dm_control task.
DMC_OTHER_BUDGET = 1_000_000


def preset(
    env: str,
    budget: str | int = "default",
    *,
    bins: int | None = None,
    grid: GridKind = "actuator",
    algorithm: Algorithm | None = None,
    library: Library | None = None,
    seed: int = 0,
    hyperparameters: dict[str, Any] | None = None,
) -> BehaviourConfig:
    """A :class:`BehaviourConfig` from a named budget preset.

    Presets:
        ``"test"``: well under a minute on 2 CPU cores, for tests and demos. DMC/SAC: 6,000 steps
            (1,000 random warm-up), a rung every 1,000 steps with 2 episodes, 64-64 nets, batch
            128, lr 1e-3 (cheetah: the best rung returns 12-21 vs 5.39 random). Maze/PPO: 61,440
            steps (15 rollouts of 8 x 512) in rungs of 4,096 with 10 episodes: the ladder climbs
            from random to about 97 (normalised 0.98), with partially trained rungs in between.
        ``"default"``: realistic. DMC/SAC: :data:`DMC_DEFAULT_BUDGETS` (1-3M steps), a rung every
            50,000 steps with 10 episodes - hours to days of CPU time (SAC: about 100 steps/s on 2
            cores); best run on a GPU. Maze/PPO: 300,000 steps (about 2-3 minutes on 2 cores, 8
            envs), a rung every 4,096 steps (one rollout) with 20 episodes.
        an int: the default preset with this many steps; rungs every ``min(default, budget // 10)``.
    """
    if isinstance(budget, str) and budget not in BUDGET_PRESETS:
        raise ValueError(f"unknown budget preset {budget!r}: accepted test, default or a step count")
    if not isinstance(budget, str) and (
        isinstance(budget, bool) or not isinstance(budget, int) or budget < 1
    ):
        raise ValueError(f"budget must be a preset name or an integer >= 1, got {budget!r}")
    spec = registry.resolve(env)
    algorithm = default_algorithm(env) if algorithm is None else algorithm
    params: dict[str, Any] = {}
    if algorithm in SQUASHED_GAUSSIAN:
        if budget == "test":
            fields = {"budget": 6_000, "eval_every": 1_000, "eval_episodes": 2, "n_envs": 1}
            # Small nets and a high learning rate so that a few thousand steps show learning.
            params = {"learning_starts": 1_000, "buffer_size": 20_000, "net_arch": [64, 64],
                      "batch_size": 128, "learning_rate": 1e-3}
        else:
            total = DMC_DEFAULT_BUDGETS.get(spec.canonical, DMC_OTHER_BUDGET)
            if spec.family == "maze":
                total = 300_000
            fields = {"budget": total, "eval_every": 25_000, "eval_episodes": 10, "n_envs": 1}
    else:
        if budget == "test":
            fields = {"budget": 61_440, "eval_every": 4_096, "eval_episodes": 10, "n_envs": 8}
        else:
            total = 300_000 if spec.family == "maze" else DMC_DEFAULT_BUDGETS.get(
                spec.canonical, DMC_OTHER_BUDGET)
            fields = {"budget": total, "eval_every": 4_096 if spec.family == "maze" else 50_000,
                      "eval_episodes": 20 if spec.family == "maze" else 10, "n_envs": 8}
    if not isinstance(budget, str):
        fields["budget"] = budget
        fields["eval_every"] = max(1, min(fields["eval_every"], budget // 10))
    params.update(hyperparameters or {})
    return BehaviourConfig(env=env, bins=bins, grid=grid, algorithm=algorithm, library=library,
                           seed=seed, hyperparameters=params, **fields)
