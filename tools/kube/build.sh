#!/usr/bin/env bash
# Builds the kube-apiserver that internal/kubetest starts for the Kubernetes metadata tests.
# It comes from k8s.io/kubernetes, whose dependency tree must never reach the product's
# go.mod, hence this separate module. Returns at once when the binary is already cached:
# a cold build takes minutes, so CI keeps the cache directory (and GOCACHE/GOMODCACHE).
set -euo pipefail
cd "$(dirname "$0")"

version=v1.37.2
bin=${PODNET_KUBE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/podnet/kube/$version/bin}
if [ -x "$bin/kube-apiserver" ]; then
	exit 0
fi
command -v etcd >/dev/null || echo "kube: warning: no etcd in PATH (Debian: apt-get install etcd-server)" >&2

echo "kube: building kube-apiserver $version into $bin (several minutes when cold)"
mkdir -p "$bin"
# Without these the binary reports v0.0.0-master, and clients that check versions complain.
pkg=k8s.io/component-base/version
minor=${version#v1.}
minor=${minor%%.*}
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
# Build to a temporary name so an interrupted build never looks like a cached one.
nice go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
echo "kube: built $bin/kube-apiserver"
