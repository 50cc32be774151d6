# podnet - see README.md. Targets that load eBPF (test, run, e2e) need root.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: all setup generate check-generated build test test-unit vet

all: build

# Fresh machine (root): apt packages, tracefs, cached test binaries.
setup:
	tools/setup.sh

# Regenerates bpf2go objects/loaders (Debian clang 14) and mdatagen code; byte-for-byte stable.
generate:
	$(GO) generate ./bpf/ .

# Fails when committed generated files are stale.
check-generated: generate
	git diff --exit-code -- bpf internal documentation.md generated_component_test.go generated_package_test.go

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...

# The README's test command. Needs root: the integration tests load the real BPF programs.
test:
	$(GO) test -count=1 -timeout 20m ./...

# Tests that need neither root nor a kernel.
test-unit:
	$(GO) test -count=1 ./receiver/internal/event/...
