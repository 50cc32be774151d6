# podnet - see README.md. Targets that load eBPF (test, run, e2e) need root.
GO ?= go
export CGO_ENABLED ?= 0
# Go 1.26 is a prerequisite (Debian has no package for it): found on PATH, or where the official
# archive installs it, with the tools `go install` puts in GOPATH/bin.
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin

.PHONY: all setup generate check-generated build test test-unit vet lint

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

# golangci-lint with .golangci.yml (the core collector's configuration, adapted there), built
# once into bin/tools at a pinned version.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := bin/tools/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint

.PHONY: lint
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	GOBIN=$(CURDIR)/$(dir $(GOLANGCI_LINT)) CGO_ENABLED=0 $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

# The README's test command. Needs root: the integration tests load the real BPF programs.
test:
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) test-checkptr

# The packages that read kernel records (ring, inotify) through unsafe pointer casts, again with the
# compiler's checkptr instrumentation (as -race has it): a cast that reaches past its record's
# end, or is misaligned, fails the test instead of passing silently.
test-checkptr:
	$(GO) test -count=1 -gcflags=-d=checkptr ./receiver/internal/dnsnames/ ./receiver/internal/event/ ./receiver/internal/procscan/

# The race detector over the tests that run the receiver's goroutines against fakes (the
# read loop, hand-off, pipeline, emitter and Shutdown; not the *_integration_test.go files, whose
# real kernel and API server make them minutes long under it) and the packages they share state
# with. A run of the whole suite under -race (24 min here) found one race in the receiver's own
# code, between the reader and the emitter's counters (loss.go), which
# TestLossReporterIsSafeFromTheReaderAndTheEmitter keeps fixed.
RACE_TESTS = $(shell grep -ho '^func Test[A-Za-z0-9_]*' $(filter-out %_integration_test.go,$(wildcard receiver/*_test.go)) | sed 's/^func //' | paste -sd'|')
test-race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -run '^($(RACE_TESTS))$$' ./receiver/
	CGO_ENABLED=1 $(GO) test -race -count=1 ./receiver/internal/attribution/ ./receiver/internal/dnsnames/ ./receiver/internal/event/ \
		./receiver/internal/procfound/ ./receiver/internal/procscan/ ./internal/fifomap/

# Tests that need neither root nor a kernel.
test-unit:
	$(GO) test -count=1 ./receiver/internal/event/...

.PHONY: otelcol run helm-check test-checkptr test-race

# otelcol-podnet, built by ocb from builder-config.yaml (tools/ocb/build.sh installs ocb into
# ~/.cache/podnet if absent). Rebuilt only when a Go source, an embedded BPF object, go.mod or
# the build config changed.
OTELCOL_INPUTS := $(shell find . -path ./_build -prune -o -name '*.go' ! -name '*_test.go' -print) \
	$(wildcard bpf/*.o) go.mod go.sum builder-config.yaml $(shell find tools/ocb -type f)

otelcol: bin/otelcol-podnet

bin/otelcol-podnet: $(OTELCOL_INPUTS)
	tools/ocb/build.sh

# The README's run command (root): podnet on this node with examples/local/config.yaml, printing
# what it sees and appending it as OTLP JSON to _build/podnet-output.jsonl.
run: bin/otelcol-podnet
	@[ "$$(id -u)" = 0 ] || { echo "make run: needs root (it loads eBPF programs)" >&2; exit 1; }
	mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
	PODNET_OUTPUT_FILE=_build/podnet-output.jsonl bin/otelcol-podnet --config=examples/local/config.yaml

# Validates the example collector configs (examples/gateway too) with bin/otelcol-podnet, and
# renders the upstream opentelemetry-collector chart from ../shared/upstream (or
# PODNET_HELM_CHART) with the DaemonSet, gateway and agent-to-gateway values; CI runs it, and
# fails there without the chart (see tools/helm/check.sh).
helm-check: bin/otelcol-podnet
	tools/helm/check.sh

.PHONY: bench bench-setup bench-go

# Overhead benchmark (root): alternating baseline/podnet pairs on short-connection load
# between two network namespaces (and the lean C generator, bench/loadgen, inside one); prints a
# table, writes bench/results/<date>-<scenario>.md.
# Flags pass through, e.g. make bench BENCH_FLAGS='-pairs 9 -workloads go-connect'.
bench: bench-setup
	$(GO) build -o bin/bench/ ./bench/cmd/...
	cc -O2 -Wall -pthread -o bin/bench/podnet-loadgen bench/loadgen/loadgen.c
	bin/bench/podnet-bench $(BENCH_FLAGS)

# nginx + wrk for the real-tool workload; podnet-bench skips it loudly when this fails.
bench-setup:
	@command -v nginx >/dev/null && command -v wrk >/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y nginx wrk || \
		echo "bench-setup: nginx/wrk not installed; the nginx-wrk workload will be skipped" >&2

# Go micro-benchmarks (no root): per-event decode, classify, conversion, aggregation, pod lookup
# (by IP and by socket); benchstat summary.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./receiver/internal/event/ ./receiver/ ./receiver/internal/k8smeta/ ./receiver/internal/procscan/ > bench/results/go-bench.raw.tmp
	{ echo "# $$(date -u +%F) $$(nproc) vCPU, load average $$(cut -d' ' -f1-3 /proc/loadavg) (other builds run here: read the ± columns)"; \
		benchstat podnet=bench/results/go-bench.raw.tmp; } > bench/results/go-bench.txt
	rm bench/results/go-bench.raw.tmp

# examples/e2e_test.go runs bin/otelcol-podnet: never test a stale one.
test: bin/otelcol-podnet

.PHONY: bench-busynode

# Busy node (root, issue 17): 500 pods with kubelet-style cgroups holding 50k connections;
# podnet's start, RSS, /proc scan and CPU per connection with the node idle, then busy.
# Writes bench/results/<date>-issue17-busy-node.md. Flags: BUSYNODE_FLAGS='-pods 100'.
bench-busynode:
	$(GO) build -o bin/bench/ ./bench/cmd/podnet-busynode
	$(GO) test -c -o bin/bench/procscan.test ./receiver/internal/procscan
	$(GO) test -c -o bin/bench/kernel.test ./receiver/internal/kernel
	cc -O2 -Wall -o bin/bench/podnet-holder bench/loadgen/holder.c
	bin/bench/podnet-busynode $(BUSYNODE_FLAGS)

.PHONY: e2e-node

# Opt-in, root, never in the default test run: a real single-node cluster on this machine
# (etcd, kube-apiserver, controller-manager, scheduler, containerd, kubelet, bridge CNI), podnet
# from examples/kubernetes/daemonset.yaml, two pods talking HTTP, and a check that podnet's
# records name both pods. Tears everything down and checks the host, even on failure.
e2e-node:
	tools/e2e-node/run.sh

.PHONY: bench-fullload

# Full-load loss check (root): the lean C generator (bench/loadgen) at the machine's maximum
# connection rate, podnet with logs + metrics and its defaults; fails unless podnet reported
# exactly 4 events per connection and lost nothing. Flags pass through, e.g.
# make bench-fullload FULLLOAD_FLAGS='-duration 4m -runs 3 -results bench/results/fullload.md'
bench-fullload:
	$(GO) build -o bin/bench/ ./bench/cmd/podnet-agent ./bench/cmd/podnet-fullload
	cc -O2 -Wall -pthread -o bin/bench/podnet-loadgen bench/loadgen/loadgen.c
	bin/bench/podnet-fullload $(FULLLOAD_FLAGS)

.PHONY: bench-k8s-scale

# Cluster-scale benchmark (issue 17; no root, needs tools/kube/build.sh's kube-apiserver): per
# size N, a fresh etcd + kube-apiserver holding N pods on N/10 nodes and N/10 Services, and
# podnet's Store as node-0001's agent in its own process: time to sync, RSS, heap, bytes and
# CPU per pod while 10% of the pods are replaced. K8S_SCALE_WATCHLIST=1 adds an agent on
# client-go's streaming watch-list, which the Store opts out of. Prints a table;
# K8S_SCALE_RESULTS=<file> also writes it there.
K8S_SCALE_SIZES ?= 2500,5000,10000,30000
K8S_SCALE_WATCHLIST ?= 0
bench-k8s-scale:
	PODNET_K8S_SCALE_SIZES=$(K8S_SCALE_SIZES) PODNET_K8S_SCALE_WATCHLIST=$(K8S_SCALE_WATCHLIST) \
		PODNET_K8S_SCALE_RESULTS=$(K8S_SCALE_RESULTS) \
		$(GO) test -tags k8sscale -count=1 -timeout 60m -run '^TestClusterScale$$' -v ./receiver/internal/k8smeta/

.PHONY: bench-apiserver-load

# What podnet's watches cost the API server (no root): 20 podnet stores, one per node, against a
# real etcd + kube-apiserver holding 5,000 pods, per kubernetes.peer_pods mode and against
# kube-proxy's watches; writes bench/results/<date>-issue17-apiserver-load.md. Flags pass
# through, e.g. make bench-apiserver-load APISERVER_LOAD_FLAGS='-pods 10000 -nodes 1000'
bench-apiserver-load:
	$(GO) run ./bench/cmd/podnet-apiserver-load $(APISERVER_LOAD_FLAGS)

.PHONY: check-platforms

# ocb also builds distributions for darwin and windows, and Linux on CPUs podnet's BPF objects
# are not built for (contrib ships ppc64le and s390x): the component package must compile and
# vet there, where NewFactory registers podnet with a Start that says what it needs. Only the
# root package and what it imports there are compiled: seconds once cached.
check-platforms:
	GOOS=darwin $(GO) build ./ && GOOS=darwin $(GO) vet ./
	GOOS=windows $(GO) build ./ && GOOS=windows $(GO) vet ./
	for arch in ppc64le s390x riscv64 arm 386; do GOARCH=$$arch $(GO) build ./ && GOARCH=$$arch $(GO) vet ./ || exit 1; done

.PHONY: service-map

# The service map as SVG (graphviz): workloads/pods and Services, client → server edges with
# connections/s, failed connects/s and bytes/s over SERVICE_MAP_WINDOW, from podnet's metrics in
# the Prometheus at PROMETHEUS_URL (collector config: examples/kubernetes/collector-config.yaml).
PROMETHEUS_URL ?= http://127.0.0.1:9090
SERVICE_MAP ?= service-map.svg
SERVICE_MAP_WINDOW ?= 5m
service-map:
	$(GO) run ./examples/servicemap -prometheus $(PROMETHEUS_URL) -window $(SERVICE_MAP_WINDOW) -o $(SERVICE_MAP)
