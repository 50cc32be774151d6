#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (as root) for building and testing podnet: packages,
# tracefs, and the cached binaries the tests run (kube-apiserver, otelcol-podnet).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make setup: run it as root (it installs packages and mounts tracefs)" >&2; exit 1; }

pkgs=(clang llvm libbpf-dev bpftool nftables iproute2 etcd-server curl libcap2-bin python3 gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The real backend of examples/prometheus_e2e_test.go and the service map's renderers. Without
# recommends: they would add prometheus-node-exporter (another service, on :9100) with its IPMI,
# SMART and SNMP tools, chromium-sandbox (unused: root runs Chromium with --no-sandbox) and
# fonts the map does not need.
backend=(prometheus graphviz chromium)
missing=()
for p in "${backend[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]} (no recommends)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's package starts a Prometheus on :9090 under systemd. The tests start their own on
# free loopback ports; nothing of the package's may run beside them.
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet prometheus 2>/dev/null; then
	systemctl disable --now prometheus
fi

# podnet attaches to tracepoints, which live in tracefs.
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing

# Binaries the tests start; each script returns at once when its cached build exists.
if [ -x tools/kube/build.sh ]; then tools/kube/build.sh; fi
if grep -q '^otelcol:' Makefile; then make --no-print-directory otelcol; fi
