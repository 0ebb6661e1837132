#!/usr/bin/env bash
# spin's checks that need a GPU, in one pass that fits a lent machine's 9 minutes:
#   tests      the CUDA tests of tests/spin_train (test_loader, test_policy, test_pretrain)
#   pretrain   benchmarks/pretrain.py --device cuda (spin's stage-1 step vs the reference loop)
#   policy     benchmarks/policy.py --device cuda (spin's IQL step vs the reference loop)
#   loader     benchmarks/loader.py --device cuda, a small store
#   behaviour  benchmarks/behaviour.py: sbx SAC on humanoid, env steps/s with JAX on the GPU
# Each part runs under its own timeout (and all of them under one deadline), a failing part does
# not stop the rest, and the end prints one line per part: passed / failed / skipped, seconds.
# Everything lands in one folder: $OUT when set (the device tool's), else
# benchmarks/results/gpu-check-<host>-<time>/ - gpu-check.json (the parts, the machine, torch's
# and JAX's devices), gpu-check.log (every part's output), tests.xml (junit) and the benchmarks'
# JSON. The device tool sends back at most 8 files, hence one log for all.
#
#   bash benchmarks/gpu_wheels.sh                       # here, once: the missing packages
#   run: bash benchmarks/gpu_check.sh, carry [".whl"], timeout_s 560   # on the GPU machine
#   GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh   # anywhere: the plumbing, small sizes
set -uo pipefail  # no -e: a failing part must not end the run

cd "$(dirname "${BASH_SOURCE[0]}")/.."
device=${GPU_CHECK_DEVICE:-cuda}
python=${PYTHON:-python3}
out=${OUT:-benchmarks/results/gpu-check-$HOSTNAME-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
log=$out/gpu-check.log
work=$(mktemp -d)  # the parts' records: kept out of $out, whose file count is limited
trap 'rm -rf "$work"' EXIT
deadline=$((SECONDS + ${GPU_CHECK_BUDGET_S:-500}))

export PYTHONUNBUFFERED=1             # a killed part still leaves its output in the log
export SPIN_BENCHMARK_COPY_TO=$out    # benchmarks/common.py copies each result JSON here
export MUJOCO_GL=${MUJOCO_GL:-disable}  # nothing here renders, and the image may lack libEGL

# part NAME CAP_S COMMAND...: COMMAND under a timeout of CAP_S or the time left before the
# deadline, whichever is less, its output appended to the log; NAME, exit status, seconds and
# the files it added to $out go to parts.tsv (124/137: timed out).
part() {
    local name=$1 cap=$2; shift 2
    local limit=$((deadline - SECONDS - 10)) start=$SECONDS rc before
    ((limit > cap)) && limit=$cap
    if ((limit < 20)); then
        printf '%s\tskip\t0\tno time left before the deadline\t\n' "$name" >>"$work/parts.tsv"
        return
    fi
    echo "[gpu-check] $name (limit ${limit}s) ..."
    printf '\n===== %s (limit %ss): %s\n' "$name" "$limit" "$*" >>"$log"
    before=$(ls "$out")
    timeout -k 10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$limit" \
        "$(comm -13 <(echo "$before") <(ls "$out") | tr '\n' ' ')" >>"$work/parts.tsv"
}

# The image lacks most of spin's dependencies and has no network: gpu_wheels.sh's wheels
# (Python 3.12 builds) travel in .whl/. spin itself runs from the checkout.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [[ ! -d .whl ]]; then
    printf 'install\tskip\t0\tno .whl/ (run benchmarks/gpu_wheels.sh)\t\n' >>"$work/parts.tsv"
elif ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
    printf 'install\tskip\t0\t.whl/ holds Python 3.12 wheels, this is %s\t\n' \
        "$("$python" -c 'import platform; print(platform.python_version())')" >>"$work/parts.tsv"
else
    part install 90 "$python" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PYTHONPATH
fi

# What the figures were measured on; JAX is asked in a process of its own, apart from torch.
export torch_info='import json, torch; c = torch.cuda.is_available(); print(json.dumps({"torch":
    torch.__version__, "cuda": c, "gpu": torch.cuda.get_device_name(0) if c else None}))'
export jax_info='import json, jax; print(json.dumps({"jax": jax.__version__, "backend":
    jax.default_backend(), "devices": [str(d) for d in jax.devices()]}))'
part probe 60 bash -c 'set -o pipefail; nvidia-smi; "$0" -c "$torch_info" | tee "$1/torch.json"
    t=$?; "$0" -c "$jax_info" | tee "$1/jax.json" && exit $t' "$python" "$work"

# Sizes: the GPU's are figures worth reading (the README's full runs are longer); a CPU step of
# these models takes seconds, so the dry run uses the smallest that still runs every line.
if [[ $device == cpu ]]; then
    pretrain=(--task maze5 --steps 2 --warmup 1 --repeats 1 --batch 64 --dataset-steps 2000)
    policy=(--task maze5 --steps 2 --warmup 1 --repeats 1 --batch 64 --dataset-steps 2000)
    loader=(--steps 5000 --repeats 2 --batches 20)
    behaviour=(--steps 400 --learning-starts 100 --eval-every 200 --eval-episodes 1)
else
    pretrain=(--task humanoid --steps 50 --warmup 5 --repeats 3)
    policy=(--task humanoid --steps 100 --warmup 10 --repeats 3)
    loader=(--steps 20000 --repeats 3 --batches 500)
    behaviour=(--steps 5000 --learning-starts 1000 --eval-every 2500 --eval-episodes 2)
fi

# Caps from the first run on an H100 (2026-12-06, results/gpu-check-h100-20261206): pretrain
# 23 s, policy 42 s, sbx SAC's first 5,000 steps 74 s; the loader's 50k-step store and its
# reference pickle did not fit 75 s, hence 20k steps. The CUDA tests go last with the time
# left: their maze fixture trains a PPO behaviour policy on the CPU first (210 s there).
part pretrain 45 "$python" benchmarks/pretrain.py --device "$device" "${pretrain[@]}"
part policy 70 "$python" benchmarks/policy.py --device "$device" "${policy[@]}"
part loader 60 "$python" benchmarks/loader.py --device "$device" "${loader[@]}"
part behaviour 70 "$python" benchmarks/behaviour.py --env humanoid --candidates sbx-sac \
    "${behaviour[@]}" --note "gpu_check.sh on $device"
# The CUDA tests are the ones named *cuda* in these files (each skips without a device).
part tests 300 "$python" -m pytest -q -p no:cacheprovider -k cuda --junitxml="$out/tests.xml" \
    tests/spin_train/test_loader.py tests/spin_train/test_policy.py \
    tests/spin_train/test_pretrain.py

# The summary: one line per part here, everything in gpu-check.json.
"$python" - "$work" "$out" "$device" <<'EOF' || cat "$work/parts.tsv"
import json, re, socket, sys, xml.etree.ElementTree as ET
from pathlib import Path

work, out, device = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def headline(name, files):
    """(a part's figures in a few words, "skipped" / "failed" where its exit status 0 is not
    a pass: every CUDA test skipped, or a cuda check whose torch or JAX sees no GPU)."""
    if name == "install":
        return f"{len(list(Path('.whl').glob('*.whl')))} wheels into /tmp/site", None
    if name == "probe":
        torch, jax = read_json(work / "torch.json") or {}, read_json(work / "jax.json") or {}
        text = (f"torch {torch.get('torch')} sees {torch.get('gpu') or 'no GPU'}; "
                f"jax {jax.get('jax')} devices {jax.get('devices')}")
        gpu_jax = jax.get("backend") in ("gpu", "cuda")
        return text, "failed" if device == "cuda" and not (torch.get("cuda") and gpu_jax) else None
    if name == "tests" and (out / "tests.xml").exists():
        s = ET.parse(out / "tests.xml").getroot()
        s = s if s.tag == "testsuite" else s.find("testsuite")
        n, f, e, k = (int(s.get(a, 0)) for a in ("tests", "failures", "errors", "skipped"))
        return (f"{n - f - e - k} passed, {f + e} failed, {k} skipped of {n}",
                "skipped" if n and k == n else None)
    for f in files:
        data = read_json(out / f) or {}
        if data.get("rows") and "ratio_vs_reference_median" in data["rows"][0]:
            return "; ".join(f"{r['name']}: {r['ratio_vs_reference_median']:.2f}x reference"
                             for r in data["rows"] if r["name"].startswith("spin")), None
        if "ratios" in data:  # loader.py
            return "; ".join(f"{p} placement: first load {r['first_vs_reference']:.1f}x faster "
                             f"than the reference" for p, r in data["ratios"].items()), None
        if "jax_devices" in data:  # behaviour.py
            rate = data["summary"]["sbx-sac"]["steps_per_s_median"]
            return f"sbx SAC {rate:.0f} env steps/s on {', '.join(data['jax_devices'])}", None
    return " ".join(files), None


# The last line each part printed: on a failure, usually the error.
last, section = {}, None
for line in (out / "gpu-check.log").read_text(errors="replace").splitlines():
    if m := re.match(r"===== (\S+) \(limit", line):
        section = m.group(1)
    elif section and line.strip():
        last[section] = line.strip()[:160]

parts = []
for line in (work / "parts.tsv").read_text().splitlines():
    name, rc, seconds, limit, files = (line.split("\t") + [""] * 5)[:5]
    files = files.split()
    if rc == "skip":
        status, notes = "skipped", [limit]
    else:
        text, verdict = headline(name, files)
        status, notes = verdict or "passed", [text]
        if rc != "0":
            why = f"timed out after {limit} s" if rc in ("124", "137") else f"exit status {rc}"
            status, notes = "failed", [why, text, f"last output: {last.get(name)}"]
    parts.append({"part": name, "status": status, "seconds": int(seconds),
                  "detail": "; ".join(n for n in notes if n), "files": files,
                  "exit_status": None if rc == "skip" else int(rc)})

summary = {"host": socket.gethostname(), "device": device,
           "torch": read_json(work / "torch.json"), "jax": read_json(work / "jax.json"),
           "parts": parts}
(out / "gpu-check.json").write_text(json.dumps(summary, indent=2))
print(f"\ngpu-check on {device}: {out}")
for p in parts:
    print(f"  {p['part']:<10} {p['status']:<8} {p['seconds']:>4d} s  {p['detail']}")
EOF
