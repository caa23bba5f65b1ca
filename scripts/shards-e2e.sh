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

python3 - "$work" "$shards" <<'PY'
import glob, json, os, sys
from collections import Counter

work, shards = sys.argv[1], int(sys.argv[2])
def plan(name):
    with open(os.path.join(work, name)) as f:
        return [tuple(map(int, line.split())) for line in f if line.strip()]
whole = plan("plan-whole.txt")
slices = [plan(f"plan-{i}.txt") for i in range(shards)]
problems = []
users = [set(u for u, _, _ in s) for s in slices]
for i in range(shards):
    for j in range(i + 1, shards):
        if users[i] & users[j]:
            problems.append(f"shards {i} and {j} share users {sorted(users[i] & users[j])[:5]}")
if Counter(x for s in slices for x in s) != Counter(whole):
    problems.append("the shards' (user, drop, arrival) lines together are not the scenario's")
print(f"  plans: {len(whole)} users in the scenario; shards {[len(s) for s in slices]}; disjoint and complete: "
      f"{'yes' if not problems else 'NO'}")

dirs = sorted(glob.glob(os.path.join(work, "shards", f"*-shard-*-of-{shards}")))
for d in dirs:
    manifest = json.load(open(os.path.join(d, "shard.json")))
    index = manifest["shard"]["index"]
    seen = set(r["user"] for r in json.load(open(os.path.join(d, "history.json")))["records"])
    if not seen <= users[index]:
        problems.append(f"shard {index}'s history has users outside its plan: {sorted(seen - users[index])[:5]}")

def buckets(path):
    out = {}
    for op, outcomes in json.load(open(path))["histograms"].items():
        for outcome, h in outcomes.items():
            c = out.setdefault((op, outcome), Counter())
            for value, count in h["buckets"]:
                c[value] += count
    return out
summed = {}
for d in dirs:
    for key, c in buckets(os.path.join(d, "histograms.json")).items():
        summed.setdefault(key, Counter()).update(c)
merged_path = glob.glob(os.path.join(work, "merged", "*", "histograms.json"))
merged = buckets(merged_path[0]) if merged_path else {}
if merged != summed:
    problems.append("the merged histograms are not the exact sum of the shards'")
total = sum(sum(c.values()) for (op, outcome), c in merged.items() if outcome == "all")
print(f"  histograms: merged = sum of the {len(dirs)} shards' bucket by bucket: {'yes' if merged == summed else 'NO'} "
      f"({total} requests)")
report = json.load(open(glob.glob(os.path.join(work, "merged", "*", "report.json"))[0]))
planned = report["strategies"][0]["users"]["planned"]
if planned != len(whole):
    problems.append(f"the merged report plans {planned} users, the scenario {len(whole)}")
for p in problems:
    print(f"shards-e2e: FAIL {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

refused=0
"$bin" report merge "${dirs[@]:0:2}" --report-dir "$work/refused" >"$work/refused.log" 2>&1 || refused=$?
[ "$refused" = 64 ] && grep -q "shard 2/3 missing" "$work/refused.log" ||
  { cat "$work/refused.log" >&2; fail "a merge without shard 2/3 was not refused with its name (exit $refused)"; }
say "a merge without shard 2/3 is refused: $(grep -o 'shard 2/3 missing[^:]*' "$work/refused.log")"

stop_server "$log" || fail "the server did not shut down cleanly"
say "PASS: 3 shards, disjoint and complete, histograms summed exactly, every invariant holds over the merged histories"
