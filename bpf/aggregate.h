/* SPDX-License-Identifier: Apache-2.0 */
/* In-kernel aggregation, for metrics-only pipelines: connections are counted per metric key in
 * `aggregates` instead of being sent as events.
 *
 * Metrics need no process context, so this path runs on the state hook alone: the loader
 * attaches no syscall hook (one syscall tracepoint taxes every syscall on the node), and a
 * connection end costs one `conns` insert (its start time) and one delete. What that gives up:
 * connect() failures that never reach SYN_SENT (no route, decided before a SYN is built) are
 * not counted here; `metrics_aggregation: events` counts them. A passive open is counted when
 * its handshake completes, which is exactly once per connection, as the event path's accept. */
#ifndef PODNET_AGGREGATE_H
#define PODNET_AGGREGATE_H

#include "podnet.h"
#include "maps.h"
#include "sock.h"

#define E2BIG 7

/* The transitions this path counts: handshake ends (both sides) and closes. SYN_SENT itself is
 * not one of them: nothing is known yet that a metric needs. */
static __always_inline bool agg_interesting(int oldstate, int newstate)
{
	return oldstate == TCP_SYN_SENT || newstate == TCP_CLOSE ||
	       (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED);
}

/* The metric key of an event built from a socket: the fields the event path's aggregator
 * splits by. */
static __always_inline void agg_key_of(struct agg_key *k, const struct event *e, __u8 role)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->cgroup_id = e->cgroup_id;
	k->netns_ino = e->netns_ino;
	k->family = e->family;
	k->server_port = role == ROLE_SERVER ? e->local_port : e->peer_port;
	k->role = role;
	__builtin_memcpy(k->peer_addr, e->peer_addr, sizeof(k->peer_addr));
}

/* The key's counts for this interval, created empty when new; NULL (counted) when the map is
 * full. */
static __always_inline struct agg_value *agg_value_of(const struct agg_key *k)
{
	struct agg_value zero = {};
	struct agg_value *v = bpf_map_lookup_elem(&aggregates, k);

	if (v)
		return v;
	if (bpf_map_update_elem(&aggregates, k, &zero, BPF_NOEXIST) == -E2BIG) {
		count(COUNTER_AGGREGATE_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&aggregates, k);
}

/* A connection opened: a connect that ended (error 0 = established) or a passive open. */
static __always_inline void agg_open(struct sock *sk, __u8 role, __s32 error, enum sock_read direct)
{
	struct event e;
	struct agg_key k;
	struct agg_value *v;

	__builtin_memset(&e, 0, sizeof(e));
	fill_sock(&e, sk, direct);
	agg_key_of(&k, &e, role);
	k.error = error;
	v = agg_value_of(&k);
	if (v)
		__sync_fetch_and_add(&v->connections, 1);
}

/* An established connection closed: what the event path reports at close, added to its key. */
static __always_inline void agg_close(struct sock *sk, const struct conn_info *ci, enum sock_read direct)
{
	__u64 now = bpf_ktime_get_boot_ns();
	struct event e;
	struct agg_key k;
	struct agg_value *v;

	__builtin_memset(&e, 0, sizeof(e));
	fill_sock(&e, sk, direct);
	agg_key_of(&k, &e, ci->role);
	v = agg_value_of(&k);
	if (!v)
		return;
	fill_close(&e, sk, direct);
	__sync_fetch_and_add(&v->closed, 1);
	__sync_fetch_and_add(&v->bytes_sent, e.bytes_sent);
	__sync_fetch_and_add(&v->bytes_received, e.bytes_received);
	__sync_fetch_and_add(&v->retransmits, e.retransmits);
	if (ci->start_ns && now >= ci->start_ns)
		__sync_fetch_and_add(&v->duration_ns, now - ci->start_ns);
}

/* Remembers when a connection end was established: the one thing its close needs. */
static __always_inline void agg_track(struct sock *sk, __u8 role)
{
	__u64 key = (__u64)sk;
	struct conn_info ci = { .role = role, .start_ns = bpf_ktime_get_boot_ns() };

	bpf_map_update_elem(&conns, &key, &ci, BPF_ANY);
}

static __always_inline void agg_on_state(struct sock *sk, int oldstate, int newstate, enum sock_read direct)
{
	__u64 key = (__u64)sk;
	struct conn_info *known;
	struct conn_info ci;

	if (oldstate == TCP_SYN_SENT) {
		if (newstate == TCP_ESTABLISHED) {
			agg_track(sk, ROLE_CLIENT);
			agg_open(sk, ROLE_CLIENT, 0, direct);
		} else if (newstate == TCP_CLOSE) {
			agg_open(sk, ROLE_CLIENT, connect_errno(sk, direct), direct);
		}
		return; /* SYN_SENT -> SYN_RECV (simultaneous open) goes on */
	}
	if (newstate == TCP_ESTABLISHED) { /* from SYN_RECV: passive open done */
		agg_track(sk, ROLE_SERVER);
		agg_open(sk, ROLE_SERVER, 0, direct);
		return;
	}
	known = bpf_map_lookup_elem(&conns, &key);
	if (!known) {
		count(COUNTER_CLOSE_UNTRACKED);
		return;
	}
	ci = *known;
	bpf_map_delete_elem(&conns, &key);
	agg_close(sk, &ci, direct);
}

#endif
