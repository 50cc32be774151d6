#!/bin/sh
# Refreshes the vendored headers. Not part of `make generate`: the committed headers are what
# makes the generated objects reproducible. Run it deliberately, on a kernel with BTF, and commit.
#   vmlinux.h   - from this kernel's BTF. Every struct in it is CO-RE relocatable
#                 (preserve_access_index), and podnet reads no arch-specific struct (no pt_regs),
#                 so one header serves amd64 and arm64.
#   bpf_*.h     - libbpf's BPF-side headers from Debian's libbpf-dev.
set -eu
cd "$(dirname "$0")"
bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
for h in bpf_helpers.h bpf_helper_defs.h bpf_tracing.h bpf_core_read.h bpf_endian.h; do
	cp "/usr/include/bpf/$h" "$h"
done
