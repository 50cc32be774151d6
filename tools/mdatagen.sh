#!/bin/sh
# Runs mdatagen on the root metadata.yaml. mdatagen names the generated test files' package
# after the directory holding metadata.yaml, so it is run through a symlink named like the
# package: the output is then the same whatever the checkout's directory is called.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
link=$(mktemp -d)
trap 'rm -rf "$link"' EXIT
ln -s "$root" "$link/podnet"
cd "$root/tools"
go tool mdatagen "$link/podnet/metadata.yaml"
