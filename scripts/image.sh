#!/usr/bin/env bash
# `make image`: the release binary in an OCI image built from scratch with buildah, no base
# image and no registry: the (stripped) binary, exactly the shared libraries `ldd` lists at
# the paths it resolved them (the Swift runtime where the binary's RUNPATH looks), the loader,
# CA certificates (for https remote write), UTC as the time zone, a non-root user (10001) and
# a writable /work for reports. The migrations are inside the binary. Tagged
# localhost/stockdrop:VERSION and :latest in root's container storage; push it with
# `podman push localhost/stockdrop:VERSION REGISTRY/stockdrop:VERSION`.
#
#   STOCKDROP_BIN=.build/release/stockdrop scripts/image.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/deploy/podman/containers.conf"
bin=${STOCKDROP_BIN:-.build/release/stockdrop}
for tool in buildah podman ldd strip; do
  command -v "$tool" >/dev/null || { echo "image: $tool is missing: run scripts/setup.sh" >&2; exit 69; }
done
[ -x "$bin" ] || { echo "image: no binary at $bin: run \`make release\` first" >&2; exit 69; }
[ "$(id -u)" -eq 0 ] || { echo "image: run as root (buildah mounts the image's tree)" >&2; exit 77; }

version=$("$bin" --version)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
source=$(git remote get-url origin 2>/dev/null || echo "https://github.com/stockdrop/stockdrop")
tag="localhost/stockdrop:$version"
tree=$(mktemp -d)
container=""
cleanup() {
  [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$tree"
}
trap cleanup EXIT

# The binary and what it links, each at the path the loader finds it.
install -d "$tree/usr/local/bin" "$tree/etc/ssl/certs" "$tree/opt/stockdrop"
strip -o "$tree/usr/local/bin/stockdrop" "$bin"
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r library; do
  install -d "$tree$(dirname "$library")"
  strip --strip-unneeded -o "$tree$library" "$library"
done
if ldd "$bin" | grep "not found" >/dev/null; then
  echo "image: ldd cannot resolve every library of $bin:" >&2
  ldd "$bin" | grep "not found" >&2
  exit 69
fi
# Read at run time: the CA bundle (https remote write), time zones, the users, name resolution.
cp /etc/ssl/certs/ca-certificates.crt "$tree/etc/ssl/certs/"
# Foundation's time zones: the database (without its right/ and posix/ copies) and UTC as the
# local zone, a symlink as on Debian (Foundation reads the zone's name from its target).
install -d "$tree/usr/share/zoneinfo"
tar -C /usr/share/zoneinfo --exclude=./right --exclude=./posix -cf - . | tar -C "$tree/usr/share/zoneinfo" -xf -
ln -s /usr/share/zoneinfo/UTC "$tree/etc/localtime"
printf 'root:x:0:0:root:/root:/sbin/nologin\nstockdrop:x:10001:10001:stockdrop:/work:/sbin/nologin\n' >"$tree/etc/passwd"
printf 'root:x:0:\nstockdrop:x:10001:\n' >"$tree/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$tree/etc/nsswitch.conf"
# The scenarios and the balancer's template, for `run` and the load Jobs.
cp -r scenarios "$tree/opt/stockdrop/scenarios"
install -D -m 0644 deploy/haproxy.cfg "$tree/opt/stockdrop/deploy/haproxy.cfg"
install -d -m 1777 "$tree/tmp"
install -d -m 0755 -o 10001 -g 10001 "$tree/work"

container=$(buildah from scratch)
mount=$(buildah mount "$container")
cp -a "$tree/." "$mount/"
buildah umount "$container" >/dev/null
buildah config \
  --entrypoint '["stockdrop"]' --cmd '["--help"]' \
  --env PATH=/usr/local/bin --env TZ=UTC \
  --user 10001:10001 --workingdir /work --port 8080 \
  --created-by "scripts/image.sh: the stripped binary, the libraries it links, CA bundle, UTC, /work" \
  --label org.opencontainers.image.title=stockdrop \
  --label "org.opencontainers.image.description=Limited-stock drops without oversell: engine, load harness and server" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.source=$source" \
  --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "$container"
buildah commit --quiet --rm "$container" "$tag" >/dev/null
container=""
buildah tag "$tag" localhost/stockdrop:latest

size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "image: $tag ($revision), $((size / 1000000)) MB ($size bytes), $(podman image inspect --format '{{len .RootFS.Layers}}' "$tag") layer(s)"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$tag" | sed 's/^/image:   layer /'
compressed=$(podman save --quiet --format oci-archive "$tag" | gzip -c | wc -c)
echo "image: $((compressed / 1000000)) MB compressed (podman save | gzip), what a registry stores and a node pulls"
echo "image: its largest files:"
# awk takes the first 8 but reads everything: `head` would leave sort writing to a closed
# pipe, and pipefail turns its SIGPIPE into a failed build (seen: exit 141).
(cd "$tree" && find . -type f -printf '%s %p\n' | sort -rn | awk 'NR <= 8 {printf "image:   %6.1f MB  %s\n", $1 / 1e6, substr($2, 2)}')
