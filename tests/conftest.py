import os

# Stepping needs no display; rendering (where tested) uses EGL. Set before dm_control is imported.
os.environ.setdefault("MUJOCO_GL", "egl")

import torch

# The tests train and run small networks; on a 2-core machine extra intra-op threads only
# contend with the simulators and with each other.
torch.set_num_threads(1)
