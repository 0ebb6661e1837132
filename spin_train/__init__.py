"""spin_train: SPIN (pre-trained Action Structure Model + light policy heads) and its baselines.

Reads datasets only through spin_data's store reader and schema; never imports behaviour training.
"""

__version__ = "0.1.0"
