"""Stage-2 offline RL objectives, actor-agnostic: IQL (default), AWAC, discrete BCQ."""

from __future__ import annotations

from spin_train.algos.awac import AWAC
from spin_train.algos.base import OfflineAlgorithm
from spin_train.algos.bcq import BCQ
from spin_train.algos.iql import IQL

ALGORITHMS = {"iql": IQL, "awac": AWAC, "bcq": BCQ}

__all__ = ["ALGORITHMS", "AWAC", "BCQ", "IQL", "OfflineAlgorithm"]
