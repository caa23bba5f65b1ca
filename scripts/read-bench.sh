#!/usr/bin/env bash
# The read path's figures with wrk (1 thread, 32 connections, 8 s each, on this machine beside
# the server): for each binary given (default: the release build), one `stockdrop serve`
# (rate limits off, the embedded PostgreSQL, its log going to a file) answers
#   GET /health                       at the default log level, then at --log-level warning
#   POST /v1/drops/{id}/reserve       answered from memory (the user already holds a unit)
#   GET /v1/drops/{id}, GET /v1/drops
# and the ratios the read issue asks for are printed: the drop read against /health, and the
# default log level's cost on /health. Give two binaries (before, after) to compare them in
# one run.
#   scripts/read-bench.sh [BINARY...]      WRK_SECONDS (default 8), WRK_CONNECTIONS (32)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v wrk >/dev/null || { echo "read-bench: installing wrk"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(.build/release/stockdrop)
seconds=${WRK_SECONDS:-8}
connections=${WRK_CONNECTIONS:-32}
export STOCKDROP_JWT_SECRET=${STOCKDROP_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
work=$(mktemp -d)
# shellcheck source=scripts/serve-lib.sh
. "$root/scripts/serve-lib.sh"
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

serve() { # BIN LOG-LEVEL: starts it, sets server_pid and url
  local bin=$1 level=$2
  "$bin" serve --port 0 --no-rate-limit --log-level "$level" >"$work/serve.out" 2>"$work/serve.log" &
  server_pid=$!
  for _ in $(seq 1 600); do
    grep -q "stockdrop serving" "$work/serve.out" 2>/dev/null && break
    sleep 0.1
  done
  url=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1)
  [ -n "$url" ] || { cat "$work/serve.log" >&2; echo "read-bench: $bin did not start" >&2; exit 69; }
}
stop() { kill -TERM "$server_pid"; wait "$server_pid" || true; }
declare -A rate
measure() { # KEY LABEL wrk-args...: prints "LABEL req/s mean-latency", keeps req/s as rate[KEY]
  local key=$1 label=$2
  shift 2
  local out
  out=$(wrk -t1 -c"$connections" -d"${seconds}s" "$@")
  rate[$key]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  printf '  %-46s %10s req/s  mean %s\n' "$label" "${rate[$key]}" "$(awk '/Latency/ {print $2; exit}' <<<"$out")"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

for bin in "${binaries[@]}"; do
  echo "read-bench: $bin, wrk -t1 -c$connections -d${seconds}s"
  buyer=$("$bin" token --user 2)
  serve "$bin" info
  drop=$(held_drop "$url" 1000 "read bench" "$buyer")
  cat >"$work/reserve.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $buyer"
LUA
  measure health_info "GET /health, default log level (info)" "$url/health"
  measure reserve "POST reserve from memory (already holding)" -s "$work/reserve.lua" "$url/v1/drops/$drop/reserve"
  measure drop_info "GET /v1/drops/$drop" "$url/v1/drops/$drop"
  measure list_info "GET /v1/drops" "$url/v1/drops"
  echo "  (the log file: $(wc -l <"$work/serve.log") lines, $(du -h "$work/serve.log" | cut -f1))"
  stop
  serve "$bin" warning
  measure health_warning "GET /health, --log-level warning" "$url/health"
  measure drop_warning "GET /v1/drops/$drop, --log-level warning" "$url/v1/drops/$drop"
  stop
  echo "  GET /v1/drops/{id} ÷ GET /health (default level): $(ratio "${rate[drop_info]}" "${rate[health_info]}") (target ≥ 0.80)"
  echo "  GET /health at the default level ÷ at warning: $(ratio "${rate[health_info]}" "${rate[health_warning]}") (target ≥ 0.90: the log costs ≤ 10%)"
done
