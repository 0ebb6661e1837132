"""SPIN stage 1: pre-training the Action Structure Model (and the paper's alternatives)."""

from spin_train.pretrain.objectives import OBJECTIVES, make_objective, mask_actions
from spin_train.pretrain.trainer import (PretrainConfig, PretrainResult, asm_normaliser, load_asm,
                                         pretrain)

__all__ = ["OBJECTIVES", "PretrainConfig", "PretrainResult", "asm_normaliser", "load_asm",
           "make_objective", "mask_actions", "pretrain"]
