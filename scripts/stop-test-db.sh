#!/usr/bin/env bash
# Stops the test suites' PostgreSQL (EmbeddedPostgres' `.tests` cluster, postgres-tests beside
# the commands' cluster, wherever its home is) and waits until it is down: `make clean-db`
# removes its files next.
set -uo pipefail
cd "$(dirname "$0")/.."
# Its home: the checkout's .stockdrop, or /tmp/stockdrop-<FNV-1a of the checkout's path> when
# the postgres user cannot enter the checkout (EmbeddedPostgres.init).
moved=/tmp/stockdrop-$(python3 -c 'import sys
h = 0xcbf29ce484222325
for b in sys.argv[1].encode(): h = ((h ^ b) * 0x100000001b3) % (1 << 64)
print(format(h, "x"))' "$(pwd)")
for pid in $(pgrep -f 'bin/postgres -D .*/postgres-tests'); do
  data=$(readlink -f "/proc/$pid/cwd")
  case "$data" in
    "$(pwd)"/.stockdrop/postgres-tests | "$moved"/postgres-tests) ;;
    *) continue ;;
  esac
  bin=$(dirname "$(readlink -f "/proc/$pid/exe")")
  as_postgres=(); [ "$(id -u)" = 0 ] && as_postgres=(runuser -u postgres --)
  "${as_postgres[@]}" "$bin/pg_ctl" -D "$data" -m fast -w stop
done
