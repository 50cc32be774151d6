/* SPDX-License-Identifier: Apache-2.0 */
/* Every map podnet uses, with who writes, deletes and reads it, and why it has that size. */
#ifndef PODNET_MAPS_H
#define PODNET_MAPS_H

#include "podnet.h"

/* Holes must be explicit (the Go side is generated from this layout). */
#pragma clang diagnostic push
#pragma clang diagnostic error "-Wpadded"

/* Events to user space. Written by every program, read by the receiver's poll loop.
 * Size: placeholder; the loader sets it from `ring_buffer_size` (default 8 MiB, about a third of
 * a second of this machine's peak of ~47k connections/s x 4 events x 128 bytes). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 23);
} events SEC(".maps");

/* What podnet knows about a connection between its open and its close. */
struct conn_info {
	__u64 start_ns; /* CLOCK_BOOTTIME when established; 0 while connecting or unknown */
	__u32 pid;      /* tgid of the connecting/accepting process; 0 = unknown */
	__u8 role;      /* enum role */
	__u8 accepted;  /* server: an accept event was sent */
	__u8 _pad[2];
	char comm[16];
};

/* Per-connection state, keyed by socket address. Sending events: inserted at SYN_SENT (client,
 * process context) and SYN_RECV->ESTABLISHED (server), updated by accept(). Aggregating in the
 * kernel: inserted when either end is established, holding only what its close needs (start
 * time, role). Deleted at ->CLOSE.
 * LRU so that sockets whose close was never seen cannot fill it. Size: set from
 * `max_tracked_connections` (default 65536 concurrent connections per node); an eviction shows up
 * as COUNTER_CLOSE_UNTRACKED. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_info);
} conns SEC(".maps");

/* A connect() in flight on one thread: only the arguments. Looking at the socket costs ~10
 * probe reads, so it is left to the rare call that fails before SYN_SENT. */
struct connect_call {
	__u64 uaddr;    /* the user's sockaddr pointer, still valid at syscall exit */
	__s32 fd;
	__u32 addrlen;
	__u8 async;     /* the socket reached SYN_SENT: the outcome is reported by the state hook */
	__u8 _pad[7];
};

/* Keyed by pid_tgid: inserted at sys_enter_connect (any socket type: telling TCP apart would
 * cost the socket lookup this map exists to avoid), marked async at SYN_SENT (same thread),
 * read and deleted at sys_exit_connect, which reports TCP failures that never reached SYN_SENT
 * (no route, no free port). Size: one entry per thread inside connect(); LRU so a thread that
 * never returns cannot leak an entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct connect_call);
} connect_calls SEC(".maps");

/* In-kernel aggregation (aggregate.h), used instead of `events` when only a metrics pipeline
 * consumes podnet. Written by the state program (atomic adds: every CPU counts the same keys);
 * user space reads and deletes every entry each metrics interval (batch lookup-and-delete)
 * and keeps the cumulative totals, so this map only holds the keys active within one
 * interval. Size: set from `max_metric_series`; when full, new keys are counted in
 * COUNTER_AGGREGATE_FULL. A plain hash, not LRU: an eviction would lose counts silently. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10000);
	__type(key, struct agg_key);
	__type(value, struct agg_value);
} aggregates SEC(".maps");

/* Loss counters (enum counter). Incremented by programs, read by the receiver each poll.
 * Per-CPU so counting never contends. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

#pragma clang diagnostic pop

static __always_inline void count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &counter);
	if (v)
		*v += 1;
}

#endif
