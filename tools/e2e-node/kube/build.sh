#!/usr/bin/env bash
# Builds the Kubernetes binaries of the e2e-node cluster (kubelet, kube-proxy,
# kube-controller-manager, kube-scheduler, kubectl, and kube-apiserver unless tools/kube already
# cached it) from k8s.io/kubernetes into a cache outside the repo. Its own module: that dependency tree must
# never reach the product's go.mod. Prints the cache's bin directory; returns at once when warm.
set -euo pipefail
cd "$(dirname "$0")"

version=v1.37.2
cache=${PODNET_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podnet}
bin=$cache/e2e-node/kube/$version/bin
# Without these the binaries report v0.0.0-master, and the kubelet's version checks complain.
pkg=k8s.io/component-base/version
minor=${version#v1.}
minor=${minor%%.*}
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"

mkdir -p "$bin"
shared=$cache/kube/$version/bin/kube-apiserver # tools/kube's build, when it has run
# kube-apiserver last: by then tools/kube may have built it (both share GOCACHE anyway).
for cmd in kubelet kube-proxy kube-controller-manager kube-scheduler kubectl kube-apiserver; do
	if [ "$cmd" = kube-apiserver ] && [ ! -x "$bin/$cmd" ] && [ -x "$shared" ]; then
		ln -sfn "$shared" "$bin/$cmd"
	fi
	[ -x "$bin/$cmd" ] && continue
	echo "e2e-node: building $cmd $version into $bin (minutes when cold)" >&2
	# A temporary name, so that an interrupted build never looks like a cached one.
	nice go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
	mv "$bin/$cmd.tmp" "$bin/$cmd"
done
echo "$bin"
