#!/usr/bin/env bash
# The GPU check, in one command: the test suite with CuPy, a short training run, the flow
# experiment and the benchmarks against PyTorch CUDA, each step's log and a summary in one folder.
#
#   bash benchmarks/gpu_check.sh OUT_DIR            on a machine with a CUDA GPU, CuPy and (for the
#                                                   comparison) PyTorch with CUDA; about 8 minutes
#   bash benchmarks/gpu_check.sh --dry-run OUT_DIR  anywhere: the same steps, made small, on the
#                                                   NumPy-backed fake CuPy in tests/fake_cupy
#
# Runs with the python3 on the PATH from the repository root (no install needed: PYTHONPATH).
# Every step runs under a time limit; a failed step is recorded and the next one still runs. The
# exit code is the number of failed steps. OUT_DIR/summary.md lists each step, its exit code,
# its time and the last lines of its log.
set -u
dry=0 slow=1
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
out=${1:?usage: bash benchmarks/gpu_check.sh [--dry-run] OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ $dry = 1 ]; then
    export PYTHONPATH="$PWD/tests/fake_cupy:$PYTHONPATH"
    slow=4  # a 2-core CPU doing the GPU's work: more time per step
    epochs=1 flow_depths="8 14" bench="--quick" pytest_sel=(-k gpu)
else
    epochs=2 flow_depths="20 56 110" bench="--repeats 5" pytest_sel=()
fi
python3 - <<'PY' >"$out/machine.txt" 2>&1
import platform, subprocess, sys
print("python", sys.version.split()[0], platform.machine())
for name in ("numpy", "cupy", "torch"):
    try:
        m = __import__(name)
        print(name, m.__version__, "(fake: NumPy on the CPU)" if getattr(m, "FAKE", False) else "")
    except Exception as e:
        print(name, "missing:", type(e).__name__, e)
try:
    import cupy
    print("CUDA devices:", cupy.cuda.runtime.getDeviceCount(),
          cupy.cuda.runtime.getDeviceProperties(0)["name"])
    print("CUDA runtime:", cupy.cuda.runtime.runtimeGetVersion())
except Exception as e:
    print("no CUDA device through CuPy:", e)
try:
    print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip())
except Exception:
    pass
PY

failed=0
summary="$out/summary.md"
{
    echo "# GPU check $(date -u '+%Y-%m-%d %H:%M UTC')$([ $dry = 1 ] && echo ' (dry run on the fake CuPy)')"
    echo; echo '```'; cat "$out/machine.txt"; echo '```'; echo
    echo "| step | exit | seconds |"; echo "|---|---:|---:|"
} >"$summary"

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$(($2 * slow)); shift 2
    local start=$SECONDS
    echo "== $name: $*" | tee -a "$out/steps.log"
    timeout --signal=INT --kill-after=15 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    local took=$((SECONDS - start))
    [ $rc = 0 ] || failed=$((failed + 1))
    echo "| $name | $rc$([ $rc = 124 ] && echo ' (time limit)') | $took |" >>"$summary"
    echo "   exit $rc after ${took}s" | tee -a "$out/steps.log"
}

# Time limits add up to 8 minutes; on an H200 machine each step should take well under its limit.
step tests-gpu 100 python3 -m pytest -q -x --device gpu -p no:cacheprovider "${pytest_sel[@]}"
step tests-default 120 python3 -m pytest -q -p no:cacheprovider "${pytest_sel[@]}"
step train 60 python3 -m minires train --device gpu --epochs "$epochs" --out "$out/train" --overwrite
step flow 40 python3 -m minires flow --device gpu --depths $flow_depths --out "$out/flow"
for family in conv bn step infer; do
    step "bench-$family" 40 python3 -m benchmarks "$family" --device gpu $bench --json "$out/bench-$family.json"
done

{
    echo
    for f in tests-gpu tests-default train flow bench-conv bench-bn bench-step bench-infer; do
        echo "## $f (last lines)"; echo '```'; tail -n 25 "$out/$f.log" 2>/dev/null; echo '```'
    done
} >>"$summary"
echo "summary: $summary ($failed failed)"
exit $failed
