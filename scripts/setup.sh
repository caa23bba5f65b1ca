#!/usr/bin/env bash
# Installs the Debian packages stockdrop needs, skipping those already present.
# Used by `make demo`, `make test` and `make e2e`; safe to run again.
set -euo pipefail

# curl: the README's sale by hand (scripts/readme-e2e.py runs it).
# chromium and chromium-driver: the live page's browser test (scripts/browser-test.py).
# haproxy: the balancer of the scale-out cluster (`stockdrop cluster`, deploy/haproxy.cfg).
# gdb: the thread stacks of an instance that does not exit after SIGTERM (LocalCluster), and of
# a test run that hangs (scripts/swift-test.sh).
# libxml2-utils: xmllint, which checks `--junit` output against Tests/Schemas/junit.xsd.
# prometheus: promtool, which checks what /metrics exposes (MetricsTests).
# etcd-server and patroni: PostgreSQL that fails over (`stockdrop ha`, the kill-primary and
# switchover faults).
# buildah, podman and runc: the container image (`make image`, built from scratch with no
# registry) and its test (scripts/image-e2e.sh).
packages=(libpq-dev libhiredis-dev postgresql redis-server pkg-config curl chromium chromium-driver haproxy gdb
  etcd-server patroni libxml2-utils prometheus buildah podman runc)
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed; then
    missing+=("$package")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# From PyPI: a standard validator for /openapi.json's test, selenium for the browser test,
# schemathesis for the API fuzzer (scripts/fuzz-api.sh), PyYAML and kubernetes-validate for the
# Kubernetes manifests' check (scripts/k8s.py).
for module in openapi_spec_validator:openapi-spec-validator selenium:selenium schemathesis:schemathesis \
  yaml:pyyaml kubernetes_validate:kubernetes-validate; do
  if ! python3 -c "import ${module%%:*}" 2>/dev/null; then
    echo "setup: installing ${module#*:} (PyPI)"
    python3 -m pip install -q "${module#*:}"
  fi
done

command -v swift >/dev/null || { echo "setup: Swift 6 is required (swift not on PATH)" >&2; exit 1; }
