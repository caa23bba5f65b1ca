#!/usr/bin/env bash
# The container image as an operator runs it (`make e2e`), with podman on the host network
# (no bridge: podman's would add NAT rules and turn on IP forwarding): a throwaway PostgreSQL
# on a loopback port, then from the image `migrate`, `serve` (read-only root), a `ci` run from a
# second container over HTTP whose verdict is the container's exit code, and SIGTERM to the
# serving container, which must exit 0 within its bound. Also: the image without DATABASE_URL,
# or without the JWT secret, says what the binary says.
#
#   STOCKDROP_BIN=.build/release/stockdrop scripts/image-e2e.sh   (builds the image first)
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/deploy/podman/containers.conf"
bin=${STOCKDROP_BIN:-.build/release/stockdrop}
image=localhost/stockdrop:latest
# The image of this binary, never one left from an earlier build.
STOCKDROP_BIN="$bin" scripts/image.sh
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -x "$pg_bin/initdb" ] || { echo "image-e2e: PostgreSQL's server binaries are missing: run scripts/setup.sh" >&2; exit 69; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work=$(mktemp -d)
chmod 755 "$work"
server="stockdrop-image-e2e-$$"
cleanup() {
  podman rm -f "$server" >/dev/null 2>&1 || true
  [ -f "$work/pg/postmaster.pid" ] && runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { echo "image-e2e: $*"; }

# A PostgreSQL of this test's own on a loopback TCP port (the containers share the host's).
pg_port=$(free_port)
install -d -o postgres -g postgres "$work/pg"
runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust --no-instructions >/dev/null
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories='$work/pg'" start >/dev/null
runuser -u postgres -- "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" stockdrop
database="postgresql://postgres@127.0.0.1:$pg_port/stockdrop"
secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
app=(--network host --read-only --tmpfs /tmp -e DATABASE_URL="$database" -e STOCKDROP_JWT_SECRET="$secret")
say "$(podman image inspect --format '{{index .Labels "org.opencontainers.image.version"}} ({{index .Labels "org.opencontainers.image.revision"}}), user {{.Config.User}}, {{.Size}} bytes' "$image")"

# Bad input: the same words as the binary's on a host without PostgreSQL (here: the binary in
# a mount namespace where /usr/lib/postgresql is empty), and a failure exit.
without_postgres() {
  unshare --mount --propagation private sh -c 'mount -t tmpfs none /usr/lib/postgresql && exec "$@"' sh "$@"
}
# refused CASE VAR=VALUE: `serve` given only VAR (so without CASE), from the image and the binary.
refused() {
  local said host code=0
  said=$(podman run --rm --network host -e "$2" "$image" serve 2>&1) || code=$?
  host=$(without_postgres env -i PATH=/usr/bin:/bin "$2" "$bin" serve 2>&1) || true
  if [ "$code" -eq 0 ] || [ "$said" != "$host" ]; then
    say "FAILED: without $1 the image exited $code saying: $said (the binary: $host)"; exit 1
  fi
  say "without $1: exit $code, \"$said\" (as the binary says)"
}
refused database STOCKDROP_JWT_SECRET="$secret"
refused secret DATABASE_URL="$database"

podman run --rm --network host -e DATABASE_URL="$database" "$image" migrate
say "migrate: exit 0"

port=$(free_port)
podman run -d --name "$server" "${app[@]}" \
  "$image" serve --host 127.0.0.1 --port "$port" --no-rate-limit --log-level warning >/dev/null
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  if [ "$(podman inspect --format '{{.State.Running}}' "$server")" != true ]; then
    say "FAILED: the serving container ended:"; podman logs "$server"; exit 1
  fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { say "FAILED: /ready never answered 200"; podman logs "$server"; exit 1; }
say "serve: ready on 127.0.0.1:$port, read-only root filesystem"

set +e
install -d -o 10001 -g 10001 "$work/reports"
podman run --rm "${app[@]}" -v "$work/reports:/work/reports" \
  "$image" run /opt/stockdrop/scenarios/ci.yaml --target "http://127.0.0.1:$port" >"$work/run.log" 2>&1
verdict=$?
set -e
grep -E '^(PASS|FAIL)' "$work/run.log" | sed 's/^/image-e2e: run: /' || true
if [ "$verdict" -ne 0 ]; then
  say "FAILED: the ci run's container exited $verdict"; tail -40 "$work/run.log"; exit 1
fi
say "run: the ci scenario over HTTP from a second container (read-only root, its reports on a volume: $(ls "$work/reports")), verdict exit $verdict"

start=$(date +%s.%N)
podman stop --time 30 "$server" >/dev/null
seconds=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")
code=$(podman inspect --format '{{.State.ExitCode}}' "$server")
# Within the bound: under 15 s, so at most 14 whole seconds.
if [ "$code" -ne 0 ] || [ "${seconds%.*}" -ge 15 ]; then
  say "FAILED: SIGTERM: exit $code after $seconds s (bound: 15 s)"; podman logs "$server" | tail -20; exit 1
fi
say "SIGTERM: the serving container exited $code after $seconds s (bound 15 s)"
say "PASS"
