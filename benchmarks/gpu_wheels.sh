#!/usr/bin/env bash
# Downloads into .whl/ (repository root) the wheels benchmarks/gpu_check.sh installs on a lent
# GPU machine. That machine (Python 3.12; /work/.library/device/KINDS.md) has torch, jax with its
# CUDA plugin, flax, optax, numpy, matplotlib, pyyaml, safetensors, click, tqdm and pytest, but
# none of spin's other dependencies, and it cannot reach a registry: they travel as wheels.
#
#   bash benchmarks/gpu_wheels.sh    # with network, in the checkout the device tool sends
#
# Everything the device tool sends, wheels included, must stay under 64 MiB, and dm_control
# (56 MB) plus mujoco (27 MB) alone are more: both are cut to what spin imports (see slim).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=$root/.whl
python=${PYTHON:-python3}

# pyproject.toml's pins where it has one; the others are the versions of the development venv
# spin was tested with. Only packages the image lacks, each named: --no-deps below, since letting
# pip resolve would fetch torch, jax and numpy again (gigabytes, and a second version breaks the
# install). Left out although declared: labmaze (dm_control's locomotion mazes only) and
# websockets (mujoco's experimental studio only), whose sole importers slim removes.
wheels=(
    zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0   # the store
    mujoco==3.17.0 dm_control==1.0.50 dm-env==1.6 dm-tree==0.1.10             # DM Control tasks
    glfw==2.11.0 PyOpenGL==3.1.10
    gymnasium==1.4.0 Farama-Notifications==0.0.6 stable-baselines3==2.9.2     # behaviour (torch)
    sbx-rl==0.28.0 tfp-nightly==0.26.0.dev20261027 decorator==5.3.2 gast==0.7.0  # sbx (JAX)
)

# Keep the wheels out of git but let the device tool carry them (it sends ignored paths named
# in carry); the exclude file is shared by every worktree of the repository.
exclude=$(git -C "$root" rev-parse --path-format=absolute --git-common-dir)/info/exclude
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"

# A stale second version of a package would stop the whole install there: start empty.
rm -rf "$dest"
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dest" "${wheels[@]}"

# slim WHEEL PREFIX...: rewrite the wheel without the files under PREFIX (and their RECORD
# lines, so pip installs it as a whole wheel). What goes is never imported by the tasks,
# tests or benchmarks: dm_control's locomotion (39 MB of walker and arena assets), its Blender
# add-on and its test assets; mujoco's experimental studio GUI (16 MB).
slim() {
    "$python" - "$@" <<'EOF'
import os, sys, zipfile
path, prefixes = sys.argv[1], tuple(sys.argv[2:])
with zipfile.ZipFile(path) as src, zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as out:
    for info in src.infolist():
        data = src.read(info)
        if info.filename.startswith(prefixes):
            continue
        if info.filename.endswith(".dist-info/RECORD"):
            data = b"".join(l for l in data.splitlines(True)
                           if not l.startswith(tuple(p.encode() for p in prefixes)))
        out.writestr(info, data)
os.replace(path + ".tmp", path)
EOF
}
slim "$dest"/dm_control-*.whl dm_control/locomotion/ dm_control/blender/ dm_control/mujoco/testing/
slim "$dest"/mujoco-*.whl mujoco/experimental/

ls -l "$dest"
du -sh "$dest"
