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
#      answered from memory, and the default log level against --log-level warning; the four
#      are measured in interleaved rounds of short slices and each ratio within a round;
#   3. flash-sale over HTTP beside flash-sale in process, with the harness's and the server's
#      latencies side by side, in pairs (HTTP_BENCH_PAIRS, default 3) and the median ratio;
#   4. shedding, off (--latency-target-ms 0) then on (the default target): flash-sale with the
#      server on core 0 and the generator on core 1 (taskset; PostgreSQL wherever the kernel
#      puts it) and 4,096 connections, more buyers at once than the server answers within its
#      latency target, so that the server, not the harness, is past its bound;
#   5. the same overload with the server, the generator and PostgreSQL sharing the 2 cores (no
#      taskset): purchases sent in time and still refused expired, what a starved server misses.
#
#   scripts/http-bench.sh [BINARY]   (default .build/release/stockdrop; REFERENCE_BIN: the binary
#   whose bench-server is the reference, for measuring an older BINARY that has none)
#   HTTP_BENCH_SECONDS (default 8): each wrk measurement; HTTP_BENCH_CONNECTIONS (default 64);
#   HTTP_BENCH_PARTS (default "1 2 3 4 5"): which parts to run; HTTP_BENCH_ROUNDS (default 4)
#   and HTTP_BENCH_SLICE_SECONDS (default 2): part 2's interleaved rounds and their slices.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v wrk >/dev/null || { echo "http-bench: installing wrk"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
bin=${1:-.build/release/stockdrop}
seconds=${HTTP_BENCH_SECONDS:-8}
connections=${HTTP_BENCH_CONNECTIONS:-64}
parts=${HTTP_BENCH_PARTS:-"1 2 3 4 5"}
rounds=${HTTP_BENCH_ROUNDS:-4}
slice=${HTTP_BENCH_SLICE_SECONDS:-2}
export STOCKDROP_JWT_SECRET=${STOCKDROP_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
work=$(mktemp -d)
# shellcheck source=scripts/serve-lib.sh
. "$root/scripts/serve-lib.sh"
# shellcheck source=scripts/http-bench-lib.sh
. "$root/scripts/http-bench-lib.sh"
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
part() { [[ " $parts " == *" $1 "* ]]; }
py() { python3 "$root/scripts/http-bench.py" "$@"; }

if part 1; then
  echo "http-bench 1: the load generator against wrk, same server, same request, $connections connections each"
  serve serve --no-rate-limit --log-level warning
  wrk_reserve wrk "wrk: POST reserve answered sold_out"
  # Buyers at twice wrk's rate, so that like wrk the generator keeps every connection busy.
  py scenario "${rate[wrk]}" "$seconds" >"$work/sold-out.yaml"
  "$bin" run "$work/sold-out.yaml" --target "$url" --connections "$connections" --report-dir "$work/reports" \
    >"$work/generator.out" 2>&1 || true
  report=$(ls "$work"/reports/*/report.json)
  py generator "$report" "${cpu[wrk]}"
  stop
fi

if part 2; then
  # The reference and the three measures are interleaved in short slices, each round in a
  # rotated order, and each ratio is taken within a round: on this shared machine bare
  # Hummingbird alone moved from 29k to 52k requests/s within five minutes, so measures minutes
  # apart compared the machine's moments, not the servers.
  echo "http-bench 2: stockdrop serve against a bare Hummingbird 2 application, wrk -t1 -c$connections," \
    "$rounds rounds of ${slice}s slices, interleaved"
  serve_as bare bench-server
  serve_as warning serve --no-rate-limit --log-level warning
  # The default level writes a line per request to a file (stderr redirected), as an
  # operator's server would.
  serve_as info serve --no-rate-limit
  reserve_url=$(reserve_target "${urls[warning]}")
  : >"$work/slices.tsv"
  measures=(bare warning info reserve)
  for ((round = 0; round < rounds; round++)); do
    for ((i = 0; i < ${#measures[@]}; i++)); do
      measure=${measures[$(((i + round) % ${#measures[@]}))]}
      if [ "$measure" = reserve ]; then
        wrk_slice "$round" reserve -s "$work/reserve.lua" "$reserve_url"
      else
        wrk_slice "$round" "$measure" "${urls[$measure]}/health"
      fi
    done
  done
  for name in bare warning info; do
    kill -TERM "${pids[$name]}"
    wait "${pids[$name]}" || true
    unset "pids[$name]"
  done
  py rounds "$work/slices.tsv"
fi

if part 3; then
  # In pairs, one right after the other (which goes first alternating), each pair's ratio its
  # own, for the reason part 2 interleaves: the machine's moments differ more than the runs.
  pairs=${HTTP_BENCH_PAIRS:-3}
  echo "http-bench 3: flash-sale in process and over HTTP (generator and server on the same 2 cores), $pairs pairs"
  "$bin" db start >/dev/null
  : >"$work/pairs.tsv"
  for ((pair = 0; pair < pairs; pair++)); do
    for side in $( ((pair % 2 == 0)) && echo "in http" || echo "http in"); do
      if [ "$side" = in ]; then
        "$bin" run scenarios/flash-sale.yaml --strategy actor --report-dir "$work/in-$pair" >"$work/in.out" 2>&1 || true
        py summary "$(ls "$work"/in-"$pair"/*/report.json)" "in process"
      else
        serve serve --no-rate-limit --log-level warning
        "$bin" run scenarios/flash-sale.yaml --target "$url" --report-dir "$work/http-$pair" >"$work/http.out" 2>&1 || true
        stop
        py summary "$(ls "$work"/http-"$pair"/*/report.json)" "over HTTP (--connections default)"
      fi
    done
    echo "$pair http $(py answers "$(ls "$work"/http-"$pair"/*/report.json)")" >>"$work/pairs.tsv"
    echo "$pair in $(py answers "$(ls "$work"/in-"$pair"/*/report.json)")" >>"$work/pairs.tsv"
  done
  py pairs "$work/pairs.tsv" http in "HTTP ÷ in process, answers/s" 0.60
fi

if part 4; then
  echo "http-bench 4: shedding, server and generator on separate cores (taskset), --connections 4096"
  "$bin" db start >/dev/null
  pin=(taskset -c 0)
  for target in 0 "${LATENCY_TARGET_MS:-250}"; do
    serve serve --no-rate-limit --log-level warning --latency-target-ms "$target"
    taskset -c 1 "$bin" run scenarios/flash-sale.yaml --target "$url" --connections 4096 \
      --report-dir "$work/shed-$target" >"$work/shed.out" 2>&1 || true
    stop
    py summary "$(ls "$work"/shed-"$target"/*/report.json)" "--latency-target-ms $target"
    py operations "$(ls "$work"/shed-"$target"/*/report.json)"
  done
fi

if part 5; then
  echo "http-bench 5: the same overload on shared cores (server, generator and PostgreSQL on both), --connections 4096"
  "$bin" db start >/dev/null
  pin=()
  serve serve --no-rate-limit --log-level warning
  "$bin" run scenarios/flash-sale.yaml --target "$url" --connections 4096 --report-dir "$work/shared" >"$work/shared.out" 2>&1 || true
  stop
  py summary "$(ls "$work"/shared/*/report.json)" "shared cores, default target"
  py operations "$(ls "$work"/shared/*/report.json)"
fi
