#!/usr/bin/env bash
# Every GPU check in one call (about 6 minutes on an H100): install cgfw offline, run the tests
# marked gpu, then `cgfw bench --compare` of the paper recipe at 256 px on the embedded emoji
# upscaled to 286 -> 256. Writes its table to $OUT/bench.md (OUT defaults to gpu-results/).
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
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 \
    || { cat "$OUT/install.log"; exit 1; }
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/machine.txt"

timeout 180 python3 -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tee "$OUT/gpu_tests.log" | tail -4

timeout 420 python3 -m cgfw bench recipes/paper_default.toml --compare --iters 100 --warmup 20 \
    --set 'data={name="emoji", load_size=286, crop_size=256, flip=true}' --set train.num_workers=6 \
    --output "$OUT/bench.md" >"$OUT/bench.log" 2>&1
echo "bench exit $?"
grep -E "Error|error" "$OUT/bench.log" | head -5
cat "$OUT/bench.md"
