"""Networks of spin_train: the Action Structure Model and its building blocks."""

from spin_train.models.asm import ActionStructureModel, ASMConfig, QueriedTrunk
from spin_train.models.layers import SlotHeads, SlotLinear, TransformerBlock, mlp, slot_log_probs

__all__ = ["ASMConfig", "ActionStructureModel", "QueriedTrunk", "SlotHeads", "SlotLinear", "TransformerBlock",
           "mlp", "slot_log_probs"]
