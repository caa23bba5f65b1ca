#!/usr/bin/env bash
# Runs a scenario over HTTP: starts `stockdrop serve` with the given strategy on a free port
# (embedded PostgreSQL unless DATABASE_URL is set), drives it with `stockdrop run --target`,
# then stops it with SIGTERM and fails unless it shut down cleanly (exit 0).
#   scripts/serve-and-run.sh actor|rowlock SCENARIO.yaml [run options...]
# STOCKDROP_BIN picks the binary (default: the debug build); SERVE_OPTIONS adds serve flags.
set -euo pipefail

bin=${STOCKDROP_BIN:-.build/debug/stockdrop}
strategy=$1
scenario=$2
shift 2
export STOCKDROP_JWT_SECRET=${STOCKDROP_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}

log=$(mktemp)
# shellcheck disable=SC2086
"$bin" serve --port 0 --strategy "$strategy" --no-rate-limit --log-level warning ${SERVE_OPTIONS:-} >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 600); do
  grep -q "stockdrop serving" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "serve-and-run: the server did not start" >&2; exit 69; }
  sleep 0.1
done
url=$(grep -o 'http://[0-9.:]*' "$log" | head -1)
[ -n "$url" ] || { cat "$log" >&2; echo "serve-and-run: the server did not listen within 60 s" >&2; exit 69; }
echo "serve-and-run: $strategy server at $url"

status=0
"$bin" run "$scenario" --target "$url" "$@" || status=$?

kill -TERM "$pid"
serve_status=0
wait "$pid" || serve_status=$?
if [ "$serve_status" -ne 0 ]; then
  cat "$log" >&2
  echo "serve-and-run: stockdrop serve exited $serve_status after SIGTERM" >&2
  exit 1
fi
exit "$status"
