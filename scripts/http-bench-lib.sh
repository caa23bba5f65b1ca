# Sourced by http-bench.sh, after serve-lib.sh (held_drop): the servers it measures, started
# and stopped, and its wrk measurements of them. Expects `bin`, `work`, `connections`,
# `seconds` and STOCKDROP_JWT_SECRET.

# serve ARGS...: starts `stockdrop serve ARGS` (or `bench-server`: from REFERENCE_BIN when set,
# so an older binary can be measured against the same reference) on a free port, under the
# command in `pin` if any (taskset); sets server_pid, url.
pin=()
serve() {
  local binary=$bin
  if [ "$1" = bench-server ]; then binary=${REFERENCE_BIN:-$bin}; fi
  "${pin[@]}" "$binary" "$@" --port 0 >"$work/serve.out" 2>"$work/serve.log" &
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

# wrk_reserve KEY LABEL: wrk_run of user 2's reserve (POST with its bearer token) of a drop
# whose one unit user 1 holds: a 409 sold_out answered from memory.
wrk_reserve() {
  local drop
  drop=$(held_drop "$url" 1 "http bench" "$("$bin" token --user 1)")
  cat >"$work/reserve.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $("$bin" token --user 2)"
LUA
  wrk_run "$1" "$2" -s "$work/reserve.lua" "$url/v1/drops/$drop/reserve"
}
