import os

# Stepping needs no display; rendering (where tested) uses EGL. Set before dm_control is imported.
os.environ.setdefault("MUJOCO_GL", "egl")
