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

demo: release
	$(RELEASE_BIN) db start
	$(RELEASE_BIN) migrate

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test

clean-db:
	-$(RELEASE_BIN) db stop
	rm -rf .stockdrop
