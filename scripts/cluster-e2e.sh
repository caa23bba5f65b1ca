#!/usr/bin/env bash
# The scale-out cluster end to end, as the test command runs it: Tests/LoadGenTests/
# ClusterTests.swift with real processes (`LocalCluster`: `stockdrop serve` instances on one
# PostgreSQL and one Redis, HAProxy in front), each test on a cluster and database of its own:
#   one unit through two instances; purchase and cancel across instances; SIGKILL of a drop's
#   owner under load through the balancer (takeover time); SIGSTOP of an owner past its lease
#   (its stale batch fenced); the hand-back of a drop to where its claims come from; the `ci`
#   scenario through the balancer with watchers and spread over the instances (forwarded
#   claims); `cluster-failover` with its owner killed mid-run.
# Each ends with the checker over what its client was told, and every instance exiting 0 on
# SIGTERM. STOCKDROP_BIN picks the binary the instances run (default: the debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STOCKDROP_BIN:-.build/debug/stockdrop}
[ -x "$bin" ] || { echo "cluster-e2e: no binary at $bin (build it, or set STOCKDROP_BIN)" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
STOCKDROP_CLUSTER_TESTS=1 STOCKDROP_BIN=$bin ${SWIFT:-swift} test --filter ClusterTests >"$out" 2>&1 || status=$?
# The figures each test printed, and what failed; the whole log only when something did.
grep -E "^cluster: |✘|recorded an issue|Test run with" "$out" || true
if [ "$status" -ne 0 ]; then
  tail -n 80 "$out" >&2
  echo "cluster-e2e: FAIL (logs of each cluster under .stockdrop/cluster-tests/)" >&2
  exit 1
fi
echo "cluster-e2e: PASS"
