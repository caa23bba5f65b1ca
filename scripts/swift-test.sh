#!/usr/bin/env bash
# The test command's `swift test`, bounded. A whole run takes one to three minutes here; one
# still going after STOCKDROP_TEST_BOUND_SECONDS (default 900) is hung, not slow. Before the
# test process is killed, what a hang needs to be understood is printed: the tests that
# started and never ended, every thread's stack, and the test database's busy sessions and
# lock waits. A hang is then a failed run with its evidence, not a CI job that runs out its
# 90 minutes. Arguments go to `swift test`.
set -uo pipefail
cd "$(dirname "$0")/.."
# Swift Testing marks its lines with ✔ and ✘: read them as characters, whatever the caller's
# locale (a C locale would read them as bytes and match nothing).
export LC_ALL=C.UTF-8
bound=${STOCKDROP_TEST_BOUND_SECONDS:-900}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Line-buffered: piped, the test process writes its progress in 4 KiB blocks, and what a
# killed process had not flushed would be missing from the evidence.
setsid stdbuf -oL -eL swift test "$@" > >(tee "$log") 2>&1 &
runner=$!
# swift test runs in a session of its own (to be found and killed whole): a Ctrl-C or a CI
# cancel that reaches this script stops it too.
trap 'pkill -KILL -s "$runner" 2>/dev/null; exit 130' INT TERM HUP
started=$SECONDS
while kill -0 "$runner" 2>/dev/null; do
  if ((SECONDS - started > bound)); then
    echo
    echo "swift-test: still running after ${bound} s: a hang. What it was doing:"
    echo "--- tests started and not ended"
    # Swift Testing's "◇ Test NAME started." and "✔/✘ Test NAME passed/failed ...".
    # (A parameterized test's cases start on lines of their own and end in the test's line.)
    sed -n 's/^◇ Test \(.*\) started\.$/\1/p' "$log" | grep -v '^case passing ' | sort -u > "$log.started"
    sed -n 's/^[✔✘] Test \(.*\) \(passed\|failed\|recorded\).*/\1/p' "$log" \
      | sed 's/ with [0-9]* test cases\{0,1\}$//' | sort -u > "$log.ended"
    comm -23 "$log.started" "$log.ended" | sed 's/^/  /'
    rm -f "$log.started" "$log.ended"
    for pid in $(pgrep -s "$runner" -f 'PackageTests.xctest'); do
      echo "--- threads of test process $pid"
      timeout 120 gdb -p "$pid" -batch -ex 'thread apply all bt 30' </dev/null 2>&1 | grep -E '^(Thread|#)' | head -1500
    done
    # Every running cluster (the tests' own is the embedded one; postmaster.pid names its
    # port and socket directory on lines 4 and 5).
    for pidfile in $(pgrep -f 'bin/postgres -D' | xargs -r -I{} readlink -f /proc/{}/cwd | sort -u | sed 's|$|/postmaster.pid|'); do
      [ -r "$pidfile" ] || continue
      port=$(sed -n 4p "$pidfile"); socket_dir=$(sed -n 5p "$pidfile")
      echo "--- busy sessions and lock waits of the cluster in $(dirname "$pidfile")"
      as_postgres=(); [ "$(id -u)" = 0 ] && as_postgres=(runuser -u postgres --)
      timeout 30 "${as_postgres[@]}" psql -U postgres -h "$socket_dir" -p "$port" -d postgres -X -q -c \
        "SELECT pid, datname, state, wait_event_type, wait_event, now() - xact_start AS in_transaction, left(query, 120) AS query
         FROM pg_stat_activity WHERE state IS DISTINCT FROM 'idle' AND backend_type = 'client backend'
         AND pid <> pg_backend_pid() ORDER BY xact_start" \
        -c "SELECT locktype, relation::regclass, mode, pid, granted FROM pg_locks WHERE NOT granted" 2>&1
    done
    pkill -KILL -s "$runner" 2>/dev/null
    wait "$runner" 2>/dev/null
    echo "swift-test: killed after ${bound} s (STOCKDROP_TEST_BOUND_SECONDS)" >&2
    exit 1
  fi
  sleep 2
done
wait "$runner"
