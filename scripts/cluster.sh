#!/usr/bin/env bash
# A throwaway scale-out cluster on this machine: one Redis, N `stockdrop serve` instances on
# one PostgreSQL, and HAProxy in front with the configuration of deploy/haproxy.cfg.
#
#   scripts/cluster.sh start N [serve options...]   start it; prints the balancer's URL
#   scripts/cluster.sh stop                         SIGTERM the instances (each must exit 0),
#                                                   then HAProxy and Redis
#   scripts/cluster.sh restart K                    restart instance K (1..N): same port, same id
#   scripts/cluster.sh restart redis                restart Redis (after the nemesis killed it)
#   scripts/cluster.sh status                       what runs, from the state directory
#   scripts/cluster.sh render FRONTEND_PORT PORT... the HAProxy configuration for those ports
#                                                   (`render 8080 8081 8082 8083` is deploy/haproxy.cfg)
#
# Environment:
#   STOCKDROP_BIN         the binary (default: .build/debug/stockdrop)
#   CLUSTER_DIR           the state directory (default: .stockdrop/cluster)
#   DATABASE_URL          PostgreSQL (unset: the embedded cluster, `stockdrop db start`)
#   STOCKDROP_JWT_SECRET  the token secret (unset: one is generated)
#
# The state directory holds `env` (sourceable: BALANCER_URL, INSTANCE_URLS, INSTANCE_IDS,
# INSTANCE_PORTS, INSTANCE_PIDS, HAPROXY_PID, REDIS_PID, REDIS_URL, DATABASE_URL,
# STOCKDROP_JWT_SECRET, STOCKDROP_BIN, LEASE_MS, all exported), one log per process
# (s1.log.., haproxy.log, redis.log), the generated haproxy.cfg, and per process NAME.pid and,
# once it exited, NAME.status (its exit status).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# Relative paths given by the caller are relative to where they called from, not to the
# checkout this script moves to below.
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
bin=$(absolute "${STOCKDROP_BIN:-$root/.build/debug/stockdrop}")
dir=$(absolute "${CLUSTER_DIR:-$root/.stockdrop/cluster}")
template=$root/deploy/haproxy.cfg
# The embedded database lives under the checkout (`stockdrop db start` finds it from there).
cd "$root"

readonly ready_timeout_s=60   # an instance's first start migrates and warms up; generous
readonly stop_timeout_s=30    # SIGTERM drains accepted requests and in-flight batches

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

# A value single-quoted for the env file: readable by `.` in sh/bash and by Python's shlex.
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# True while PID runs. A zombie is not running: PID 1 of a container may never reap it.
running() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

# The status code of GET URL (0 when nothing answered), from python3 because curl is not one
# of the packages setup.sh installs.
http_status() {
  python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as error:
    print(error.code)
except Exception:
    print(0)
EOF
}

# COUNT free loopback ports, distinct because every socket stays bound until all are picked.
# A port can still be taken between this and the bind; the start then fails and cleans up.
free_ports() {
  python3 -c '
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))' "$1"
}

# Closes every descriptor above 2 this shell has (but the script's own, 255, in the main
# shell): what a caller passed down, and bash's saved copy of a redirected stdout inside a
# function. A long-lived process that inherits the write end of a caller's pipe keeps
# `$(scripts/cluster.sh start 3)`, `| tee` or a Python capture waiting until the cluster stops.
close_extra_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] && { [ "$fd" -ne 255 ] || [ "$BASHPID" -ne $$ ]; }; then
      eval "exec $fd>&-" 2>/dev/null || true
    fi
  done
}

# supervise NAME COMMAND...: runs COMMAND in the background, output to NAME.log, and records
# its pid in NAME.pid and, when it exits, its exit status in NAME.status. A small bash parent
# stays to wait for it, because `stop` runs in another process than `start` and could not
# otherwise learn the exit status (nor would the orphan be reaped). Prints the pid.
supervise() {
  local name=$1
  shift
  rm -f "$dir/$name.pid" "$dir/$name.status"
  (
    close_extra_fds
    "$@" </dev/null >>"$dir/$name.log" 2>&1 &
    child=$!
    echo "$child" >"$dir/$name.pid.tmp" && mv "$dir/$name.pid.tmp" "$dir/$name.pid"
    status=0
    wait "$child" || status=$?
    echo "$status" >"$dir/$name.status.tmp" && mv "$dir/$name.status.tmp" "$dir/$name.status"
  ) </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 100); do
    [ -s "$dir/$name.pid" ] && { cat "$dir/$name.pid"; return 0; }
    sleep 0.05
  done
  die "$name: no pid after 5 s"
}

pid_of() { cat "$dir/$1.pid" 2>/dev/null || true; }
# Running and not yet exited per its supervisor.
alive() { [ ! -e "$dir/$1.status" ] && running "$(pid_of "$1")"; }

# stop_process NAME SIGNAL|- TIMEOUT_S: signal it (- when the caller already did: a second
# SIGTERM must not turn a graceful shutdown into something else) and wait for its supervisor
# to record the exit. Prints the exit status; escalates to SIGKILL after the timeout (and
# prints "timeout").
stop_process() {
  local name=$1 signal=$2 timeout_s=$3 pid
  pid=$(pid_of "$name")
  [ "$signal" = - ] || kill "-$signal" "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true   # a SIGSTOPped process (a test) would handle nothing
  for _ in $(seq 1 $((timeout_s * 10))); do
    [ -e "$dir/$name.status" ] && { cat "$dir/$name.status"; return 0; }
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    # What every thread was doing, for whoever reads why it hung (gdb is in setup.sh's list).
    if command -v gdb >/dev/null; then
      timeout 30 gdb -p "$pid" -batch -ex "thread apply all bt" >"$dir/$name.stacks" 2>&1 || true
    fi
    kill -KILL "$pid" 2>/dev/null || true
    echo timeout
    return 0
  fi
  # Gone but no status: its supervisor was killed with it. Report what is known.
  for _ in $(seq 1 20); do [ -e "$dir/$name.status" ] && break; sleep 0.05; done
  cat "$dir/$name.status" 2>/dev/null || echo unknown
}

log_tail() { [ -s "$dir/$1.log" ] && { say "last lines of $dir/$1.log:"; tail -n 20 "$dir/$1.log" >&2; } || true; }

# The instances' names in order, from the pid files present (s1, s2, ..., s10 sorted as numbers).
instance_names() {
  local file
  for file in "$dir"/s*.pid; do [ -e "$file" ] && basename "$file" .pid; done | sort -t s -k 2 -n
}

# render FRONTEND_PORT PORT...: deploy/haproxy.cfg with its frontend on FRONTEND_PORT and, in
# each backend, its first `server s1 127.0.0.1:...` line repeated once per PORT (s1 -> sK,
# port, `id 1` -> `id K`, `track backend/s1` -> `track backend/sK`); the template's other
# server lines of that block are dropped. Fails if the template lost the shape it relies on.
render() {
  local frontend=$1
  shift
  awk -v frontend="$frontend" -v ports="$*" '
    function expand(line, k, port) {
      line = line " "
      sub(/server s1 /, "server s" k " ", line)
      sub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:" port, line)
      sub(/ id 1 /, " id " k " ", line)
      sub(/\/s1 /, "/s" k " ", line)
      sub(/ $/, "", line)
      return line
    }
    BEGIN { count = split(ports, port, " ") }
    /^[ \t]*bind 127\.0\.0\.1:[0-9]+[ \t]*$/ {
      binds++
      sub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:" frontend)
      print
      next
    }
    /^[ \t]*server s1 127\.0\.0\.1:[0-9]+( |$)/ {
      blocks++
      for (k = 1; k <= count; k++) print expand($0, k, port[k])
      in_block = 1
      next
    }
    in_block && /^[ \t]*server s[0-9]+ 127\.0\.0\.1:/ { next }
    { in_block = 0; print }
    END {
      if (binds != 1 || blocks < 1) {
        printf "render: %s needs one `bind 127.0.0.1:PORT` line and a `server s1 127.0.0.1:PORT` block per backend (found %d, %d)\n", FILENAME, binds, blocks > "/dev/stderr"
        exit 1
      }
    }' "$template"
}

write_env() {
  local var tmp=$dir/env.tmp
  (
    umask 077   # it carries the JWT secret
    {
      echo "# Written by scripts/cluster.sh; source it: . $dir/env"
      for var in CLUSTER_DIR BALANCER_URL INSTANCE_URLS INSTANCE_IDS INSTANCE_PORTS INSTANCE_PIDS HAPROXY_PID \
        REDIS_PID REDIS_URL DATABASE_URL STOCKDROP_JWT_SECRET STOCKDROP_BIN LEASE_MS; do
        echo "export $var=$(quote "${!var:-}")"
      done
    } >"$tmp"
  )
  mv "$tmp" "$dir/env"
}

# start_instance K PORT: `stockdrop serve` as sK on PORT with the options saved in serve.args.
start_instance() {
  local k=$1 port=$2 args
  args=(serve --strategy actor --no-rate-limit --log-level notice --port "$port"
    # HAProxy on loopback adds X-Forwarded-For; trust it so client addresses are the clients'.
    --trusted-proxies 127.0.0.1 --instance-id "s$k" --advertise-url "http://127.0.0.1:$port")
  local extra=()
  mapfile -t extra <"$dir/serve.args"
  args+=("${extra[@]}")
  echo "--- $(date -u +%FT%TZ) $bin ${args[*]}" >>"$dir/s$k.log"
  # Not `supervise ... >/dev/null`: a function call's redirection leaves a saved copy of
  # stdout in the shell that its background children would inherit (close_extra_fds handles
  # it too).
  local pid
  pid=$(supervise "s$k" "$bin" "${args[@]}")
  [ -n "$pid" ]
}

# wait_ready NAME URL: until GET URL/ready is 200; fails if NAME exits or the time runs out.
wait_ready() {
  local name=$1 url=$2 deadline=$((SECONDS + ready_timeout_s)) status=0
  while ((SECONDS < deadline)); do
    status=$(http_status "$url/ready")
    [ "$status" = 200 ] && return 0
    if ! alive "$name"; then
      log_tail "$name"
      die "$name exited (status $(cat "$dir/$name.status" 2>/dev/null || echo unknown)) before $url/ready answered 200"
    fi
    sleep 0.2
  done
  log_tail "$name"
  die "$name: $url/ready answered $status, not 200, for ${ready_timeout_s} s"
}

# wait_registered K...: until each instance sK is in stockdrop_instances with its own address
# and a fresh heartbeat (an instance is listed there under its name and its process's
# incarnation, sK~…). An instance registers before it reports that it listens, so this is a
# check that it did, and returns at once.
wait_registered() {
  command -v psql >/dev/null || { say "psql missing: not waiting for the instance directory"; return 0; }
  local k values=() deadline=$((SECONDS + 10)) began=$SECONDS found=0
  for k in "$@"; do values+=("('s$k', 'http://127.0.0.1:${instance_ports[k - 1]}')"); done
  local sql="select count(*) from stockdrop_instances where (split_part(id, '~', 1), address) in (values $(IFS=,; echo "${values[*]}"))
    and heartbeat_at > clock_timestamp() - interval '5 seconds'"
  while ((SECONDS < deadline)); do
    found=$(psql "$DATABASE_URL" -X -Atc "$sql" </dev/null 2>/dev/null || echo 0)
    [ "$found" = $# ] && break
    sleep 0.1
  done
  [ "$found" = $# ] || die "after 10 s, $found of $# instances are in stockdrop_instances with their address"
  ((SECONDS - began < 1)) || say "the instance directory listed them $((SECONDS - began)) s after /ready answered 200"
}

load_env() {
  [ -f "$dir/env" ] || die "no cluster in $dir (no env file); scripts/cluster.sh start N first"
  # shellcheck disable=SC1091
  . "$dir/env"
}

# Stops every process that has a pid file: the instances (each must exit 0 after SIGTERM if it
# was running), then HAProxy, then Redis. Returns 1 if an instance did not shut down cleanly.
stop_all() {
  local name status failed=0 names=()
  mapfile -t names < <(instance_names)
  # SIGTERM all first so they drain in parallel, then collect each.
  local running_names=()
  for name in "${names[@]}"; do
    if alive "$name"; then
      running_names+=("$name")
      kill -TERM "$(pid_of "$name")" 2>/dev/null || true
    elif [ -e "$dir/$name.status" ]; then
      say "$name had already exited (status $(cat "$dir/$name.status")), not checked"
    fi
  done
  local verdicts=()
  for name in "${running_names[@]}"; do
    status=$(stop_process "$name" - "$stop_timeout_s")
    if [ "$status" = 0 ]; then
      say "$name stopped (exit 0)"
    else
      log_tail "$name"
      local why="exit status $status"
      [ "$status" = timeout ] && why="still running ${stop_timeout_s} s after SIGTERM, killed; thread stacks in $dir/$name.stacks"
      verdicts+=("$name did not shut down cleanly after SIGTERM: $why")
      failed=1
    fi
  done
  for name in haproxy redis; do
    if alive "$name"; then
      status=$(stop_process "$name" TERM 10)
      say "$name stopped (exit $status)"
    fi
  done
  rm -f "$dir/env" "$dir"/*.pid "$dir/redis.sock"
  # Last, so the end of a long log says which instance and why.
  local verdict
  for verdict in "${verdicts[@]}"; do say "$verdict"; done
  return "$failed"
}

cmd_start() {
  [ $# -ge 1 ] || die "usage: scripts/cluster.sh start N [serve options...]"
  local count=$1
  shift
  [[ $count =~ ^[1-9][0-9]?$ ]] || die "N must be 1..99, not '$count'"
  [ -x "$bin" ] || die "no binary at $bin (build it, or set STOCKDROP_BIN)"
  local tool
  for tool in redis-server redis-cli haproxy python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
  done

  mkdir -p "$dir"
  local name
  for name in $(instance_names) haproxy redis; do
    alive "$name" && die "$name is still running from an earlier start; scripts/cluster.sh stop first"
  done
  # Only our own files: CLUSTER_DIR may point at a directory that holds other things.
  rm -f "$dir"/env "$dir"/*.pid "$dir"/*.status "$dir"/*.log "$dir"/haproxy.cfg "$dir"/serve.args "$dir"/redis.sock "$dir"/db-start.log

  CLUSTER_DIR=$dir
  STOCKDROP_BIN=$bin
  printf '%s\n' "$@" >"$dir/serve.args"
  [ $# -gt 0 ] || : >"$dir/serve.args"
  # The lease duration the tests wait past: the one given, else the server's default.
  LEASE_MS=3000
  local previous=""
  for arg in "$@"; do
    [ "$previous" = --lease-ms ] && LEASE_MS=$arg
    case $arg in --lease-ms=*) LEASE_MS=${arg#--lease-ms=} ;; esac
    previous=$arg
  done

  STOCKDROP_JWT_SECRET=${STOCKDROP_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  if [ -z "${DATABASE_URL:-}" ]; then
    # PostgreSQL stays up after this script (other runs reuse it): its output goes to a file,
    # never to the caller's pipes, which it would otherwise hold open.
    "$bin" db start </dev/null >"$dir/db-start.log" 2>&1 || { cat "$dir/db-start.log" >&2; die "stockdrop db start failed"; }
    DATABASE_URL=$("$bin" db url </dev/null)
  fi
  # Migrate once up front: an unreachable database fails here, before anything is started.
  DATABASE_URL=$DATABASE_URL "$bin" migrate </dev/null >/dev/null ||
    die "stockdrop migrate failed on DATABASE_URL=$DATABASE_URL"

  # From here on, a failure (or Ctrl-C) stops whatever was started.
  started=0
  trap 'if [ "$started" = 0 ]; then say "start failed; stopping what was started"; stop_all >/dev/null 2>&1 || true; fi' EXIT
  trap 'exit 130' INT TERM

  local ports
  read -r -a ports <<<"$(free_ports $((count + 1)))"
  local balancer_port=${ports[0]}
  local instance_ports=("${ports[@]:1}")

  start_redis
  export DATABASE_URL REDIS_URL STOCKDROP_JWT_SECRET
  local k urls=() ids=() pids=()
  for ((k = 1; k <= count; k++)); do
    start_instance "$k" "${instance_ports[k - 1]}"
    urls+=("http://127.0.0.1:${instance_ports[k - 1]}")
    ids+=("s$k")
  done
  # Their first starts overlap: each waits for the others' migrations (an advisory lock).
  for ((k = 1; k <= count; k++)); do
    wait_ready "s$k" "${urls[k - 1]}"
    pids+=("$(pid_of "s$k")")
  done
  wait_registered $(seq 1 "$count")

  render "$balancer_port" "${instance_ports[@]}" >"$dir/haproxy.cfg"
  haproxy -c -q -f "$dir/haproxy.cfg" || die "haproxy rejected $dir/haproxy.cfg"
  # -db: the foreground, so the log (`log stdout`) goes to haproxy.log and the pid is its own.
  HAPROXY_PID=$(supervise haproxy haproxy -db -f "$dir/haproxy.cfg")
  BALANCER_URL=http://127.0.0.1:$balancer_port
  wait_ready haproxy "$BALANCER_URL"

  INSTANCE_URLS=${urls[*]}
  INSTANCE_IDS=${ids[*]}
  INSTANCE_PORTS=${instance_ports[*]}
  INSTANCE_PIDS=${pids[*]}
  write_env
  started=1
  say "$count instances (${ids[*]}) at ${urls[*]}"
  say "balancer at $BALANCER_URL; state in $dir (. $dir/env)"
  echo "$BALANCER_URL"
}

# Redis: a Unix socket in the state directory, no TCP port, no persistence. Sets REDIS_PID and
# REDIS_URL.
start_redis() {
  local socket=$dir/redis.sock
  ((${#socket} < 100)) || die "the Redis socket path $socket is too long for a Unix socket; set CLUSTER_DIR"
  rm -f "$socket"
  REDIS_PID=$(supervise redis redis-server --port 0 --unixsocket "$socket" --unixsocketperm 700 \
    --save '' --appendonly no --dir "$dir" --daemonize no)
  for _ in $(seq 1 100); do
    [ "$(redis-cli -s "$socket" ping 2>/dev/null)" = PONG ] && break
    alive redis || { log_tail redis; die "redis-server exited"; }
    sleep 0.05
  done
  [ "$(redis-cli -s "$socket" ping 2>/dev/null)" = PONG ] || { log_tail redis; die "Redis did not answer on $socket"; }
  REDIS_URL=unix://$socket
}

cmd_stop() {
  if ! ls "$dir"/*.pid >/dev/null 2>&1; then
    say "nothing to stop in $dir"
    return 0
  fi
  stop_all || die "an instance did not shut down cleanly (logs in $dir)"
  say "stopped; logs in $dir"
}

cmd_restart() {
  [ $# -eq 1 ] && [[ $1 =~ ^([1-9][0-9]*|redis)$ ]] || die "usage: scripts/cluster.sh restart K (1..N) | redis"
  local k=$1
  load_env
  if [ "$k" = redis ]; then
    # The instances reconnect on their own (RedisRelay backs off and resubscribes).
    alive redis && stop_process redis TERM 10 >/dev/null
    start_redis
    write_env
    say "redis restarted (pid $REDIS_PID)"
    return 0
  fi
  # The env file names the binary and directory the cluster was started with.
  bin=$STOCKDROP_BIN
  local instance_ports pids
  read -r -a instance_ports <<<"$INSTANCE_PORTS"
  read -r -a pids <<<"$INSTANCE_PIDS"
  ((k <= ${#instance_ports[@]})) || die "no instance $k: the cluster has ${#instance_ports[@]}"
  if alive "s$k"; then
    local status
    status=$(stop_process "s$k" TERM "$stop_timeout_s")
    [ "$status" = 0 ] || { log_tail "s$k"; die "s$k did not shut down cleanly after SIGTERM ($status)"; }
  else
    say "s$k was not running (status $(cat "$dir/s$k.status" 2>/dev/null || echo unknown))"
  fi
  export DATABASE_URL REDIS_URL STOCKDROP_JWT_SECRET
  start_instance "$k" "${instance_ports[k - 1]}"
  wait_ready "s$k" "http://127.0.0.1:${instance_ports[k - 1]}"
  wait_registered "$k"
  pids[k - 1]=$(pid_of "s$k")
  INSTANCE_PIDS=${pids[*]}
  write_env
  say "s$k restarted at http://127.0.0.1:${instance_ports[k - 1]} (pid ${pids[k - 1]})"
}

cmd_status() {
  load_env
  local name state
  for name in $(instance_names) haproxy redis; do
    if alive "$name"; then state="running (pid $(pid_of "$name"))"; else state="exited ($(cat "$dir/$name.status" 2>/dev/null || echo unknown))"; fi
    echo "$name: $state"
  done
  echo "balancer: $BALANCER_URL"
}

close_extra_fds
case ${1:-} in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop ;;
  restart) shift; cmd_restart "$@" ;;
  status) cmd_status ;;
  render)
    shift
    [ $# -ge 2 ] || die "usage: scripts/cluster.sh render FRONTEND_PORT PORT..."
    render "$@"
    ;;
  *) die "usage: scripts/cluster.sh start N [serve options...] | stop | restart K | status | render FRONTEND_PORT PORT..." ;;
esac
