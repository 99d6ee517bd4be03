#!/usr/bin/env bash
# Record the GPU benchmark (float32 and bfloat16, up to 4096x8192, roofline measured in the same run)
# and run the test suite with CUDA present, on a machine with an NVIDIA GPU and a CUDA build of torch.
#
#   bash docs/benchmarks/record-gpu.sh [OUTDIR]      (default OUTDIR: docs/benchmarks)
#
# Writes the bench's JSON/CSV pairs, gpu-env.txt (nvidia-smi, torch, CUDA) and pytest.log to OUTDIR.
# For a machine without network access, put wheels of the missing app packages in .whl/ first: they
# are installed into a private folder, never over the machine's own torch.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${1:-docs/benchmarks}"
mkdir -p "$out"
py="${PYTHON:-python3}"
sizes="${SIZES:-8x128,64x1024,512x4096,2048x8192,4096x8192}"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/valueloss-site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/valueloss-site${PYTHONPATH:+:$PYTHONPATH}"
fi
{
  date -u +%FT%TZ
  nvidia-smi
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
} >"$out/gpu-env.txt" 2>&1
status=0
for dtype in float32 bfloat16; do
  echo "== bench $dtype"
  timeout "${BENCH_TIMEOUT:-150}" "$py" -m valueloss.tools.bench --device cuda --dtype "$dtype" --sizes "$sizes" \
    --out "$out" --no-progress || status=1
done
echo "== tests (CUDA present; the browser tests and the pinned-upstream conformance run in CI)"
parallel=()  # pytest-xdist where installed, up to 8 workers
"$py" -c "import xdist" 2>/dev/null && parallel=(-n "$(( $(nproc) > 8 ? 8 : $(nproc) ))")
# SIGINT at the limit: pytest then still prints which tests failed so far
timeout -s INT -k 30 "${TEST_TIMEOUT:-300}" "$py" -m pytest tests/unit tests/app -q -rfE -p no:cacheprovider "${parallel[@]}" \
  >"$out/pytest.log" 2>&1 || status=1
tail -n 40 "$out/pytest.log"
exit $status
