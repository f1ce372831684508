#!/usr/bin/env bash
# Every GPU check in one call (about 8 minutes at most): install cgfw offline, run the tests marked
# gpu, then `cgfw bench --compare` of the paper recipe at 256 px on the embedded emoji upscaled
# to 286 -> 256, one line per setting as it finishes. Writes the table to $OUT/bench.md (OUT
# defaults to gpu-results/).
#
# Off-line GPU images without pydantic or tomli-w: put their wheels in .whl/ first (see
# docs/benchmarks.md), this script installs them to /tmp/site.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
timeout 120 python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/install.log 2>&1 \
    || { cat /tmp/install.log; exit 1; }
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/machine.txt"
# Without CUDA the gpu tests would all skip and the bench would time the CPU: stop instead.
python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())" \
    || { echo "torch sees no CUDA device: nothing to check here"; exit 3; }

# Output goes to files, not through a pipe: worker processes torch.compile leaves behind would
# hold a pipe open after `timeout` ends pytest. A hung test dumps every thread's stack after 60 s.
per_test=""
python3 -c "import pytest_timeout" 2>/dev/null && per_test="--timeout=90"
timeout -k 10 190 python3 -m pytest -q -p no:cacheprovider -o faulthandler_timeout=60 $per_test \
    -m gpu tests >"$OUT/gpu_tests.log" 2>&1
tests_rc=$?
echo "gpu tests exit $tests_rc"
grep -E "passed|failed|FAILED|ERROR|Timeout" "$OUT/gpu_tests.log" | tail -12

rm -f "$OUT/bench.md"  # a bench cut short must not leave an older run's table to be read
# 48 iterations per setting, each setting timed beside the reference loop (12 pairs of 4 of
# each): about what 80 alone took; each setting's line in bench.log carries its x ref.
timeout -k 10 260 python3 -m cgfw bench recipes/paper_default.toml --compare --iters 48 --warmup 20 \
    --set 'data={name="emoji", load_size=286, crop_size=256, flip=true}' --set train.num_workers=6 \
    --output "$OUT/bench.md" >"$OUT/bench.log" 2>&1
bench_rc=$?
echo "bench exit $bench_rc"
grep -E "Error|error" "$OUT/bench.log" | head -5
# The table, or (cut short) the lines of the settings that finished.
cat "$OUT/bench.md" 2>/dev/null || grep -E "^  (reference|cgfw)" "$OUT/bench.log"
exit $((tests_rc || bench_rc))
