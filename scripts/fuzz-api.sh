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

# shellcheck source=scripts/serve-lib.sh
. "$root/scripts/serve-lib.sh"
log=$(mktemp)
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -f "$log"' EXIT
start_server "$log"
url=$server_url
token=$("$bin" token --user 1 --role admin --name fuzzer)

mkdir -p reports/fuzz
status=0
schemathesis run "$url/openapi.json" -H "Authorization: Bearer $token" --checks all --exclude-path /v1/live \
  --max-examples 50 --seed 1 --workers 1 --no-color "$@" >reports/fuzz/schemathesis.txt 2>&1 || status=$?
# The failures (if any) and the summary.
sed -n '/^=* FAILURES/,$p;/^=* SUMMARY/,$p' reports/fuzz/schemathesis.txt | awk '!seen[$0]++' | tail -60

stop_server "$log" || exit 1
if grep -q "Server error\|\[5[0-9][0-9]\]" reports/fuzz/schemathesis.txt; then
  echo "fuzz-api: a 5xx answer (reports/fuzz/schemathesis.txt)" >&2
  status=1
fi
[ "$status" = 0 ] && echo "fuzz-api: no failures (reports/fuzz/schemathesis.txt)"
exit "$status"
