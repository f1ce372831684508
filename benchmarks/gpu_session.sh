#!/usr/bin/env bash
# A GPU session's checks in one call of under 10 minutes: benchmarks/gpu_check.sh (the gpu tests
# and the bench table, about 8 minutes at most), then benchmarks/profile_step.py in the time that
# is left of BUDGET_S (default 570 s). Everything lands under $OUT (default gpu-results/); the
# short tables are printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-gpu-results}
start=$SECONDS
bash benchmarks/gpu_check.sh
check_rc=$?
((check_rc == 3)) && exit 3  # no CUDA device
left=$((${BUDGET_S:-570} - (SECONDS - start)))
if ((left > 60)); then
    [[ -d /tmp/site ]] && export PYTHONPATH=/tmp/site  # gpu_check.sh put pydantic's wheels there
    # To files, not a pipe: torch.compile's workers outlive a timed-out parent.
    PYTHONUNBUFFERED=1 timeout -k 10 $((left - 15)) python3 benchmarks/profile_step.py \
        "$OUT/profile" >"$OUT/profile.log" 2>&1
    echo "profile exit $? (${left} s were left)"
else
    echo "profile skipped: ${left} s left"
fi
echo "== bench"
cat "$OUT/bench.md" 2>/dev/null || echo "(no table: see $OUT/bench.log)"
echo "== profile variants"
cat "$OUT/profile/variants.txt" 2>/dev/null || tail -5 "$OUT/profile.log" 2>/dev/null
exit $check_rc
