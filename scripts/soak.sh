#!/usr/bin/env bash
# The loop test: one scenario run N times in a row in process (default: flash-sale, 20 runs,
# the actor strategy), each on a fresh database, each checked by the full checker. Any broken
# invariant (exit 1) or usage/target error (64+) stops the loop and fails it; a missed
# threshold (exit 2) is counted and fails it at the end. One line per run: answers/s, time to
# sell out, reserve p50/p99, the batch clock-to-answer p99 and the invariants.
#
#   scripts/soak.sh [SCENARIO.yaml] [RUNS] [extra `stockdrop run` flags…]
set -uo pipefail
cd "$(dirname "$0")/.."

scenario=${1:-scenarios/flash-sale.yaml}
runs=${2:-20}
shift $(( $# > 2 ? 2 : $# ))
bin=${STOCKDROP_BIN:-.build/release/stockdrop}
root=$(mktemp -d "${TMPDIR:-/tmp}/stockdrop-soak.XXXXXX")
trap 'rm -rf "$root"' EXIT

"$bin" db start >/dev/null
missed=0
for ((i = 1; i <= runs; i++)); do
  dir="$root/$i"
  "$bin" run "$scenario" --strategy actor --report-dir "$dir" "$@" >"$dir.log" 2>&1
  status=$?
  report=$(ls "$dir"/*/report.json 2>/dev/null | head -n 1)
  if [ -n "$report" ]; then
    python3 - "$report" "$i" "$status" <<'EOF'
import json, sys
report, run, status = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
s = report["strategies"][0]
t, reserve = s["throughput"], s["operations"]["reserve"]["latencyMilliseconds"]
lag = s.get("stampToAnswerMilliseconds") or {}
sold_out = t.get("timeToSellOutSeconds")
broken = [i["name"] for i in s["invariants"] if not i["ok"]]
print(f"run {run:>2}: exit {status}  answers/s {t['answersPerSecond']:.0f}  sold out "
      f"{'never' if sold_out is None else f'{sold_out:.3f} s'}  reserve p50 {reserve['p50']:.2f} ms p99 {reserve['p99']:.2f} ms  "
      f"clock-to-answer p99 {lag.get('p99', 0):.2f} ms  invariants {'all hold' if not broken else 'BROKEN: ' + ', '.join(broken)}")
EOF
  else
    echo "run $i: exit $status (no report)"
  fi
  if [ "$status" -eq 2 ]; then missed=$((missed + 1)); fi
  if [ "$status" -ne 0 ] && [ "$status" -ne 2 ]; then
    echo "soak: run $i failed (exit $status):"
    grep -E "BROKEN|e\.g\.|failed" "$dir.log" | head -20
    exit "$status"
  fi
done
echo "soak: $runs runs of $scenario, every invariant held in each; thresholds missed in $missed"
[ "$missed" -eq 0 ] || exit 2
