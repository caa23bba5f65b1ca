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

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/serve-lib.sh
. "$root/scripts/serve-lib.sh"

log=$(mktemp)
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -f "$log"' EXIT
# shellcheck disable=SC2086
start_server "$log" --strategy "$strategy" ${SERVE_OPTIONS:-}
echo "serve-and-run: $strategy server at $server_url"

status=0
"$bin" run "$scenario" --target "$server_url" "$@" || status=$?
stop_server "$log" || exit 1
exit "$status"
