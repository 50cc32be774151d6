/* SPDX-License-Identifier: Apache-2.0 */
/* The one TCP state machine: what a state change means for a connection (a connect that ended,
 * a passive open, a close with its numbers), reported to one sink, chosen at load time: the ring
 * buffer (events, ring.h) or the in-kernel aggregates (aggregate.h). */
#ifndef PODNET_STATE_H
#define PODNET_STATE_H

#include "podnet.h"
#include "maps.h"
#include "sock.h"
#include "ring.h"
#include "aggregate.h"
#include "select.h"

/* Set by the loader: the two sinks, either or both. aggregate_in_kernel counts metrics into
 * `aggregates` (a passive open is counted when its handshake ends); send_events writes events
 * to the ring for logs (and for metrics counted in user space, `metrics_aggregation: events`),
 * with the syscall programs attached for what only they see (the acceptor's pid, connect()
 * failures before SYN_SENT). Without send_events nothing reports passive opens at accept(). */
const volatile bool aggregate_in_kernel = false;
const volatile bool send_events = true;

/* The transitions that say something; everything else (FIN_WAIT1, CLOSE_WAIT, LAST_ACK...) is
 * dropped before the socket or any map is touched, since this hook runs ~10 times per
 * connection. Not interesting either: a listener's close, and CLOSE -> CLOSE (closing a socket
 * that never connected). */
static __always_inline bool interesting(int oldstate, int newstate)
{
	if (newstate == TCP_SYN_SENT)
		return send_events; /* only the process context is learnt there, for the events */
	if (oldstate == TCP_SYN_SENT)
		return true; /* -> ESTABLISHED, -> CLOSE, -> SYN_RECV (simultaneous open) */
	if (newstate == TCP_ESTABLISHED)
		return oldstate == TCP_SYN_RECV;
	return newstate == TCP_CLOSE && oldstate != TCP_CLOSE && oldstate != TCP_LISTEN;
}

/* An event's content from the socket and what is known of the connection. type is passed, not
 * read back from e, so that it stays a constant after inlining: accept() (READ_CAST) must not
 * even contain the close readers. */
static __always_inline void fill_event(struct event *e, __u8 type, struct sock *sk, const struct conn_info *ci,
				       __s32 error, enum sock_read rd)
{
	fill_sock(e, sk, rd);
	if (!e->cgroup_id)
		e->cgroup_id = ci->cgroup_id;
	e->pid = ci->pid;
	__builtin_memcpy(e->comm, ci->comm, sizeof(e->comm));
	e->error = error;
	if (type != EVENT_CONNECT && !ci->found)
		e->start_ns = ci->start_ns;
	if (ci->found)
		e->flags = EVENT_FLAG_FOUND | EVENT_FLAG_ROLE_GUESSED;
	if (type == EVENT_CLOSE) {
		fill_close(e, sk, rd);
		e->counted_bytes_sent = ci->counted_sent;
		e->counted_bytes_received = ci->counted_received;
		e->counted_retransmits = ci->counted_retrans;
	}
}

/* One outcome to the aggregates (metrics), when they are a sink. */
static __always_inline void to_metrics(struct sock *sk, __u8 type, const struct conn_info *ci, __s32 error, __u64 ts,
				       enum sock_read rd)
{
	struct event local;

	if (!aggregate_in_kernel || ci->excluded)
		return;
	__builtin_memset(&local, 0, sizeof(local));
	local.timestamp_ns = ts;
	local.type = type;
	local.role = ci->role;
	fill_event(&local, type, sk, ci, error, rd);
	agg_add(&local);
}

/* One outcome to the ring (logs), when events are sent. */
static __always_inline void to_ring(struct sock *sk, __u8 type, const struct conn_info *ci, __s32 error, __u64 ts,
				    enum sock_read rd)
{
	struct event *e;

	if (!send_events || ci->excluded || !ring_keeps(type))
		return; /* no ring space for what no logs pipeline keeps */
	e = reserve(type, ci->role, ts);
	if (!e)
		return;
	fill_event(e, type, sk, ci, error, rd);
	submit(e);
}

/* Reports one outcome to every sink: type is enum event_type, ts when it happened. */
static __always_inline void report(struct sock *sk, __u8 type, const struct conn_info *ci, __s32 error, __u64 ts,
				   enum sock_read rd)
{
	to_metrics(sk, type, ci, error, ts, rd);
	to_ring(sk, type, ci, error, ts, rd);
}

/* Inserts a new conns entry, never over one another hook stored meanwhile (BPF_NOEXIST); returns
 * the entry now in the map, or NULL when the map refused. */
static __always_inline struct conn_info *track(__u64 key, const struct conn_info *ci)
{
	bpf_map_update_elem(&conns, &key, ci, BPF_NOEXIST);
	return bpf_map_lookup_elem(&conns, &key);
}

/* The process's cgroup, kept for kernels whose sockets do not name theirs (sock.h); a constant 0
 * elsewhere. Process context only. */
static __always_inline __u64 fallback_cgroup_id(void)
{
	return sock_cgroup_readable() ? 0 : bpf_get_current_cgroup_id();
}

/* CLOSE -> SYN_SENT, inside connect(): the caller's process context. A new connection on this
 * socket: whatever an earlier one left is replaced. */
static __always_inline void on_syn_sent(struct sock *sk, enum sock_read rd)
{
	__u64 key = (__u64)sk;
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_info ci = { .role = ROLE_CLIENT, .pid = id >> 32, .cgroup_id = fallback_cgroup_id() };
	struct connect_call *call;

	ci.excluded = excluded_sock(sk, ROLE_CLIENT, rd);

	bpf_get_current_comm(ci.comm, sizeof(ci.comm));
	if (bpf_map_update_elem(&conns, &key, &ci, BPF_NOEXIST)) {
		/* Every entry of this socket was deleted at its last CLOSE: one still here is an
		 * earlier connection's, whose close the kernel never showed us (unseen). */
		count(COUNTER_CLOSE_UNSEEN);
		bpf_map_update_elem(&conns, &key, &ci, BPF_ANY);
	}
	call = bpf_map_lookup_elem(&connect_calls, &id);
	if (call)
		call->async = 1; /* this thread's connect() reached SYN_SENT */
}

/* The handshake ended: SYN_SENT -> ESTABLISHED (connect), SYN_RECV -> ESTABLISHED (passive open,
 * or the end of a simultaneous open, which stays a client). */
static __always_inline void on_established(struct sock *sk, int oldstate, struct conn_info *known, enum sock_read rd)
{
	__u64 key = (__u64)sk, now = bpf_ktime_get_boot_ns();
	__u32 seq = sock_write_seq(sk, rd);
	struct conn_info ci = { .est_seq = seq };

	if (known && known->start_ns) {
		/* A socket is established once per connection: an entry already dated is either this
		 * very change done again (the second tp_btf program, rarely, finds no note of the
		 * first: same sequence, already reported) or an earlier connection's on the same
		 * socket memory, whose close the kernel never showed us (no BPF program runs while
		 * some tasks are current). Taking that over would report this connection with its
		 * role and start; it is dropped and counted unseen. */
		if (known->est_seq == seq)
			return;
		count(COUNTER_CLOSE_UNSEEN);
		bpf_map_delete_elem(&conns, &key);
		known = NULL;
	}
	if (oldstate == TCP_SYN_SENT || (known && known->role == ROLE_CLIENT && !known->start_ns)) {
		if (known) {
			known->start_ns = now; /* in place: a map update costs more than the rest */
			known->est_seq = seq;
			ci = *known;
		} else {
			ci.role = ROLE_CLIENT; /* connect() began before podnet loaded */
			ci.start_ns = now;
			ci.excluded = excluded_sock(sk, ROLE_CLIENT, rd);
			track(key, &ci);
		}
		report(sk, EVENT_CONNECT, &ci, 0, now, rd);
		return;
	}
	if (!known) {
		/* Passive open, in softirq: counted in the aggregates now; for the ring there is no
		 * process to name: accept() will, unless nothing calls it, in which case the close
		 * reports the open. */
		ci.role = ROLE_SERVER;
		ci.start_ns = now;
		ci.accepted = !send_events; /* no event to wait for */
		ci.excluded = excluded_sock(sk, ROLE_SERVER, rd);
		known = track(key, &ci);
		to_metrics(sk, EVENT_ACCEPT, &ci, 0, now, rd);
		if (!known)
			return;
	}
	/* accept() may have come first (TCP Fast Open): it reported the open to the ring, this
	 * dates it and counts it. */
	if (!known->start_ns) {
		known->start_ns = now;
		known->est_seq = seq;
		to_metrics(sk, EVENT_ACCEPT, known, 0, now, rd);
	}
}

/* Any -> CLOSE (but from LISTEN or CLOSE). */
static __always_inline void on_close(struct sock *sk, int oldstate, struct conn_info *known, enum sock_read rd)
{
	__u64 key = (__u64)sk, now = bpf_ktime_get_boot_ns();
	struct conn_info ci = { .role = ROLE_CLIENT };

	if (known) {
		/* Claims what the periodic reads counted: a read that has not stored its count yet
		 * finds COUNTED_CLOSED and counts nothing, so the close adds exactly the rest. */
		__u64 sent = __sync_lock_test_and_set(&known->counted_sent, COUNTED_CLOSED);
		__u64 received = __sync_lock_test_and_set(&known->counted_received, COUNTED_CLOSED);
		__u64 retrans = __sync_lock_test_and_set(&known->counted_retrans, COUNTED_CLOSED);

		ci = *known;
		ci.counted_sent = sent;
		ci.counted_received = received;
		ci.counted_retrans = retrans;
		bpf_map_delete_elem(&conns, &key);
	} else if (oldstate == TCP_SYN_RECV) {
		return; /* a passive open that never completed: nothing was reported open */
	} else if (oldstate != TCP_SYN_SENT) {
		count(COUNTER_CLOSE_UNTRACKED); /* established before podnet loaded, or evicted */
		return;
	}
	if (ci.role == ROLE_CLIENT && !ci.start_ns) {
		/* Never established: the connect failed (refused, timed out, reset, cancelled). */
		if (!known)
			ci.excluded = excluded_sock(sk, ROLE_CLIENT, rd);
		report(sk, EVENT_CONNECT, &ci, connect_errno(sk, rd), now, rd);
		return;
	}
	/* Accepted by nobody through accept() (io_uring, or reset while queued): report the
	 * passive open now, at the time the handshake completed, so server counts stay whole. */
	if (ci.role == ROLE_SERVER && !ci.accepted)
		to_ring(sk, EVENT_ACCEPT, &ci, 0, ci.start_ns, rd); /* the aggregates counted it at its handshake */
	report(sk, EVENT_CLOSE, &ci, 0, now, rd);
}

/* One interesting state change of a TCP socket. */
static __always_inline void on_state(struct sock *sk, int oldstate, int newstate, enum sock_read rd)
{
	__u64 key = (__u64)sk;
	struct conn_info *known;

	if (newstate == TCP_SYN_SENT) {
		on_syn_sent(sk, rd);
		return;
	}
	known = bpf_map_lookup_elem(&conns, &key);
	if (newstate == TCP_ESTABLISHED) {
		on_established(sk, oldstate, known, rd);
	} else if (newstate == TCP_CLOSE) {
		on_close(sk, oldstate, known, rd);
	} else if (!known) {
		/* SYN_SENT -> SYN_RECV, a simultaneous open: remember it is a client (aggregating,
		 * SYN_SENT stored nothing). */
		struct conn_info ci = { .role = ROLE_CLIENT };

		ci.excluded = excluded_sock(sk, ROLE_CLIENT, rd);
		track(key, &ci);
	}
}

#endif
