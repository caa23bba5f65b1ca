# The two commands of the README: `make demo` and `make test e2e`. Each installs what is
# missing (Debian packages), builds, starts the embedded PostgreSQL it needs and runs.
SHELL := /bin/bash
SWIFT ?= swift
RELEASE_BIN := .build/release/stockdrop

.PHONY: setup demo test e2e soak bench bench-http bench-cluster bench-reads build release clean-db image

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release --product stockdrop

# The container image (scripts/image.sh): the release binary and exactly the libraries it
# links, built from scratch with buildah, non-root; deploy/README.md says how to run it.
image: release
	STOCKDROP_BIN=$(RELEASE_BIN) scripts/image.sh

# The demo: the flash-sale scenario (50,000 buyers, 1,000 units) against both strategies side
# by side on the embedded PostgreSQL, checked for oversell, with a report under reports/. The
# verdict is the actor's: a broken invariant (exit 1) or a missed threshold (exit 2) fails
# it; the rowlock baseline's are findings shown beside it. Its last lines say what the
# comparison showed.
demo: release
	$(RELEASE_BIN) db start
	$(RELEASE_BIN) run scenarios/flash-sale.yaml --strategy both

# The loop test: flash-sale 20 times in a row in process (actor), every invariant every time;
# `make soak SOAK_SCENARIO=scenarios/ramp.yaml SOAK_RUNS=5` for another.
SOAK_SCENARIO ?= scenarios/flash-sale.yaml
SOAK_RUNS ?= 20
soak: release
	scripts/soak.sh $(SOAK_SCENARIO) $(SOAK_RUNS)

# The fast target: every Swift test suite (real PostgreSQL, the simulator's seeds), then the
# format check (swift-format with .swift-format must change nothing). About 6 minutes from a
# fresh clone, most of it the first debug build. `swift test` runs bounded (scripts/swift-test.sh):
# a run still going after 15 minutes is a hang, reported with its stacks and killed. Then the
# Kubernetes manifests, rendered and validated against the API's schemas without a cluster.
test: setup
	$(SWIFT) build --build-tests
	scripts/swift-test.sh
	scripts/format-check.sh
	python3 scripts/k8s.py check

# The end-to-end target, on a release build: the `ci` scenario through the real commands, in
# process (both strategies) and over HTTP against `stockdrop serve`, then the README's sale by
# hand pasted as written (scripts/readme-e2e.py: its answers must be those it shows), then in
# three shards merged into one verdict (scripts/shards-e2e.sh), then the cluster tests on real instances
# behind HAProxy (scripts/cluster-e2e.sh, Swift Testing with STOCKDROP_CLUSTER_TESTS=1:
# forwarding, SIGKILL and SIGSTOP of an owner, hand-back, ci and failover runs), then the
# nemesis (each fault alone and all together, the PostgreSQL primary killed and switched over:
# scripts/nemesis-e2e.sh), then `stockdrop ha` driven as an operator would (status,
# kill-leader, the node back as a replica, switchover, stop: scripts/ha-e2e.sh), then
# schemathesis against /openapi.json (scripts/fuzz-api.sh: no 5xx, every answer as
# documented), then the live page in headless Chromium, then the run's dashboard in it (live
# numbers, and an oversell planted mid-run turning red before the run ends): any broken
# invariant (exit 1), missed threshold (exit 2), unclean server shutdown or a page that does
# not show what it should fails it. Last, the container image is built and run with podman
# (scripts/image-e2e.sh: migrate, serve, a ci run from a second container, SIGTERM).
e2e: release
	$(RELEASE_BIN) run scenarios/ci.yaml --strategy both --junit reports/ci-junit.xml --summary-md reports/ci-summary.md
	xmllint --noout --schema Tests/Schemas/junit.xsd reports/ci-junit.xml
	STOCKDROP_BIN=$(RELEASE_BIN) scripts/serve-and-run.sh actor scenarios/ci.yaml --watchers 20
	python3 scripts/readme-e2e.py
	STOCKDROP_BIN=$(RELEASE_BIN) scripts/shards-e2e.sh scenarios/ci.yaml
	STOCKDROP_BIN=$(RELEASE_BIN) scripts/cluster-e2e.sh
	STOCKDROP_BIN=$(RELEASE_BIN) scripts/nemesis-e2e.sh
	STOCKDROP_BIN=$(RELEASE_BIN) scripts/ha-e2e.sh
	STOCKDROP_BIN=$(RELEASE_BIN) scripts/fuzz-api.sh
	STOCKDROP_BIN=$(RELEASE_BIN) python3 scripts/browser-test.py
	STOCKDROP_BIN=$(RELEASE_BIN) python3 scripts/dashboard-browser-test.py
	STOCKDROP_BIN=$(RELEASE_BIN) scripts/image-e2e.sh

# The performance figures, none of them in `make test` (timed figures are for reading, not
# for failing a build on a shared machine): `stockdrop bench` with its ceilings measured in
# the same run (a plain locked insert, the batch function alone, a bare actor) and the
# targets as ratios to them; flash-sale in process and then through `stockdrop serve`, each
# with the CPU the target spent per request; flash-sale with 1,000,000 buyers in one process
# (peak RSS). The soak (10 minutes, memory flat after warm-up) is
# `stockdrop run scenarios/soak.yaml`.
bench: release
	$(RELEASE_BIN) db start
	$(RELEASE_BIN) bench --strategy both --callers 1000 --seconds 5
	-$(RELEASE_BIN) run scenarios/flash-sale.yaml --strategy actor
	-STOCKDROP_BIN=$(RELEASE_BIN) SERVE_OPTIONS="--log-level warning" scripts/serve-and-run.sh actor scenarios/flash-sale.yaml
	-$(RELEASE_BIN) run scenarios/flash-sale.yaml --strategy actor --users 1000000

# The read path's figures: wrk against `stockdrop serve` (its log going to a file): GET /health
# at the default log level and at warning, a reserve answered from memory, GET /v1/drops/{id}
# and GET /v1/drops, with the ratios the read issue asks for. `scripts/read-bench.sh OLD NEW`
# compares two binaries in one run.
bench-reads: release
	$(RELEASE_BIN) db start
	scripts/read-bench.sh $(RELEASE_BIN)

# The HTTP figures (scripts/http-bench.sh), each a ratio measured in the same run: the load
# generator's CPU per request against wrk's (the same reserve to the same server), the server
# against a bare Hummingbird application (`stockdrop bench-server`), flash-sale over HTTP
# against in process with the harness's and the server's latencies side by side, and shedding
# off against on with the server and the generator on separate cores, then the same overload on
# shared cores (purchases sent in time and refused expired).
bench-http: release
	$(RELEASE_BIN) db start
	scripts/http-bench.sh $(RELEASE_BIN)

# The scale-out figures: flash-sale through HAProxy in front of 1 and then 3 instances (release
# build), with requests/s, reserve latency and the share of claims forwarded to their owner.
bench-cluster: release
	$(RELEASE_BIN) db start
	STOCKDROP_BIN=$(RELEASE_BIN) scripts/cluster-bench.sh scenarios/flash-sale.yaml 1 3

clean-db:
	-$(RELEASE_BIN) db stop
	-scripts/stop-test-db.sh
	rm -rf .stockdrop
