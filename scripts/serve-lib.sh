# Sourced by the scripts that need a `stockdrop serve` of their own (serve-and-run.sh,
# fuzz-api.sh, the benches): start_server starts one on a free port with the given serve
# options, waits until it says it is serving, and sets `server_pid` and `server_url`;
# stop_server sends it SIGTERM and fails unless it exits 0; held_drop makes a drop whose unit
# a user holds. Expects `bin` (the binary) and STOCKDROP_JWT_SECRET.

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

# held_drop URL STOCK NAME HOLDER_TOKEN: creates a drop of STOCK units (holds last ten minutes)
# as an admin, reserves a unit of it with HOLDER_TOKEN, and prints the drop's id. With stock 1
# everyone else's reserve is a 409 sold_out, and the holder's own a 409 already_holding, both
# answered from memory.
held_drop() {
  local admin
  admin=$("$bin" token --user 1 --role admin)
  python3 - "$@" "$admin" <<'PY'
import json, sys, urllib.request
url, stock, name, holder, admin = sys.argv[1:6]
def call(method, path, token, body=None):
    request = urllib.request.Request(url + path, method=method, data=body and json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)
drop = call("POST", "/v1/drops", admin, {"name": name, "priceCents": 100, "totalStock": int(stock),
    "reserveTTLMilliseconds": 600000})["id"]
call("POST", f"/v1/drops/{drop}/reserve", holder)
print(drop)
PY
}
