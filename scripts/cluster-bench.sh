#!/usr/bin/env bash
# A scenario through HAProxy in front of N instances, for each N given, one after another on
# this machine (the load generator, the instances, HAProxy, Redis and PostgreSQL share its
# cores: compare the rows with each other, not with another machine's).
#   scripts/cluster-bench.sh SCENARIO.yaml N [N...]
# Prints per N: requests/s, reserve p50/p99, the verdict, and the share of claims forwarded
# from the instance they reached to their drop's owner.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=$1
shift
export STOCKDROP_BIN=${STOCKDROP_BIN:-.build/release/stockdrop}
printf '%-10s %12s %16s %16s %10s %12s\n' instances requests/s "reserve p50 ms" "reserve p99 ms" verdict forwarded
# A failed step must not leave a cluster running.
trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true' EXIT
for n in "$@"; do
  scripts/cluster.sh start "$n" >/dev/null
  # shellcheck disable=SC1091
  . .stockdrop/cluster/env
  dir=$(mktemp -d)
  status=0
  "$STOCKDROP_BIN" run "$scenario" --target "$BALANCER_URL" --report-dir "$dir" >"$dir/run.log" 2>&1 || status=$?
  forwarded=0
  for url in $INSTANCE_URLS; do
    count=$(python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1] + "/ready", timeout=5))["cluster"]["forwardedClaims"])' "$url")
    forwarded=$((forwarded + count))
  done
  scripts/cluster.sh stop >/dev/null
  python3 - "$dir" "$n" "$status" "$forwarded" <<'PY'
import glob, json, sys
directory, n, status, forwarded = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
report = json.load(open(glob.glob(f"{directory}/**/report.json", recursive=True)[0]))
strategy = report["strategies"][0]
reserve = strategy["operations"]["reserve"]["latencyMilliseconds"]
claims = sum(strategy["operations"][kind]["count"] for kind in ("reserve", "purchase", "cancel"))
share = f"{100 * forwarded / claims:.1f}%" if claims else "-"
verdict = "PASS" if status == 0 else f"exit {status}"
print(f"{n:<10} {strategy['throughput']['requestsPerSecond']:>12.0f} {reserve['p50']:>16.2f} {reserve['p99']:>16.2f} {verdict:>10} {share:>12}")
PY
done
