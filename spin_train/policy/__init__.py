"""SPIN stage 2: policies on the frozen ASM, baselines, offline RL objectives, evaluation."""

from spin_train.models.actors import ACTORS, Actor, make_actor
from spin_train.policy.trainer import PolicyConfig, PolicyResult, train_policy

__all__ = ["ACTORS", "Actor", "PolicyConfig", "PolicyResult", "make_actor", "train_policy"]
