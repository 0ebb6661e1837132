"""Imported at start-up by the reference scripts' interpreters (this folder is first on their
PYTHONPATH; nothing else imports it).

torch >= 2.6 loads with ``weights_only=True``, which refuses the ASM checkpoint the reference's
ASM.py writes: its ``args`` hold numpy integers, two globals outside torch's allowlist. Torch
2.4, which the reference pins, unpickled anything. Allowing exactly those globals lets IQL.py's
``torch.load`` read the checkpoint under ``weights_only=True`` - still no arbitrary unpickling.
"""

import numpy as np
import torch.serialization

torch.serialization.add_safe_globals(
    [np._core.multiarray.scalar, np.dtype, *(type(np.dtype(t)) for t in
                                            (np.int64, np.int32, np.float64, np.float32, np.bool_))])
