#!/usr/bin/env bash
# Does the 24 GB batch plan hold on a real GPU? ImageBind-huge (random init) on one CUDA device,
# the allocator capped at 24 GB less the CUDA context; writes JSON (default gpu_check.json).
# Finishes in under 8 minutes: gpu_check.py starts no step after 400 s, and is killed at 470 s.
#
#   bench/gpu_check.sh [OUT.json] [--dtype bfloat16] [--gpu-memory-gb 24]
#   bench/gpu_check.sh --dry-run       # CPU, tiny model: checks the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
out=gpu_check.json
if [[ $# -gt 0 && $1 != --* ]]; then
    out=$1
    shift
fi
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv >&2 || true
fi
# expandable_segments is left off on purpose: the check measures the allocator extraction runs with.
status=0
rm -f "$out"  # a stale result must not pass for this run's
timeout --signal=TERM --kill-after=10 470 "$python" bench/gpu_check.py --out "$out" "$@" >/dev/null || status=$?
[[ -s $out ]] || { echo "gpu_check: no result (exit $status)" >&2; exit "${status/#0/1}"; }
echo "gpu_check: wrote $out (exit $status)" >&2
"$python" - "$out" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
print(f"plan held: {result.get('plan_held')}  complete: {result.get('complete')}  "
      f"({result.get('gpu', result['device'])}, {result['dtype']}, {result['gpu_memory_gb']} GB, {result['seconds']} s)")
for modality, row in result.get("modalities", {}).items():
    rate = row["throughput"].get("utterances_per_s")
    print(f"  {modality:6s} batch {row['planned_batch']:6d}  held {row['plan_held']!s:5s}  "
          f"2x OOM {row['twice_plan_oom']!s:5s}  {rate} utt/s")
PY
exit "$status"
