#!/usr/bin/env bash
# The scale-out cluster end to end, as the test command runs it: three `stockdrop serve`
# instances on one PostgreSQL and one Redis behind HAProxy (scripts/cluster.sh), then
#   1. the `ci` scenario through the balancer, with live watchers: every invariant holds;
#   2. the `ci` scenario with its users spread over the three instances directly, so most
#      claims are forwarded to their drop's owner: every invariant holds;
#   3. `cluster-failover` through the balancer while the hot drop's owner is killed (SIGKILL)
#      mid-run: the run goes on through the others and every invariant holds; the takeover
#      time (from the kill to the first claim the new owner committed) is printed;
#   4. scripts/cluster-test.py: the two-instance sequence, purchase and cancel across
#      instances, SIGKILL under load, SIGSTOP past the lease (fenced batches) and the hand-back
#      of a drop to the instance its claims come from.
# Any failure fails the script; the cluster is stopped in every case (each instance must
# exit 0 on SIGTERM). STOCKDROP_BIN picks the binary (default: the debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STOCKDROP_BIN:-.build/debug/stockdrop}
export STOCKDROP_BIN=$bin

scripts/cluster.sh start 3 >/dev/null
status=0
trap 'scripts/cluster.sh stop >/dev/null || status=1; exit $status' EXIT
# shellcheck disable=SC1091
. .stockdrop/cluster/env

step() { echo "cluster-e2e: $*"; }
sql() { psql "$DATABASE_URL" -Atqc "$1"; }

step "1/4 ci through the balancer $BALANCER_URL"
"$bin" run scenarios/ci.yaml --target "$BALANCER_URL" --watchers 20 >/dev/null || { status=1; step "FAIL ci through the balancer"; }

step "2/4 ci spread over the instances (forwarded claims)"
"$bin" run scenarios/ci.yaml --target "${INSTANCE_URLS// /,}" >/dev/null || { status=1; step "FAIL ci over the instances"; }

step "3/4 cluster-failover through the balancer, its owner killed mid-run"
last_drop=$(sql "SELECT coalesce(max(id), 0) FROM drops")
"$bin" run scenarios/cluster-failover.yaml --target "$BALANCER_URL" >.stockdrop/cluster/failover.log 2>&1 &
run_pid=$!
owner=""
for _ in $(seq 1 100); do
  # A lease owner is the instance's name and its incarnation (s1~k3j9…): the name picks the pid.
  owner=$(sql "SELECT lease_owner FROM drops WHERE id > $last_drop AND lease_owner IS NOT NULL ORDER BY id LIMIT 1")
  [ -n "$owner" ] && break
  sleep 0.1
done
if [ -z "$owner" ]; then
  status=1
  step "FAIL the failover drop never got an owner"
  wait "$run_pid" || true
else
  drop=$(sql "SELECT id FROM drops WHERE id > $last_drop ORDER BY id LIMIT 1")
  sleep 2
  read -r -a ids <<<"$INSTANCE_IDS"
  read -r -a pids <<<"$INSTANCE_PIDS"
  for k in "${!ids[@]}"; do [ "${ids[$k]}" = "${owner%%~*}" ] && victim=${pids[$k]} && index=$((k + 1)); done
  killed_at=$(sql "SELECT clock_timestamp()")
  kill -KILL "$victim"
  step "killed $owner (pid $victim), the owner of drop $drop, at $killed_at"
  run_status=0
  wait "$run_pid" || run_status=$?
  tail -n 12 .stockdrop/cluster/failover.log
  if [ "$run_status" -ne 0 ]; then status=1; step "FAIL cluster-failover exited $run_status"; fi
  new_owner=$(sql "SELECT lease_owner FROM drops WHERE id = $drop")
  # The new owner's first commit: the first hold made after it was granted the lease.
  takeover_ms=$(sql "SELECT round(extract(epoch FROM min(r.created_at) - '$killed_at'::timestamptz) * 1000)
                     FROM reservations r JOIN drops d ON d.id = r.drop_id
                     WHERE r.drop_id = $drop AND r.created_at >= d.lease_granted_at AND d.lease_owner <> '$owner'")
  step "takeover: $owner -> $new_owner, first claim committed by the new owner ${takeover_ms:-never} ms after the kill (lease ${LEASE_MS} ms)"
  [ -n "$takeover_ms" ] || { status=1; step "FAIL no claim was committed after the kill"; }
  scripts/cluster.sh restart "$index" >/dev/null
fi

step "4/4 scripts/cluster-test.py"
python3 scripts/cluster-test.py || status=1
[ "$status" -eq 0 ] && step "PASS" || step "FAIL"
