# Sourced by the scripts that need a `stockdrop serve` of their own (serve-and-run.sh,
# fuzz-api.sh): start_server starts one on a free port with the given serve options, waits
# until it says it is serving, and sets `server_pid` and `server_url`; stop_server sends it
# SIGTERM and fails unless it exits 0. Expects `bin` (the binary) and STOCKDROP_JWT_SECRET.

# start_server LOG [serve options...]
start_server() {
  local log=$1
  shift
  "$bin" serve --port 0 --no-rate-limit --log-level warning "$@" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    grep -q "stockdrop serving" "$log" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; echo "$(basename "$0"): the server did not start" >&2; exit 69; }
    sleep 0.1
  done
  server_url=$(grep -o 'http://[0-9.:]*' "$log" | head -1)
  [ -n "$server_url" ] || { cat "$log" >&2; echo "$(basename "$0"): the server did not listen within 60 s" >&2; exit 69; }
}

# stop_server LOG: SIGTERM, then its exit status must be 0 (the log's tail is shown if not).
stop_server() {
  local log=$1 status=0
  kill -TERM "$server_pid"
  wait "$server_pid" || status=$?
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "$(basename "$0"): stockdrop serve exited $status after SIGTERM" >&2
    return 1
  fi
}
