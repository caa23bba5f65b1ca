#!/usr/bin/env bash
# A sharded run end to end on loopback, as the test command runs it: one `stockdrop serve`
# (embedded PostgreSQL), the scenario set up once (`run --setup-only`), three shards as three
# processes started together on the run file's start instant (`run --shard i/3`), then
# `stockdrop report merge` over their directories. It checks what is deterministic:
#   - the shards' planned users and arrival times are disjoint and together are the
#     scenario's (`run --plan-only`), and each shard's history has only its own users;
#   - the merged histogram of every operation and outcome is the exact sum of the shards';
#   - the checker's verdict over the database and the merged histories holds (exit 0);
#   - a merge missing a shard is refused and names it.
#   scripts/shards-e2e.sh [SCENARIO]      default scenarios/ci.yaml
# STOCKDROP_BIN picks the binary (default: the debug build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${STOCKDROP_BIN:-.build/debug/stockdrop}
scenario=${1:-scenarios/ci.yaml}
shards=3
export STOCKDROP_JWT_SECRET=${STOCKDROP_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
# shellcheck source=scripts/serve-lib.sh
. "$root/scripts/serve-lib.sh"

work=$(mktemp -d)
log=$work/serve.log
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
say() { echo "shards-e2e: $*"; }
fail() { echo "shards-e2e: FAIL $*" >&2; exit 1; }

start_server "$log" --strategy actor
say "server at $server_url; $scenario in $shards shards"
"$bin" run "$scenario" --setup-only --target "$server_url" --run-file "$work/run.json" --start-at +3s

"$bin" run "$scenario" --plan-only >"$work/plan-whole.txt"
pids=()
for i in $(seq 0 $((shards - 1))); do
  "$bin" run "$scenario" --plan-only --shard "$i/$shards" >"$work/plan-$i.txt"
  "$bin" run "$scenario" --shard "$i/$shards" --run-file "$work/run.json" --report-dir "$work/shards" \
    >"$work/shard-$i.log" 2>&1 &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { cat "$work/shard-$i.log" >&2; fail "shard $i/$shards exited non-zero"; }
  grep -E "^shard " "$work/shard-$i.log" | sed 's/^/  /'
done
mapfile -t dirs < <(ls -d "$work"/shards/*-shard-*-of-$shards | sort)
[ "${#dirs[@]}" = "$shards" ] || fail "expected $shards shard directories, found ${#dirs[@]}"

merge_status=0
"$bin" report merge "${dirs[@]}" --report-dir "$work/merged" >"$work/merge.log" 2>&1 || merge_status=$?
sed 's/^/  /' "$work/merge.log"
[ "$merge_status" = 0 ] || fail "the merged verdict: exit $merge_status"

# Plans disjoint and complete, histories within their plans, histograms summed exactly.
python3 "$root/scripts/shards-check.py" "$work" "$shards"

refused=0
"$bin" report merge "${dirs[@]:0:2}" --report-dir "$work/refused" >"$work/refused.log" 2>&1 || refused=$?
[ "$refused" = 64 ] && grep -q "shard 2/3 missing" "$work/refused.log" ||
  { cat "$work/refused.log" >&2; fail "a merge without shard 2/3 was not refused with its name (exit $refused)"; }
say "a merge without shard 2/3 is refused: $(grep -o 'shard 2/3 missing[^:]*' "$work/refused.log")"

stop_server "$log" || fail "the server did not shut down cleanly"
say "PASS: 3 shards, disjoint and complete, histograms summed exactly, every invariant holds over the merged histories"
