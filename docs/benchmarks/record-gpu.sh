#!/usr/bin/env bash
# Record the fused loss on a lent NVIDIA GPU in at most 8 minutes, everything under $OUT:
#
#   OUT=/some/dir bash docs/benchmarks/record-gpu.sh     (default OUT: bench-out/gpu-<UTC date>)
#
# Steps, most telling first, each with its own time limit inside one deadline (BUDGET_S, default 450 s, so
# that start-up and copying back fit in 8 minutes); a step that would not fit is skipped and says so, and
# steps.txt lists every step's exit status and seconds:
#   1. gpu-env.txt        GPU, driver, clocks (nvidia-smi -q -d CLOCK), torch, CUDA and Triton versions
#   2. gpu-syncs.*        a fused forward+backward under torch.cuda.set_sync_debug_mode("error"), three mask dtypes
#   3. gpu-bits.*         the kernel's gradient bits against eager CUDA, every mode, with and without the
#                         data-parallel arguments, fp32 and bf16, fused multiply-add off (as shipped) and on
#   4. pytest-cuda.log    the CUDA tests (the kernel's tests compiled for CUDA, the CUDA-marked ones); pytest is
#                         stopped with SIGINT at its limit, so it still prints which tests failed so far
#   5. profile-*.txt      torch.profiler kernel tables of a fused forward+backward at 8x128 and 4096x8192
#   6. bench-cuda-*       python -m valueloss.tools.bench in float32, then bfloat16, up to 4096x8192, with the
#                         roofline, the per-call floor and torch.compile per size in the same run
# Commit the bench-*.json/.csv pairs into docs/benchmarks/ (the Timing page reads them there) and the rest
# beside them in a folder. Without CUDA the same steps dry-run on CPU (Triton's interpreter, small sizes).
# For a machine without network access, put wheels of the missing packages in .whl/ first: they are
# installed into a private folder, never over the machine's own torch.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
start=$(date +%s)
deadline=$(( start + ${BUDGET_S:-450} ))
out="${OUT:-bench-out/gpu-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/valueloss-site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/valueloss-site:$PYTHONPATH"
fi
if "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  device=cuda; sizes="${SIZES:-8x128,64x1024,512x4096,4096x8192}"; repeats="${REPEATS:-10}"; impls=all
  profile_sizes="8x128,4096x8192"
else  # a dry run: the kernel in Triton's interpreter on CPU tensors, small sizes, the quick implementations
  device=cpu; sizes="${SIZES:-8x128,64x256}"; repeats="${REPEATS:-3}"; impls="verl-eager,openrlhf-eager,fused,fused-kernel"
  profile_sizes="8x128,64x256"
  export TRITON_INTERPRET=1
  echo "no CUDA device: a dry run on CPU" | tee "$out/DRY-RUN.txt"
fi
status=0
: >"$out/steps.txt"

# step NAME SECONDS COMMAND...: run COMMAND under min(SECONDS, time left - 10 s), output to NAME.log
step() {
  local name=$1 budget=$2; shift 2
  local left=$(( deadline - $(date +%s) - 10 ))
  local limit=$(( budget < left ? budget : left ))
  if (( limit < 15 )); then
    echo "$name skipped: ${left}s left of the budget" | tee -a "$out/steps.txt"; status=1; return
  fi
  echo "== $name (at most ${limit}s)"
  local t0; t0=$(date +%s)
  timeout -s INT -k 20 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "$name exit $rc after $(( $(date +%s) - t0 ))s (limit ${limit}s)" | tee -a "$out/steps.txt"
  tail -n 6 "$out/$name.log"
  (( rc == 0 )) || status=1
}

{
  date -u +%FT%TZ
  if [[ $device == cuda ]]; then
    nvidia-smi
    nvidia-smi -q -d CLOCK
  fi
  "$py" -c "import platform, torch, triton; print('python', platform.python_version(), '| torch', torch.__version__, \
'| cuda', torch.version.cuda, '| triton', triton.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
} >"$out/gpu-env.txt" 2>&1
cat "$out/gpu-env.txt" | tail -n 3

step gpu-syncs 60 "$py" docs/benchmarks/gpu_checks.py syncs --out "$out"
step gpu-bits 90 "$py" docs/benchmarks/gpu_checks.py bits --out "$out"
parallel=()  # pytest-xdist where installed, up to 8 workers
"$py" -c "import xdist" 2>/dev/null && parallel=(-n "$(( $(nproc) > 8 ? 8 : $(nproc) ))")
step pytest-cuda 150 "$py" -m pytest tests/unit -m "cuda or triton" -q -rfE -p no:cacheprovider "${parallel[@]}"
step gpu-profile 45 "$py" docs/benchmarks/gpu_checks.py profile --out "$out" --sizes "$profile_sizes"
for dtype in float32 bfloat16; do
  step "bench-$dtype" 120 "$py" -m valueloss.tools.bench --device "$device" --dtype "$dtype" --sizes "$sizes" \
    --repeats "$repeats" --impl "$impls" --out "$out" --no-progress
done
echo "== done in $(( $(date +%s) - start ))s: $out"
cat "$out/steps.txt"
exit $status
