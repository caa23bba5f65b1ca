#!/usr/bin/env bash
# schemathesis (PyPI) against /openapi.json of a live `stockdrop serve` (debug build, embedded
# PostgreSQL), with an admin token so every operation is reachable: every check, a fixed seed,
# no 5xx and every response matching the document. /v1/live is a WebSocket (tested by
# LiveSocketTests); a fuzzer's plain GET there can only be refused (426), so it is excluded.
# One worker: hypothesis (Python 3.11) fails with "AST constructor recursion depth mismatch"
# when two workers describe strategies at once. Then the server must exit 0 on SIGTERM. The summary is kept in reports/fuzz/schemathesis.txt.
#   scripts/fuzz-api.sh [schemathesis options...]      e.g. --max-examples 200
# STOCKDROP_BIN picks the binary (default: the debug build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${STOCKDROP_BIN:-.build/debug/stockdrop}
export STOCKDROP_JWT_SECRET=${STOCKDROP_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
command -v schemathesis >/dev/null || { echo "fuzz-api: schemathesis is missing (scripts/setup.sh installs it)" >&2; exit 69; }

log=$(mktemp)
"$bin" serve --port 0 --no-rate-limit --log-level warning >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 600); do
  grep -q "stockdrop serving" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "fuzz-api: the server did not start" >&2; exit 69; }
  sleep 0.1
done
url=$(grep -o 'http://[0-9.:]*' "$log" | head -1)
[ -n "$url" ] || { cat "$log" >&2; echo "fuzz-api: the server did not listen within 60 s" >&2; exit 69; }
token=$("$bin" token --user 1 --role admin --name fuzzer)

mkdir -p reports/fuzz
status=0
schemathesis run "$url/openapi.json" -H "Authorization: Bearer $token" --checks all --exclude-path /v1/live \
  --max-examples 50 --seed 1 --workers 1 --no-color "$@" >reports/fuzz/schemathesis.txt 2>&1 || status=$?
# The failures (if any) and the summary.
sed -n '/^=* FAILURES/,$p;/^=* SUMMARY/,$p' reports/fuzz/schemathesis.txt | awk '!seen[$0]++' | tail -60

kill -TERM "$pid"
serve_status=0
wait "$pid" || serve_status=$?
if [ "$serve_status" -ne 0 ]; then
  tail -20 "$log" >&2
  echo "fuzz-api: stockdrop serve exited $serve_status after SIGTERM" >&2
  exit 1
fi
if grep -q " 5[0-9][0-9] \| Server error" reports/fuzz/schemathesis.txt; then
  echo "fuzz-api: a 5xx answer (reports/fuzz/schemathesis.txt)" >&2
  status=1
fi
[ "$status" = 0 ] && echo "fuzz-api: no failures (reports/fuzz/schemathesis.txt)"
exit "$status"
