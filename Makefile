# The two commands of the README: `make demo` and `make test`. Each installs what is
# missing (Debian packages), builds, starts the embedded PostgreSQL it needs and runs.
SHELL := /bin/bash
SWIFT ?= swift
RELEASE_BIN := .build/release/stockdrop

.PHONY: setup demo test build release clean-db

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release --product stockdrop

# Until the load harness lands, the demo is the engine's benchmark: one hot drop, 1,000
# concurrent buyers, both strategies side by side on the embedded PostgreSQL, then a few
# seeded fault-injecting simulations.
demo: release
	$(RELEASE_BIN) db start
	$(RELEASE_BIN) bench --strategy both --callers 1000 --seconds 5
	$(RELEASE_BIN) simulate --seed 1 --seeds 5 --steps 2000

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test

clean-db:
	-$(RELEASE_BIN) db stop
	rm -rf .stockdrop
