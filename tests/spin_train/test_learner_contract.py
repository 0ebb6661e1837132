"""The contract every stage-2 learner keeps with the trainer, for every (actor, algo) pair the
CLI accepts: factored actors x IQL/AWAC/BCQ, joint x BCQ/CQL/BC, MERLION x BCQ/CQL.

- :meth:`set_data_scale` (always first), then :meth:`first_phase` returns host numbers
  (seconds >= 0);
- :meth:`update` returns finite 0-d tensors on the learner's device (no host sync);
- :meth:`eval_actions` gives ``(B, N)`` int64 bin indices inside each dimension's bins;
- a checkpoint (``full_state`` through ``save_checkpoint`` / ``load_checkpoint``, tensors only)
  loaded into a fresh learner resumes exactly: the same statistics and weights as the learner
  that went on without stopping, and the same parts frozen.
"""

from __future__ import annotations

import pytest
import torch

from spin_train.algos import algorithms_for
from spin_train.data import Batch, PhaseData
from spin_train.models import ActionStructureModel, ASMConfig
from spin_train.policy.trainer import POLICY_ACTORS, PolicyConfig, build_learner
from spin_train.runs import load_checkpoint, save_checkpoint

OBS_DIM, BINS = 3, (2, 3, 2)
PAIRS = [(actor, algo) for actor in POLICY_ACTORS for algo in algorithms_for(actor)]
SMALL = dict(critic_hidden=16, d_model=16, n_heads=2, n_layers=1, distill_steps=3,
             merlion_steps=3, merlion_batch=8, merlion_dim=2, batch_size=8)


def _batches(seed: int, n: int, size: int = 8) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    return [Batch(observations=torch.randn(size, OBS_DIM, generator=g),
                  actions=torch.stack([torch.randint(0, b, (size,), generator=g) for b in BINS], 1),
                  rewards=torch.rand(size, generator=g),
                  next_observations=torch.randn(size, OBS_DIM, generator=g),
                  not_done=(torch.rand(size, generator=g) > 0.1).float())
            for _ in range(n)]


def _learner(actor: str, algo: str):
    torch.manual_seed(0)
    asm = None
    if actor in ("spin", "distill"):
        asm = ActionStructureModel(ASMConfig(obs_dim=OBS_DIM, bins=BINS, d_model=16, n_heads=2,
                                             n_layers=1, head_hidden=16, dropout=0.0))
    cfg = PolicyConfig(dataset="unused", actor=actor, algo=algo, asm="unused" if asm else None,
                       **SMALL)
    learner = build_learner(cfg, OBS_DIM, BINS, asm)
    learner.set_data_scale(torch.tensor([2.0, 0.5, 1.0]), 0.1)  # as the trainer does, always
    return learner


def _phase_data(seed: int) -> PhaseData:
    pool = iter(_batches(seed, 64, 8))
    big = _batches(seed + 1, 1, 256)[0]

    def sample(n: int) -> Batch:
        return next(pool) if n <= 8 else big

    return PhaseData(sample=sample, batch_size=8, generator=torch.Generator().manual_seed(seed),
                     progress=False)


def _frozen(learner) -> list[str]:
    return [name for name, p in learner.named_parameters() if not p.requires_grad]


@pytest.mark.parametrize("actor,algo", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_every_learner_keeps_the_trainers_contract(actor, algo, tmp_path):
    learner = _learner(actor, algo)
    phase = learner.first_phase(_phase_data(5))
    assert all(v is None or isinstance(v, float) for v in phase.values())
    assert all(v >= 0 for k, v in phase.items() if k.endswith("_s"))

    generator = torch.Generator().manual_seed(1)
    for batch in _batches(2, 3):
        stats = learner.update(batch, generator)
        assert stats and all(isinstance(v, torch.Tensor) and v.dim() == 0
                             and v.device.type == "cpu" and bool(torch.isfinite(v))
                             for v in stats.values()), stats

    obs = torch.randn(5, OBS_DIM)
    with torch.no_grad():
        acts = learner.eval_actions(obs, torch.Generator().manual_seed(3))
    assert acts.shape == (5, len(BINS)) and acts.dtype == torch.int64
    assert all(((acts[:, i] >= 0) & (acts[:, i] < b)).all() for i, b in enumerate(BINS))

    # Checkpoint, then both the original and a fresh learner loaded from it go on.
    save_checkpoint(tmp_path / "last.pt", {"algo": learner.full_state(),
                                           "rng": generator.get_state()})
    state = load_checkpoint(tmp_path / "last.pt")
    resumed = _learner(actor, algo)
    resumed.load_full_state(state["algo"])
    resumed_generator = torch.Generator()
    resumed_generator.set_state(state["rng"])
    assert _frozen(resumed) == _frozen(learner)
    for batch in _batches(4, 3):
        torch.manual_seed(7)  # the same global stream for both (dropout, where a trunk has it)
        straight = learner.update(batch, generator)
        torch.manual_seed(7)
        again = resumed.update(batch, resumed_generator)
        assert {k: float(v) for k, v in again.items()} == {k: float(v)
                                                            for k, v in straight.items()}
    for (name, a), b in zip(learner.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
