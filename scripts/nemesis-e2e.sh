#!/usr/bin/env bash
# The nemesis in the test command: flash-sale over HTTP (scaled down for the debug build: 5,000
# buyers, 200 units) through a 3-instance cluster behind HAProxy that `stockdrop run` starts
# itself, once per fault kind alone, a fault about every 3 s; then every kind together on
# scenarios/nemesis.yaml (flash-sale's buyers spread over 20 s, so each fault meets live
# traffic); then the PostgreSQL primary killed under three instances, and switched over under
# one, on scenarios/postgres-failover.yaml and a Patroni cluster. Each run must exit 0: nothing
# oversold, no acknowledged write lost, every invariant holding, and every instance exiting 0
# on SIGTERM at the end.
#
#   scripts/nemesis-e2e.sh [fault[@instances]...]
#       default: each kind, then all, then kill-primary (3 instances) and switchover@1
#
# Environment: STOCKDROP_BIN (default .build/debug/stockdrop), NEMESIS_USERS, NEMESIS_STOCK,
# NEMESIS_INTERVAL.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${STOCKDROP_BIN:-.build/debug/stockdrop}
users=${NEMESIS_USERS:-5000}
stock=${NEMESIS_STOCK:-200}
interval=${NEMESIS_INTERVAL:-3s}
faults=("$@")
[ ${#faults[@]} -gt 0 ] || faults=(kill-server pause-server restart-postgres pause-postgres kill-redis all kill-primary switchover@1)

# Where the embedded cluster's home is (the checkout's .stockdrop, or /tmp/stockdrop-<hash>
# when the postgres user cannot enter the checkout): the nemesis clusters keep their logs there.
home=$(dirname "$("$bin" db url | sed -n 's/.*host=\([^&]*\).*/\1/p')")
failed=()
for spec in "${faults[@]}"; do
  fault=${spec%@*}
  instances=()
  [ "$spec" = "$fault" ] || instances=(--nemesis-instances "${spec#*@}")
  if [ "$fault" = all ]; then
    echo "nemesis-e2e: scenarios/nemesis.yaml with every fault (its own interval)"
    run=(scenarios/nemesis.yaml)
  elif [ "$fault" = kill-primary ] || [ "$fault" = switchover ]; then
    # PostgreSQL that fails over: a Patroni cluster under the instances, buyers for 40 s.
    echo "nemesis-e2e: scenarios/postgres-failover.yaml with $spec (Patroni, synchronous replication)"
    run=(scenarios/postgres-failover.yaml --nemesis "$fault" "${instances[@]}")
  else
    echo "nemesis-e2e: flash-sale with $fault (users $users, stock $stock, a fault about every $interval)"
    run=(scenarios/flash-sale.yaml --users "$users" --stock "$stock" --nemesis "$fault" --nemesis-interval "$interval")
  fi
  # The run's own exit status, not the filter's (`|| true` would reset PIPESTATUS).
  out=$(mktemp)
  status=0
  "$bin" run "${run[@]}" --report-dir reports/nemesis >"$out" 2>&1 || status=$?
  grep -E "fault|oversold|invariants|thresholds|PASS|FAIL|BROKEN|missed|run failed|FINDING" "$out" || true
  if grep -q "FINDING" "$out"; then
    # An instance that did not shut down cleanly: keep its logs for whoever reads the finding.
    kept=reports/nemesis/finding-$fault-$(date -u +%H%M%S)
    mkdir -p "$kept" && cp -r "$home"/nemesis-cluster/. "$kept"/ 2>/dev/null || true
    echo "nemesis-e2e: a shutdown finding; the cluster's logs are in $kept" >&2
  fi
  rm -f "$out"
  if [ "$status" != 0 ]; then
    failed+=("$spec (exit $status)")
    # The instances' logs, before the next run's start clears them.
    kept=reports/nemesis/failed-$fault-$(date -u +%H%M%S)
    mkdir -p "$kept" && cp -r "$home"/nemesis-cluster/. "$kept"/ 2>/dev/null || true
    cp "$home"/nemesis-ha/*.log "$kept"/ 2>/dev/null || true
    echo "nemesis-e2e: the cluster's logs are in $kept" >&2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "nemesis-e2e: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "nemesis-e2e: every fault alone and all together: nothing oversold, nothing acknowledged lost"
