# Sourced by http-bench.sh, after serve-lib.sh (held_drop): the servers it measures, started
# and stopped, and its wrk measurements of them. Expects `bin`, `work`, `connections`,
# `seconds` and STOCKDROP_JWT_SECRET.

# serve ARGS...: starts `stockdrop serve ARGS` (or `bench-server`: from REFERENCE_BIN when set,
# so an older binary can be measured against the same reference) on a free port, under the
# command in `pin` if any (taskset); sets server_pid, url.
pin=()
serve() {
  serve_as main "$@"
  server_pid=${pids[main]}
  url=${urls[main]}
}

# serve_as NAME ARGS...: the same, for one of several servers running at once; sets
# pids[NAME], urls[NAME].
declare -A pids urls
serve_as() {
  local name=$1 binary=$bin
  shift
  if [ "$1" = bench-server ]; then binary=${REFERENCE_BIN:-$bin}; fi
  "${pin[@]}" "$binary" "$@" --port 0 >"$work/serve-$name.out" 2>"$work/serve-$name.log" &
  pids[$name]=$!
  for _ in $(seq 1 600); do
    grep -q "serving" "$work/serve-$name.out" 2>/dev/null && break
    kill -0 "${pids[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  urls[$name]=$(grep -o 'http://[0-9.:]*' "$work/serve-$name.out" | head -1)
  [ -n "${urls[$name]}" ] || { cat "$work/serve-$name.log" >&2; echo "http-bench: $bin $1 did not start" >&2; exit 69; }
}
stop() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  unset "pids[main]"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

declare -A rate cpu
# wrk_run KEY LABEL wrk-args...: rate[KEY] = requests/s, cpu[KEY] = wrk's CPU µs per request.
wrk_run() {
  local key=$1 label=$2
  shift 2
  /usr/bin/time -f "%U %S" -o "$work/time" wrk -t1 -c"$connections" -d"${seconds}s" "$@" >"$work/wrk.out"
  rate[$key]=$(wrk_rate)
  local requests
  requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  cpu[$key]=$(awk -v r="$requests" '{ printf "%.2f", ($1 + $2) * 1e6 / (r > 0 ? r : 1) }' "$work/time")
  printf '  %-52s %10s req/s  wrk CPU %6s µs/request\n' "$label" "${rate[$key]}" "${cpu[$key]}"
}

# reserve_target URL: writes $work/reserve.lua (user 2's reserve: POST with its bearer token)
# and prints the reserve's URL, for a drop on the server at URL whose one unit user 1 holds:
# a 409 sold_out answered from memory.
reserve_target() {
  local drop
  drop=$(held_drop "$1" 1 "http bench" "$("$bin" token --user 1)")
  cat >"$work/reserve.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $("$bin" token --user 2)"
LUA
  echo "$1/v1/drops/$drop/reserve"
}

# wrk_reserve KEY LABEL: wrk_run of that reserve on the server at $url.
wrk_reserve() {
  local target
  target=$(reserve_target "$url")
  wrk_run "$1" "$2" -s "$work/reserve.lua" "$target"
}

# wrk_slice ROUND KEY wrk-args...: one short wrk measurement (HTTP_BENCH_SLICE_SECONDS), its
# requests/s appended to $work/slices.tsv as "ROUND KEY RATE".
wrk_slice() {
  local round=$1 key=$2
  shift 2
  wrk -t1 -c"$connections" -d"${slice}s" "$@" >"$work/wrk.out"
  local rate
  rate=$(wrk_rate)
  echo "$round $key ${rate:-0}" >>"$work/slices.tsv"
}

# wrk_rate: the requests/s of the last wrk measurement.
wrk_rate() { awk '/Requests\/sec/ {print $2}' "$work/wrk.out"; }
