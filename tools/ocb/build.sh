#!/usr/bin/env bash
# Builds bin/otelcol-podnet from builder-config.yaml with ocb, installing ocb into a cache
# outside the repo first if it is absent. The module proxy this project builds against
# refuses a few test-only dependencies of contrib modules, so the replaces in replaces.txt
# (stub modules under stubs/) are appended to a copy of the config in _build/; the
# committed builder-config.yaml stays what a user elsewhere would run as is.
set -euo pipefail
cd "$(dirname "$0")/../.."

ocb_version=v0.165.0
cache=${PODNET_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podnet}
ocb=$cache/bin/ocb-$ocb_version
if [ ! -x "$ocb" ]; then
	echo "otelcol: installing ocb $ocb_version into $cache/bin"
	mkdir -p "$cache/gobin"
	GOBIN=$cache/gobin go install "go.opentelemetry.io/collector/cmd/builder@$ocb_version"
	install -D "$cache/gobin/builder" "$ocb"
fi

# The append only lands in the `replaces:` list when that list ends the file.
if [ "$(grep -E '^[a-z_]+:' builder-config.yaml | tail -1)" != "replaces:" ]; then
	echo "otelcol: builder-config.yaml must end with its replaces: list" >&2
	exit 1
fi
mkdir -p _build
{
	cat builder-config.yaml
	grep -Ev '^(#|$)' tools/ocb/replaces.txt | sed 's/^/  - /'
} >_build/builder-config.local.yaml

"$ocb" --config=_build/builder-config.local.yaml
install -D _build/otelcol-podnet bin/otelcol-podnet
echo "otelcol: built bin/otelcol-podnet"
