/* SPDX-License-Identifier: Apache-2.0 */
/* The in-kernel aggregation sink, for metrics-only pipelines: outcomes of the state machine
 * (state.h) are counted per metric key in the interval map `aggregates` points at, instead of
 * being sent as events.
 *
 * Metrics need no process context, so this path runs on the state hook alone: the loader
 * attaches no syscall hook (one syscall tracepoint taxes every syscall on the node). What that
 * gives up: connect() failures that never reach SYN_SENT (no route, decided before a SYN is
 * built) are not counted here; `metrics_aggregation: events` counts them. */
#ifndef PODNET_AGGREGATE_H
#define PODNET_AGGREGATE_H

#include "podnet.h"
#include "maps.h"
#include "sock.h" /* AF_INET6 */

#define E2BIG 7
#define EEXIST 17

/* Set by the loader: metric series are split by the backend a Service connection was
 * translated to (nat.h), `service_backends.metric_attribute`; off, the key's backend stays 0. */
const volatile bool backend_in_metrics = false;

/* Set by the loader (issue 12): live reads are marked (progress.h), so `active` is counted here
 * instead of by a walk of every connection: each established connection adds 1 to its key's
 * active_delta when it opens (or is found at start) and takes it away at its close, and user
 * space keeps the running sum per key. */
const volatile bool marked_reads = false;

/* Set by the loader: the handshake histogram's bucket upper bounds in µs, ascending (the
 * receiver's are the one definition). */
const volatile __u32 handshake_bounds_us[HANDSHAKE_BOUNDS] = {};

static __always_inline void add_handshake(struct agg_value *v, __u32 us)
{
	__u32 b = HANDSHAKE_BOUNDS;

#pragma unroll
	for (int i = HANDSHAKE_BOUNDS - 1; i >= 0; i--) {
		if (us <= handshake_bounds_us[i])
			b = i;
	}
	__sync_fetch_and_add(&v->handshake_buckets[b], 1);
	__sync_fetch_and_add(&v->handshake_us, us);
}

/* The port a key names: the peer's for a client, the local one for a server. */
static __always_inline __u16 agg_server_port(const struct event *e)
{
	return e->role == ROLE_SERVER ? e->local_port : e->peer_port;
}

/* The backend part of a key, when metrics are split by it. */
static __always_inline void agg_key_backend(struct agg_key *k, __u16 port, const __u8 addr[16], bool dialled)
{
	if (backend_in_metrics) {
		/* Whether there is a backend, not its port: no series carries the port, and backends at
		 * one address on two ports (hostNetwork, a named targetPort) made two keys of one series,
		 * so max_metric_series folded connections early (found by an independent check). */
		if (port)
			k->flags |= AGG_KEY_BACKEND;
		__builtin_memcpy(k->backend_addr, addr, sizeof(k->backend_addr));
		/* Socket-level load balancing: addr is the Service dialled, the peer its backend, as
		 * on the records (found by an independent check: the series named the Service the
		 * backend). */
		if (dialled)
			k->flags |= AGG_KEY_DIALLED;
	}
}

/* Set by the loader: the key fields the series drop (enum agg_key_drop). Zeroed here, not
 * only when user space projects the drained keys, so that `max_metric_series` bounds the
 * series the metrics have: keys that differ only in a dropped field would otherwise fill the
 * interval map with finer keys than the series and fold the rest into the overflow key (found
 * by an independent check: 5 series once the peer address was dropped, 2 of them emitted, the
 * rest of 333 connections in the overflow series). */
const volatile __u8 agg_key_drops = 0;

/* Clears the fields the series drop, the last step of every key (agg_key_of, agg_close_unseen,
 * progress_of): an open, its live reads and its close meet in one key. */
static __always_inline void agg_key_project(struct agg_key *k)
{
	if (agg_key_drops & AGG_KEY_DROP_PEER)
		__builtin_memset(k->peer_addr, 0, sizeof(k->peer_addr));
	if (agg_key_drops & AGG_KEY_DROP_PORT)
		k->server_port = 0;
	if (agg_key_drops & AGG_KEY_DROP_ERROR)
		k->error = 0;
	if (agg_key_drops & AGG_KEY_DROP_ROLE)
		k->role = 0;
	/* One family for both, not 0: a key of family 0 is the overflow key. */
	if (agg_key_drops & AGG_KEY_DROP_FAMILY)
		k->family = AF_INET6;
}

/* The metric key of an event: the fields the event path's aggregator splits by. */
static __always_inline void agg_key_of(struct agg_key *k, const struct event *e)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->cgroup_id = e->cgroup_id;
	k->netns_ino = e->netns_ino;
	k->family = e->family;
	k->server_port = agg_server_port(e);
	k->role = e->role;
	k->error = e->error;
	__builtin_memcpy(k->peer_addr, e->peer_addr, sizeof(k->peer_addr));
	agg_key_backend(k, e->backend_port, e->backend_addr, e->flags & EVENT_FLAG_DIALLED);
	agg_key_project(k);
}

/* A new key's counts: in .rodata, not on the state program's 512-byte stack. */
static const struct agg_value agg_zero = {};

/* The overflow key: all zero, which no real key is (family is AF_INET or AF_INET6). User space
 * puts it in every interval map before the programs count into it, one entry beyond
 * `max_metric_series`, so a key that finds the map full is folded into it rather than lost: the
 * receiver reports it as the series marked otel.metric.overflow, and sums stay exact. */
static const struct agg_key agg_overflow = {};

/* The `aggregates` slot the programs count into: a plain store by user space, so that the
 * drain's clock read just after it is when the interval ended, to the nanosecond. Through a
 * map-in-map update instead, the switch came somewhere inside the syscall, which returns a grace
 * period (~30 ms) later: a stamp taken before it was early by the syscall's way in (17 µs once
 * in 18 runs with busy CPUs), and points held connections made after their time. */
volatile __u32 agg_slot = 0;

/* The overflow key's counts in the current interval map (user space puts the key in each). */
static __always_inline struct agg_value *agg_overflow_value(void)
{
	__u32 slot = agg_slot;
	void *interval = bpf_map_lookup_elem(&aggregates, &slot);

	return interval ? bpf_map_lookup_elem(interval, &agg_overflow) : NULL;
}

/* The key's counts in the current interval map, created empty when new; the overflow key's
 * (*folded set) when the map is full. Callers that add an event count it folded: live reads
 * and open-count corrections are not events. */
static __always_inline struct agg_value *agg_value_of(const struct agg_key *k, bool *folded)
{
	__u32 slot = agg_slot;
	struct agg_value *v;
	void *interval = bpf_map_lookup_elem(&aggregates, &slot);

	*folded = false;
	if (!interval)
		return NULL; /* only before the loader fills the slot, which it does before attaching */
	v = bpf_map_lookup_elem(interval, k);
	if (v)
		return v;
	if (bpf_map_update_elem(interval, k, &agg_zero, BPF_NOEXIST) == -E2BIG) {
		*folded = true;
		return bpf_map_lookup_elem(interval, &agg_overflow);
	}
	return bpf_map_lookup_elem(interval, k);
}

static const __s64 moved_zero = 0;

/* Puts a close's -1 for key k in the current active_moved set (maps.h): the one of the interval
 * agg_slot names, so that the interval's switch switches it too; false when there is no set or
 * no room. */
static __always_inline bool agg_move_close(const struct agg_key *k)
{
	__u32 slot = agg_slot;
	void *set = bpf_map_lookup_elem(&active_moved, &slot);
	__s64 *d;

	if (!set)
		return false;
	d = bpf_map_lookup_elem(set, k);
	if (!d) {
		bpf_map_update_elem(set, k, &moved_zero, BPF_NOEXIST);
		d = bpf_map_lookup_elem(set, k);
		if (!d)
			return false;
	}
	__sync_fetch_and_add(d, -1);
	return true;
}

/* Takes a connection out of the open count (marked reads) where its open put it: its key k's
 * counts v; the overflow key's when the open was folded there and v is not already the
 * overflow's; and, when the close was folded but the open was not, key k's through
 * active_moved. An open and its close thus meet in one key, whichever intervals they fall in. */
static __always_inline void agg_close_active(struct agg_value *v, const struct agg_key *k, bool open_folded, bool folded)
{
	if (open_folded && !folded)
		v = agg_overflow_value();
	else if (folded && !open_folded) {
		if (agg_move_close(k))
			return;
		count(COUNTER_ACTIVE_UNMOVED);
	}
	if (v)
		__sync_fetch_and_add(&v->active_delta, -1);
}

/* Marked reads: notes in a connection's entry that its open was counted open in e's key (and
 * whether folded into the overflow key's), for an unseen close to take it out. */
static __always_inline void remember_open(struct conn_info *entry, const struct event *e, bool folded)
{
	entry->open_counted = 1;
	entry->active_folded = folded;
	entry->open_cgroup_id = e->cgroup_id;
	entry->open_netns_ino = e->netns_ino;
	entry->open_family = e->family;
	entry->open_server_port = agg_server_port(e);
	__builtin_memcpy(entry->open_peer_addr, e->peer_addr, sizeof(entry->open_peer_addr));
}

/* Marked reads: a connection whose close the kernel never showed podnet, found when its entry
 * is in the way of a new connection on the same socket memory (state.h): its open is taken out
 * of the key it was counted open in, as its close would have (found by an independent check:
 * `active` stayed high by exactly the unseen closes). Its close's other counts stay missing. */
static __always_inline void agg_close_unseen(const struct conn_info *ci)
{
	struct agg_key k = {};
	struct agg_value *v;
	bool folded;

	if (!marked_reads || !ci->open_counted) /* marked reads are in-kernel aggregation's */
		return;
	k.cgroup_id = ci->open_cgroup_id;
	k.netns_ino = ci->open_netns_ino;
	k.family = ci->open_family;
	k.server_port = ci->open_server_port;
	k.role = ci->role;
	__builtin_memcpy(k.peer_addr, ci->open_peer_addr, sizeof(k.peer_addr));
	agg_key_backend(&k, ci->backend_port, ci->backend_addr, ci->dialled); /* the open's event took them from ci */
	agg_key_project(&k);
	v = agg_value_of(&k, &folded);
	agg_close_active(v, &k, ci->active_folded, folded);
}

/* Adds an event to its key: an open (connect, established or failed, or passive open) or a
 * close with its numbers; open_folded (closes) says where the connection's open was counted
 * open. Returns whether an open was folded into the overflow key: its close takes it out there. */
static __always_inline bool agg_add(const struct event *e, bool open_folded)
{
	struct agg_key k;
	struct agg_value *v;
	bool folded;

	agg_key_of(&k, e);
	v = agg_value_of(&k, &folded);
	if (!v)
		return false;
	if (folded)
		count(COUNTER_AGGREGATE_FULL); /* otelcol_podnet_metric_series_dropped: events folded */
	if (e->type != EVENT_CLOSE) {
		__sync_fetch_and_add(&v->connections, 1);
		if (marked_reads && !e->error)
			__sync_fetch_and_add(&v->active_delta, 1); /* established (failures carry their errno) */
		if (e->retransmits)
			__sync_fetch_and_add(&v->syn_retransmits, e->retransmits);
		if (e->srtt_us) /* the handshake's duration, on opens */
			add_handshake(v, e->srtt_us);
		return folded;
	}
	__sync_fetch_and_add(&v->closed, 1);
	if (marked_reads)
		agg_close_active(v, &k, open_folded, folded); /* only established connections report a close */
	if (e->close_reason < CLOSE_REASON_MAX)
		__sync_fetch_and_add(&v->closed_by[e->close_reason], 1);
	/* Only what the periodic reads of the open connection did not count already. Never less than
	 * nothing: a read races the socket's updates unlocked (a FIN counted in bytes_received for a
	 * moment, before tcp_fin), and a difference below 0 would add 2^64 - 1 to a cumulative sum;
	 * user space clamps the same way in events mode (event.go rest). */
	if (e->bytes_sent > e->counted_bytes_sent)
		__sync_fetch_and_add(&v->bytes_sent, e->bytes_sent - e->counted_bytes_sent);
	if (e->bytes_received > e->counted_bytes_received)
		__sync_fetch_and_add(&v->bytes_received, e->bytes_received - e->counted_bytes_received);
	if (e->retransmits > e->counted_retransmits)
		__sync_fetch_and_add(&v->retransmits, e->retransmits - e->counted_retransmits);
	if (e->start_ns && e->timestamp_ns >= e->start_ns)
		__sync_fetch_and_add(&v->duration_ns, e->timestamp_ns - e->start_ns);
	return false;
}

/* Marked reads: a connection the start-up scan found counted open (1) or, when the scan does
 * not track it after all, taken out again (-1, where open_folded says the 1 went); e is filled
 * as its close will be. Returns whether a 1 was folded into the overflow key. */
static __always_inline bool count_found(const struct event *e, __s64 delta, bool open_folded)
{
	struct agg_key k;
	struct agg_value *v;
	bool folded;

	agg_key_of(&k, e);
	v = agg_value_of(&k, &folded);
	if (!v)
		return false;
	if (delta < 0) {
		agg_close_active(v, &k, open_folded, folded);
		return false;
	}
	__sync_fetch_and_add(&v->active_delta, delta);
	return folded;
}

#endif
