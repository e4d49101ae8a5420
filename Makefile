# vigil: `make help` lists the targets.
SHELL := /bin/bash
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
# Packages with privileged tests (files tagged `privileged`).
PRIV_PKGS = $(shell grep -l '^//go:build privileged' $$(find pkg cmd -name '*_test.go') | xargs -n1 dirname | sort -u | sed 's|^|./|')
VMBIN := build/vm

.PHONY: help build run elf elf-check deps test test-unit test-host vmtest vm-bins kernels lint clean events-doc support-table fuzz bench package test-package

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/vigil (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vigil ./cmd/vigil

run: build ## build and run vigil with its embedded default config (root)
	./bin/vigil run

deps: ## install the packages builds and tests need (apt-get, root)
	scripts/deps.sh

elf: ## rebuild elf/ from bpf/ for every line of bpf/matrix
	scripts/build-elf.sh elf

elf-check: ## rebuild elf/ from scratch in a temporary directory and fail on any byte of difference
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && scripts/build-elf.sh $$tmp >/dev/null && \
	  for f in $$tmp/*; do cmp "$$f" "elf/$$(basename $$f)" || { echo "elf/ is stale: run 'make elf' and commit" >&2; exit 1; }; done && \
	  echo "elf-check: elf/ matches a fresh build of bpf/"

kernels: ## fetch the matrix kernels into the cache
	scripts/kernels.sh fetch

lint: ## go vet and gofmt
	$(GO) vet ./...
	$(GO) vet -tags privileged ./...
	@test -z "$$(gofmt -l cmd pkg elf)" || { gofmt -l cmd pkg elf; echo "gofmt needed" >&2; exit 1; }

test-unit: ## tier 1: pure Go tests, no root
	$(GO) test -count=1 ./...

FUZZTIME ?= 30s
fuzz: ## fuzz every Fuzz target of every package for FUZZTIME each (go test -fuzz takes one target at a time)
	@set -e; for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz' || true); do \
	    echo "== $$p $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$p; done; done

test-host: ## tier 2: privileged tests on this host's kernel (root), then the secrets audit of all they wrote
	@audit=$$(mktemp -d) && trap 'rm -rf "$$audit"' EXIT && \
	  VIGIL_FLEET_SECONDS=$${VIGIL_FLEET_SECONDS:-30} VIGIL_SECRETS_AUDIT=$$audit $(GO) test -tags privileged -p 1 -count=1 -timeout 10m $(PRIV_PKGS) && \
	  VIGIL_SECRETS_AUDIT=$$audit $(GO) test -tags secretsaudit -count=1 -v -run '^TestSecretsAudit$$' ./pkg/testutil

vm-bins: build
	rm -rf $(VMBIN) && mkdir -p $(VMBIN)
	cp bin/vigil $(VMBIN)/
	cp -r examples $(VMBIN)/examples
	for p in $(PRIV_PKGS); do \
	  CGO_ENABLED=0 $(GO) test -c -tags privileged -o $(VMBIN)/$$(basename $$p).test $$p || exit 1; done

vmtest: vm-bins ## tier 3: the privileged suite inside each matrix kernel under qemu
	scripts/vmtest.sh $(VMBIN)

package: ## build dist/vigil_<version>_amd64.deb and dist/vigil-<version>.x86_64.rpm (nfpm; docs/install.md)
	scripts/package.sh --out dist

test-package: ## the packages: rpm files and scriptlets, the unit, the deb in a systemd guest (root)
	scripts/test-package.sh

test: deps lint elf-check test-unit test-host test-package vmtest ## everything: deps, lint, elf-check, the three tiers, the packages
	@echo "make test: all tiers passed"

bench: ## measure vigil against no agent, auditd, inotifywait, AIDE and in the matrix kernels; writes docs/benchmarks.md (root)
	scripts/bench.sh

support-table: ## regenerate docs/kernels.md's support table from the host run and the last vmtest logs (root)
	scripts/support-table.sh

events-doc: build ## regenerate docs/events.md's example records from a real run (root)
	scripts/events-doc.sh

clean: ## remove build outputs
	rm -rf bin build dist
