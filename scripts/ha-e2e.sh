#!/usr/bin/env bash
# `stockdrop ha` as an operator drives it, in the test command: start the Patroni cluster in
# the background, then from this shell `ha status`, `ha kill-leader` (it waits for the new
# primary and says how long that took), the killed node back as a replica (the running
# `ha start` brings it), `ha switchover`, and `ha stop`, after which nothing it started runs.
#
# Environment: STOCKDROP_BIN (default .build/debug/stockdrop).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STOCKDROP_BIN:-.build/debug/stockdrop}
# Beside the embedded database (the checkout's .stockdrop, or /tmp/stockdrop-<hash> when the
# postgres user cannot enter the checkout, as in a mktemp clone): Patroni runs as postgres.
home=$(dirname "$("$bin" db url | sed -n 's/.*host=\([^&]*\).*/\1/p')")
dir=$home/ha-e2e
log=$(mktemp)
trap '"$bin" ha stop --dir "$dir" >/dev/null 2>&1 || true; rm -f "$log"' EXIT

# A killed earlier run's env file would pass the wait below before this start clears it.
rm -f "$dir/env" "$dir/ha.json"
"$bin" ha --dir "$dir" >"$log" 2>&1 &
for _ in $(seq 1 180); do
  [ -f "$dir/env" ] && break
  kill -0 $! 2>/dev/null || { cat "$log" >&2; echo "ha-e2e: ha start ended" >&2; exit 1; }
  sleep 1
done
[ -f "$dir/env" ] || { cat "$log" >&2; echo "ha-e2e: no cluster after 180 s" >&2; exit 1; }
head -1 "$log" | sed 's/^/ha-e2e: /'

"$bin" ha status --dir "$dir" | sed 's/^/ha-e2e: status: /'
"$bin" ha kill-leader --dir "$dir" | sed 's/^/ha-e2e: kill-leader: /'
"$bin" ha status --dir "$dir" | sed 's/^/ha-e2e: status: /'
for _ in $(seq 1 90); do
  grep -q "started again" "$log" && break
  sleep 1
done
grep "started again" "$log" | sed 's/^/ha-e2e: /' || { echo "ha-e2e: the killed node never came back" >&2; exit 1; }
# Until the node that came back streams again and a synchronous standby is named: a switchover
# needs a standby to hand over to.
for _ in $(seq 1 60); do
  "$bin" ha status --dir "$dir" | grep "sync standby" >/dev/null && break
  sleep 1
done
"$bin" ha switchover --dir "$dir" | sed 's/^/ha-e2e: switchover: /'
"$bin" ha status --dir "$dir" | sed 's/^/ha-e2e: status: /'
"$bin" ha stop --dir "$dir" | sed 's/^/ha-e2e: /'
if pgrep -f "$dir" >/dev/null; then
  echo "ha-e2e: processes of $dir still run after ha stop:" >&2
  pgrep -af "$dir" >&2
  exit 1
fi
echo "ha-e2e: PASS"
