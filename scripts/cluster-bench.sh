#!/usr/bin/env bash
# A scenario through HAProxy in front of N instances (`stockdrop cluster`), for each N given,
# one after another on this machine (the load generator, the instances, HAProxy, Redis and
# PostgreSQL share its cores: compare the rows with each other, not with another machine's).
#   scripts/cluster-bench.sh SCENARIO.yaml N [N...]
# Prints per N: requests/s, reserve p50/p99, the verdict, and the share of claims forwarded
# from the instance they reached to their drop's owner.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=$1
shift
bin=${STOCKDROP_BIN:-.build/release/stockdrop}
dir=.stockdrop/cluster-bench
printf '%-10s %12s %16s %16s %10s %12s\n' instances requests/s "reserve p50 ms" "reserve p99 ms" verdict forwarded
cluster_pid=""
stop_cluster() {
  [ -n "$cluster_pid" ] || return 0
  kill -TERM "$cluster_pid" 2>/dev/null || true
  wait "$cluster_pid" || echo "cluster-bench: an instance did not exit 0 on SIGTERM (logs in $dir)" >&2
  cluster_pid=""
}
# A failed step must not leave a cluster running.
trap stop_cluster EXIT
mkdir -p "$dir"
for n in "$@"; do
  rm -f "$dir/env"
  "$bin" cluster --instances "$n" --dir "$dir" >"$dir.log" 2>&1 &
  cluster_pid=$!
  # As long as it takes (each instance has its own bound); the cluster says why it failed.
  until [ -s "$dir/env" ]; do
    kill -0 "$cluster_pid" 2>/dev/null || { cat "$dir.log" >&2; exit 1; }
    sleep 0.1
  done
  # shellcheck disable=SC1091
  . "$dir/env"
  report=$(mktemp -d)
  status=0
  "$bin" run "$scenario" --target "$BALANCER_URL" --report-dir "$report" >"$report/run.log" 2>&1 || status=$?
  python3 - "$report" "$n" "$status" $INSTANCE_URLS <<'PY'
import glob, json, sys, urllib.request
directory, n, status, urls = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
forwarded = sum(json.load(urllib.request.urlopen(url + "/ready", timeout=5))["cluster"]["forwardedClaims"] for url in urls)
report = json.load(open(glob.glob(f"{directory}/**/report.json", recursive=True)[0]))
strategy = report["strategies"][0]
reserve = strategy["operations"]["reserve"]["latencyMilliseconds"]
claims = sum(strategy["operations"][kind]["count"] for kind in ("reserve", "purchase", "cancel"))
share = f"{100 * forwarded / claims:.1f}%" if claims else "-"
verdict = "PASS" if status == 0 else f"exit {status}"
print(f"{n:<10} {strategy['throughput']['requestsPerSecond']:>12.0f} {reserve['p50']:>16.2f} {reserve['p99']:>16.2f} {verdict:>10} {share:>12}")
PY
  stop_cluster
done
