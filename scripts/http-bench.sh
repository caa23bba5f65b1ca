#!/usr/bin/env bash
# The HTTP figures, each a ratio measured in one run on this machine (`make bench-http`):
#
#   1. the load generator against wrk: the same request (POST /v1/drops/{id}/reserve with a
#      bearer token, answered 409 sold_out from memory) to the same `stockdrop serve`, both
#      keeping the same number of connections busy; CPU per request of each (wrk's from
#      getrusage of its process, the generator's as its report gives it: its process's CPU
#      over the load only);
#   2. `stockdrop serve` against a bare Hummingbird 2 application (`stockdrop bench-server`:
#      one route, the same event-loop settings), with wrk: GET /health on both, a reserve
#      answered from memory, and the default log level against --log-level warning;
#   3. flash-sale over HTTP beside flash-sale in process, with the harness's and the server's
#      latencies side by side;
#   4. shedding: flash-sale with the server and the generator on separate cores (taskset) and
#      4,096 connections, so that the server, not the harness, is past its bound.
#
#   scripts/http-bench.sh [BINARY]   (default .build/release/stockdrop; REFERENCE_BIN: the binary
#   whose bench-server is the reference, for measuring an older BINARY that has none)
#   HTTP_BENCH_SECONDS (default 8): each wrk measurement; HTTP_BENCH_CONNECTIONS (default 64);
#   HTTP_BENCH_PARTS (default "1 2 3 4"): which parts to run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v wrk >/dev/null || { echo "http-bench: installing wrk"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
bin=${1:-.build/release/stockdrop}
seconds=${HTTP_BENCH_SECONDS:-8}
connections=${HTTP_BENCH_CONNECTIONS:-64}
parts=${HTTP_BENCH_PARTS:-"1 2 3 4"}
export STOCKDROP_JWT_SECRET=${STOCKDROP_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
work=$(mktemp -d)
# shellcheck source=scripts/serve-lib.sh
. "$root/scripts/serve-lib.sh"
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# serve ARGS...: starts `stockdrop serve ARGS` (or `bench-server`: from REFERENCE_BIN when set,
# so an older binary can be measured against the same reference) on a free port; sets
# server_pid, url.
serve() {
  local binary=$bin
  if [ "$1" = bench-server ]; then binary=${REFERENCE_BIN:-$bin}; fi
  "$binary" "$@" --port 0 >"$work/serve.out" 2>"$work/serve.log" &
  server_pid=$!
  for _ in $(seq 1 600); do
    grep -q "serving" "$work/serve.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  url=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1)
  [ -n "$url" ] || { cat "$work/serve.log" >&2; echo "http-bench: $bin $1 did not start" >&2; exit 69; }
}
stop() { kill -TERM "$server_pid"; wait "$server_pid" || true; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

declare -A rate cpu
# wrk_run KEY LABEL wrk-args...: rate[KEY] = requests/s, cpu[KEY] = wrk's CPU µs per request.
wrk_run() {
  local key=$1 label=$2
  shift 2
  /usr/bin/time -f "%U %S" -o "$work/time" wrk -t1 -c"$connections" -d"${seconds}s" "$@" >"$work/wrk.out"
  rate[$key]=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  local requests
  requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  cpu[$key]=$(awk -v r="$requests" '{ printf "%.2f", ($1 + $2) * 1e6 / (r > 0 ? r : 1) }' "$work/time")
  printf '  %-52s %10s req/s  wrk CPU %6s µs/request\n' "$label" "${rate[$key]}" "${cpu[$key]}"
}

reserve_lua() { # TOKEN: a wrk script that POSTs with the bearer token
  cat >"$work/reserve.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $1"
LUA
}

if [[ " $parts " == *" 1 "* ]]; then
  echo "http-bench 1: the load generator against wrk, same server, same request, $connections connections each"
  serve serve --no-rate-limit --log-level warning
  drop=$(held_drop "$url" 1 "http bench" "$("$bin" token --user 1)")
  reserve_lua "$("$bin" token --user 2)"
  wrk_run wrk "wrk: POST reserve answered sold_out" -s "$work/reserve.lua" "$url/v1/drops/$drop/reserve"
  # The generator at more than the server can answer, so that like wrk it always has every
  # connection busy: buyers arrive at twice wrk's rate and wait for a free connection.
  arrivals=$(awk -v r="${rate[wrk]}" 'BEGIN { printf "%d", r * 2 }')
  users=$((arrivals * seconds))
  cat >"$work/sold-out.yaml" <<YAML
name: generator-cost
description: every buyer after the first is answered sold_out from memory, as wrk's requests are
seed: 1
target: inprocess
strategy: actor
drops:
  - {name: one unit, priceCents: 100, stock: 1, reserveTTL: 100ms}
users:
  - count: $users
    drop: one unit
    arrival: {rate: {perSecond: $arrivals, for: ${seconds}s}}
    thinkTime: {uniform: [1ms, 2ms]}
    afterReserve: {purchase: 0, cancel: 0, abandon: 1}
    onRejected: {retries: 0, backoff: 1ms}
limits: {maxDuration: $((seconds + 2))s}
YAML
  "$bin" run "$work/sold-out.yaml" --target "$url" --connections "$connections" --report-dir "$work/reports" \
    >"$work/generator.out" 2>&1 || true
  report=$(ls "$work"/reports/*/report.json)
  read -r rate[generator] cpu[generator] < <(python3 - "$report" <<'PY'
import json, sys
strategy = json.load(open(sys.argv[1]))["strategies"][0]
print(round(strategy["throughput"]["requestsPerSecond"]), round(strategy["timing"]["harnessCPUMicrosecondsPerRequest"], 2))
PY
)
  printf '  %-52s %10s req/s  its CPU %6s µs/request\n' "stockdrop run (the generator), same request" \
    "${rate[generator]}" "${cpu[generator]}"
  stop
  echo "  generator CPU per request ÷ wrk's: $(ratio "${cpu[generator]}" "${cpu[wrk]}") (target ≤ 3, goal 2)"
fi

if [[ " $parts " == *" 2 "* ]]; then
  echo "http-bench 2: stockdrop serve against a bare Hummingbird 2 application, wrk -t1 -c$connections -d${seconds}s"
  serve bench-server
  wrk_run bare "bare Hummingbird: GET /health" "$url/health"
  stop
  serve serve --no-rate-limit --log-level warning
  wrk_run health_warning "stockdrop serve --log-level warning: GET /health" "$url/health"
  drop=$(held_drop "$url" 1 "http bench" "$("$bin" token --user 1)")
  reserve_lua "$("$bin" token --user 2)"
  wrk_run reserve "stockdrop serve: POST reserve answered sold_out" -s "$work/reserve.lua" "$url/v1/drops/$drop/reserve"
  stop
  # The default level writes a line per request to a file (stderr redirected), as an
  # operator's server would.
  serve serve --no-rate-limit
  wrk_run health_info "stockdrop serve, default log level: GET /health" "$url/health"
  stop
  echo "  GET /health ÷ bare Hummingbird: $(ratio "${rate[health_warning]}" "${rate[bare]}") (target ≥ 0.80)"
  echo "  reserve from memory ÷ bare Hummingbird's /health: $(ratio "${rate[reserve]}" "${rate[bare]}") (target ≥ 0.50)"
  echo "  GET /health at the default log level ÷ at warning: $(ratio "${rate[health_info]}" "${rate[health_warning]}") (target ≥ 0.90)"
fi

# summary REPORT.json LABEL: one line of a run's figures (answers/s; reserve p99 from the intended
# send, from the send, and the server's own; shed; purchases refused expired though sent in
# time; whether the run was harness-limited; its verdict).
summary() {
  python3 - "$1" "$2" <<'PY'
import json, sys
report, label = json.load(open(sys.argv[1])), sys.argv[2]
s = report["strategies"][0]
reserve = s["operations"]["reserve"]
timing = s.get("timing") or {}
op = (timing.get("operations") or {}).get("reserve") or {}
server = op.get("server") or {}
expired = s.get("expiredPurchases") or {}
shed = sum(o.get("shed", 0) for o in s["operations"].values())
print(f"  {label:<34} answers/s {s['throughput']['answersPerSecond']:>8.0f}  reserve p99 {reserve['latencyMilliseconds']['p99']:>8.1f} ms"
      f" (from send {op.get('fromSendMilliseconds', {}).get('p99', 0):.1f}, server's own {server.get('p99Milliseconds', 0):.1f})"
      f"  shed {shed}  expired in time {expired.get('sentInTime', 0)}"
      f"  {'HARNESS-LIMITED ' if timing.get('harnessLimited') else ''}exit {report['exitCode']}")
PY
}
answers() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["strategies"][0]["throughput"]["answersPerSecond"])' "$1"; }

if [[ " $parts " == *" 3 "* ]]; then
  echo "http-bench 3: flash-sale in process and over HTTP (generator and server on the same 2 cores)"
  "$bin" db start >/dev/null
  "$bin" run scenarios/flash-sale.yaml --strategy actor --report-dir "$work/in" >"$work/in.out" 2>&1 || true
  summary "$(ls "$work"/in/*/report.json)" "in process"
  serve serve --no-rate-limit --log-level warning
  "$bin" run scenarios/flash-sale.yaml --target "$url" --report-dir "$work/http" >"$work/http.out" 2>&1 || true
  stop
  summary "$(ls "$work"/http/*/report.json)" "over HTTP (--connections default)"
  echo "  HTTP ÷ in process, answers/s: $(ratio "$(answers "$(ls "$work"/http/*/report.json)")" "$(answers "$(ls "$work"/in/*/report.json)")") (target ≥ 0.60)"
fi

if [[ " $parts " == *" 4 "* ]]; then
  # The server on core 0, the generator on core 1 (PostgreSQL wherever the kernel puts it), and
  # 4,096 connections: more buyers at once than the server answers within its latency target,
  # so the server, not the harness, is what is past its bound. Once without shedding
  # (--latency-target-ms 0), once with the default target.
  echo "http-bench 4: shedding, server and generator on separate cores (taskset), --connections 4096"
  "$bin" db start >/dev/null
  for target in 0 "${LATENCY_TARGET_MS:-250}"; do
    taskset -c 0 "$bin" serve --port 0 --no-rate-limit --log-level warning --latency-target-ms "$target" \
      >"$work/serve.out" 2>"$work/serve.log" &
    server_pid=$!
    for _ in $(seq 1 600); do grep -q "serving" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
    url=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1)
    taskset -c 1 "$bin" run scenarios/flash-sale.yaml --target "$url" --connections 4096 \
      --report-dir "$work/shed-$target" >"$work/shed.out" 2>&1 || true
    stop
    summary "$(ls "$work"/shed-"$target"/*/report.json)" "--latency-target-ms $target"
    python3 - "$(ls "$work"/shed-"$target"/*/report.json)" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["strategies"][0]
line = []
for name in ("purchase", "cancel"):
    o = s["operations"].get(name, {})
    line.append(f"{name} {o.get('count', 0)} sent, {o.get('shed', 0)} shed, {o.get('ok', 0)} ok,"
                f" p99 {o.get('latencyMilliseconds', {}).get('p99', 0):.1f} ms")
print("    " + "; ".join(line))
PY
  done
fi
