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
#include "nat.h"
#include "scratch.h"
#include "marks.h"
#include "calls.h"
#include "handshake.h"
#include "close_reason.h"

#define SO_EE_ORIGIN_ICMP 2
#define SO_EE_ORIGIN_ICMP6 3

/* Set by the loader: the two sinks, either or both. aggregate_in_kernel counts metrics into
 * `aggregates` (a passive open is counted when its handshake ends); send_events writes events
 * to the ring for logs (and for metrics counted in user space, `metrics_aggregation: events`),
 * with the syscall programs attached for what only they see (the acceptor's pid, connect()
 * failures before SYN_SENT). Without send_events nothing reports passive opens at accept(). */
const volatile bool aggregate_in_kernel = false;
const volatile bool send_events = true;

/* Set by the loader: the syscall hooks are attached (events carry the connecting and accepting
 * process). Off (logs without process attributes): passive opens go to the ring when their
 * handshake ends, and nothing is learnt at SYN_SENT. */
const volatile bool process_context = true;

/* Set by the loader: user space reads open connections (progress.h) for metrics. Without it
 * (logs alone) nothing races a close for the counts, and the close claims them without atomics. */
const volatile bool live_reads = true;

/* Set by the loader: the kernel takes BPF's atomic exchanges (5.12+). Before, a server
 * connection's open is claimed with plain reads and writes (exchange_unaccepted), and live
 * reads, which need 5.13+, are off. */
const volatile bool atomics = true;

/* Set by the loader: the listener scan runs (podnet.tcp.listen.overflows in a metrics pipeline),
 * so listening sockets are kept in `listeners` for it. Off, nothing would ever empty that map
 * (the scan deletes closed listeners), and a long-running node would fill it. */
const volatile bool keep_listeners = true;

/* The transitions that say something; everything else (FIN_WAIT1, CLOSE_WAIT, LAST_ACK...) is
 * dropped before the socket or any map is touched, since this hook runs ~10 times per
 * connection. Not interesting either: CLOSE -> CLOSE (closing a socket that never connected). A
 * listener's start and close are, for `listeners` only (on_listen): they are no connection. */
static __always_inline bool interesting(int oldstate, int newstate)
{
	if (newstate == TCP_SYN_SENT)
		return true; /* the handshake's start; and, with events, the process context */
	if (oldstate == TCP_SYN_SENT)
		return true; /* -> ESTABLISHED, -> CLOSE, -> SYN_RECV (simultaneous open) */
	/* SYN_RECV -> FIN_WAIT1: a TCP Fast Open child its application closed before the handshake's
	 * last ACK came, which never becomes ESTABLISHED: its passive open ends there. */
	if (newstate == TCP_ESTABLISHED || newstate == TCP_FIN_WAIT1)
		return oldstate == TCP_SYN_RECV;
	if (newstate == TCP_LISTEN)
		return true; /* a listener begins (not a connection: on_listen) */
	/* A listener ends (on_listen). LISTEN -> SYN_RECV is no change of the listener: it is each
	 * passive open's new socket, which starts with its listener's state; not interesting. */
	if (oldstate == TCP_LISTEN)
		return newstate == TCP_CLOSE;
	return newstate == TCP_CLOSE && oldstate != TCP_CLOSE;
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
	if (process_context) { /* off: no process on records, a found connection's scanner's neither */
		e->pid = ci->pid;
		__builtin_memcpy(e->comm, ci->comm, sizeof(e->comm));
	}
	e->error = error;
	if (type != EVENT_CONNECT && !ci->found)
		e->start_ns = ci->start_ns;
	else if (type == EVENT_CONNECT && error)
		e->start_ns = ci->opened_ns; /* when its SYN was sent: its peer is named as of then */
	if (ci->found)
		e->flags = EVENT_FLAG_FOUND | EVENT_FLAG_ROLE_GUESSED;
	if (type == EVENT_ACCEPT && ci->open_unseen)
		e->flags |= EVENT_FLAG_OPEN_UNSEEN;
	if (nat_lookup || socket_lb) {
		e->backend_port = ci->backend_port;
		__builtin_memcpy(e->backend_addr, ci->backend_addr, sizeof(e->backend_addr));
		if (ci->dialled)
			e->flags |= EVENT_FLAG_DIALLED;
	}
	/* With sampling on: abnormal connections are kept whatever the sampling, 1 in 1; so are the
	 * connections open before podnet loaded, none left out: found at start (find_connection),
	 * or queued for accept() since then (on_accept), whose client end was found. */
	if (sample_one_in > 1)
		e->sample_one_in = ci->abnormal || error || ci->found || ci->open_unseen ? 1 : sample_one_in;
	if (type == EVENT_CONNECT || type == EVENT_ACCEPT) {
		e->retransmits = ci->syn_retrans;
		e->srtt_us = ci->handshake_us;
	}
	if (type == EVENT_CLOSE) {
		fill_close(e, sk, rd, ci->role == ROLE_CLIENT, ci->closed_from);
		e->close_reason = ci->close_reason;
		e->counted_bytes_sent = ci->counted_sent;
		e->counted_bytes_received = ci->counted_received;
		e->counted_retransmits = ci->counted_retrans;
	}
}

/* The event the aggregates key and count an outcome by (to_metrics, count_open_only), in the
 * caller's scratch slot (scratch.h: the stack has no room for it). */
static __always_inline void fill_local(struct event *local, struct sock *sk, __u8 type, const struct conn_info *ci,
				       __s32 error, __u64 ts, enum sock_read rd)
{
	__builtin_memset(local, 0, sizeof(*local));
	local->timestamp_ns = ts;
	local->type = type;
	local->role = ci->role;
	fill_event(local, type, sk, ci, error, rd);
}

/* One outcome to the aggregates (metrics), when they are a sink, counted from filled (the ring's
 * record, already filled: reserve() found it neither excluded nor stopping) or, when NULL, from
 * an event filled here. Inlined (a call's cost showed in BenchmarkKernelCostPerConnection).
 * That event is in scratch (scratch.h): its lookup is a small part of the BPF time per
 * connection, and on the stack it leaves the subprograms no room (clang refuses both ways in one frame). One
 * agg_add for both sources, so the aggregates' code is in the program once per call site. An
 * open counted open (marked reads) is noted in the connection's entry, when there is one, for
 * its close: where it was counted (remember_open). */
static __always_inline void count_outcome(const struct event *filled, struct sock *sk, __u8 type,
					  const struct conn_info *ci, __s32 error, __u64 ts, enum sock_read rd,
					  struct conn_info *entry)
{
	struct scratch_slot *m;
	struct scratch *s = NULL;
	bool folded;

	if (!aggregate_in_kernel)
		return;
	if (!filled) {
		if (ci->excluded || stopping)
			return;
		s = scratch_take(&m);
		if (!s)
			return;
		fill_local(&m->event, sk, type, ci, error, ts, rd);
		filled = &m->event;
	}
	folded = agg_add(filled, ci->active_folded);
	if (entry && marked_reads && type != EVENT_CLOSE && !error)
		remember_open(entry, filled, folded);
	if (s)
		scratch_give(s);
}

/* One outcome to the aggregates alone (a passive open, counted at its handshake). */
static __always_inline void to_metrics(struct sock *sk, __u8 type, const struct conn_info *ci, __s32 error, __u64 ts,
				       enum sock_read rd, struct conn_info *entry)
{
	count_outcome(NULL, sk, type, ci, error, ts, rd, entry);
}

/* A connection whose open is not counted (its opening was not seen, or was counted by an entry
 * since evicted) counted open all the same (marked reads: its close takes 1 away), as a found
 * connection is (count_found), and noted in ci (remember_open). */
static __always_inline void count_open_only(struct sock *sk, struct conn_info *ci, enum sock_read rd)
{
	struct scratch_slot *m;
	struct scratch *s;

	if (!aggregate_in_kernel || !marked_reads || ci->excluded)
		return;
	s = scratch_take(&m);
	if (!s)
		return;
	fill_local(&m->event, sk, EVENT_CLOSE, ci, 0, 0, rd); /* keyed as its close will be */
	remember_open(ci, &m->event, count_found(&m->event, 1, false));
	scratch_give(s);
}

/* An outcome's ring record, reserved and filled but not yet submitted; NULL when the ring does
 * not take it (no logs pipeline keeps it, or the ring is full: counted in reserve). */
static __always_inline struct event *ring_filled(struct sock *sk, __u8 type, const struct conn_info *ci, __s32 error,
						 __u64 ts, enum sock_read rd)
{
	struct event *e;

	if (!send_events || ci->excluded || ci->sampled_out || !ring_keeps(type))
		return NULL; /* no ring space for what no logs pipeline keeps */
	e = reserve(type, ci->role, ts);
	if (e)
		fill_event(e, type, sk, ci, error, rd);
	return e;
}

/* One outcome to the ring (logs), when events are sent. */
static __always_inline void to_ring(struct sock *sk, __u8 type, const struct conn_info *ci, __s32 error, __u64 ts,
				    enum sock_read rd)
{
	struct event *e = ring_filled(sk, type, ci, error, ts, rd);

	if (e)
		submit(e);
}

/* Reports one outcome to every sink: type is enum event_type, ts when it happened; entry is
 * the connection's, if tracked (to_metrics). With both sinks the ring's record, filled first, is
 * what the aggregates count (the same fields fill_local would write: the socket read once, not
 * twice; measured with bench/bpf-versus.sh); only an outcome the ring does not take
 * (left out, or the ring full) is filled for the aggregates alone. The record is submitted
 * after it is counted. */
static __always_inline void report(struct sock *sk, __u8 type, const struct conn_info *ci, __s32 error, __u64 ts,
				   enum sock_read rd, struct conn_info *entry)
{
	struct event *e = ring_filled(sk, type, ci, error, ts, rd);

	count_outcome(e, sk, type, ci, error, ts, rd, entry);
	if (e)
		submit(e);
}

/* What the selection (select.h) decides for a connection from its tuple, once, when it is
 * tracked: left out by `exclude`, and (sample: once its local port is known) left out of the
 * ring by logs sampling. One read of the socket for both, and none when neither is configured.
 * Not inlined, and its memory in scratch.h: the state program's stack has no room for it. */
static __noinline void classify_sock(struct conn_info *ci, struct sock *sk, bool sample, enum sock_read rd)
{
	struct scratch_slot *m;
	struct scratch *s = scratch_take(&m);

	if (!s)
		return;
	sock_ends(sk, rd, &m->ends);
	ci->excluded = excluded_peer_key(&m->prefix, m->ends.family, m->ends.peer_addr,
					 ci->role == ROLE_SERVER ? m->ends.local_port : m->ends.peer_port);
	if (sample)
		ci->sampled_out = sampled_out(&m->ends, m->a, m->b);
	scratch_give(s);
}

/* Whether a close with no entry is of a connection `exclude` leaves out: excluded connections
 * are tracked like the rest (their entry says so) and can be pushed out of a full `conns` too,
 * and their closes are nobody's loss (found by an independent check: 2,000 excluded connections
 * held in a 1,024-entry table counted 3,300 untracked closes). Its role is unknown here, so
 * excluded as either: a server port among its two ports, or its peer's address. */
static __noinline bool untracked_excluded(struct sock *sk, enum sock_read rd)
{
	struct scratch_slot *m;
	struct scratch *s = scratch_take(&m);
	bool out;

	if (!s)
		return false;
	sock_ends(sk, rd, &m->ends);
	out = excluded_peer_key(&m->prefix, m->ends.family, m->ends.peer_addr, m->ends.peer_port) ||
	      bpf_map_lookup_elem(&excluded_ports, &m->ends.local_port); /* the peer was looked up */
	scratch_give(s);
	return out;
}

/* An untracked close, counted unless `exclude` leaves it out. */
static __always_inline void count_untracked(struct sock *sk, enum sock_read rd)
{
	if (exclusions && untracked_excluded(sk, rd))
		return;
	count(COUNTER_CLOSE_UNTRACKED);
}

/* The call is made only when there is something to decide: the loader's constants make it dead
 * code otherwise, so selection costs nothing unless configured. */
static __always_inline void classify(struct conn_info *ci, struct sock *sk, bool sample, enum sock_read rd)
{
	if (exclusions || (sample && sample_one_in > 1))
		classify_sock(ci, sk, sample, rd);
}

/* Added to the socket's address in conn_info.unaccepted, whose low bits it leaves 0 (8-byte
 * aligned; added, as the verifier takes no bitwise operation on a pointer): accept() claimed
 * the open and is writing into the entry (OPEN_ACCEPTING); the close came meanwhile, leaving
 * the entry for accept() to delete (OPEN_CLOSED). */
#define OPEN_ACCEPTING 1ULL
#define OPEN_CLOSED 2ULL

/* What a server connection's close found of its open's claim (close_claims_open). */
enum open_claim {
	OPEN_REPORTED = 0,   /* accept() reported it: the close deletes the entry at once */
	OPEN_CLOSE_REPORTS,  /* claimed by the close: it reports it, and deletes the entry last */
	OPEN_ACCEPT_DELETES, /* accept() is writing into the entry: it deletes it once done */
};

/* conn_info.unaccepted from old to new if it holds old; returns what it held. */
static __always_inline __u64 exchange_unaccepted(struct conn_info *ci, __u64 old, __u64 new)
{
	__u64 was;

	if (atomics)
		return __sync_val_compare_and_swap(&ci->unaccepted, old, new);
	was = ci->unaccepted;
	if (was == old)
		ci->unaccepted = new;
	return was;
}

/* A server connection's close, whose copy says its open was not reported when it was taken:
 * accept() on another CPU may be claiming it at this very moment (accept_claims_open). */
static __always_inline enum open_claim close_claims_open(struct conn_info *known, __u64 key)
{
	__u64 was = exchange_unaccepted(known, key, 0);

	if (was == key)
		return OPEN_CLOSE_REPORTS;
	if (was == (key + OPEN_ACCEPTING) && exchange_unaccepted(known, was, key + OPEN_CLOSED) == was)
		return OPEN_ACCEPT_DELETES;
	return OPEN_REPORTED;
}

/* accept() claims a server connection's open before it writes into its entry: false when its
 * close reported it (a moment ago, on another CPU), or when the entry is no longer this
 * socket's (freed by that close, and perhaps another connection's by now). The address in the
 * claim is what makes the second case fail. */
static __always_inline bool accept_claims_open(struct conn_info *known, __u64 key)
{
	return exchange_unaccepted(known, key, key + OPEN_ACCEPTING) == key;
}

/* accept() wrote into the entry: the claim is released; a close that came meanwhile left the
 * entry to it. */
static __always_inline void accept_done(struct conn_info *known, __u64 key)
{
	if (exchange_unaccepted(known, key + OPEN_ACCEPTING, 0) == (key + OPEN_CLOSED))
		bpf_map_delete_elem(&conns, &key);
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

/* CLOSE -> SYN_SENT, inside connect(): the handshake's start, in every mode (a client's entry is
 * made here rather than when established, so dating it costs one clock read), and with events
 * the caller's process context. A new connection on this socket: whatever an earlier one left is
 * replaced. */
static __always_inline void on_syn_sent(struct sock *sk, enum sock_read rd)
{
	__u64 key = (__u64)sk;
	struct conn_info ci = { .role = ROLE_CLIENT, .opened_ns = bpf_ktime_get_boot_ns() };
	struct connect_call *call = NULL;
	__u64 id = 0;
	struct task_struct *task = NULL;

	classify(&ci, sk, false, rd); /* no local port yet: sampled when established */
	if (send_events && process_context)
		task = current_task(rd);
	/* In a kernel thread (an MPTCP client's further subflows are connected by a kworker) there
	 * is no process to name: the pid stays 0, as for a server's further subflows; nor for a
	 * further subflow connected in a process's context, which is not the application's (found by
	 * an independent check: named after `ip`, in the application's cgroup). */
	if (task && !kernel_thread(task, rd) && !further_subflow(sk)) {
		id = bpf_get_current_pid_tgid();
		ci.pid = id >> 32;
		ci.cgroup_id = fallback_cgroup_id();
		call = this_threads_connect();
		if (socket_lb && call)
			dialled_of(&ci, sk, call, rd);
		task_process_comm(task, ci.comm, rd);
	}
	if (bpf_map_update_elem(&conns, &key, &ci, BPF_NOEXIST)) {
		/* Every entry of this socket was deleted at its last CLOSE: one still here is an
		 * earlier connection's, whose close the kernel never showed us (unseen). */
		struct conn_info *stale = bpf_map_lookup_elem(&conns, &key);

		count(COUNTER_CLOSE_UNSEEN);
		if (stale)
			agg_close_unseen(stale);
		bpf_map_update_elem(&conns, &key, &ci, BPF_ANY);
	}
	if (call)
		call->async = 1; /* this thread's connect() reached SYN_SENT */
}

/* A passive open's handshake end, with marked reads (the caller's test): a TCP Fast Open child may have moved data
 * before it (the request its SYN carried, an answer sent in SYN_RECV), which no live read
 * counts (progress_of reads open states only) and no mark holds (a socket with no entry yet,
 * without the accept hook, is dropped from its set; a tracked one in SYN_RECV is not kept).
 * Marked now, for the next read: an idle one showed those bytes only at its close. Any other
 * child has moved nothing yet: two loads. Not inlined: inlined, its locals took the state
 * programs past the verifier's combined stack limit (528 of 512 bytes, with classify_sock). */
static __noinline void mark_early_data(struct sock *sk, enum sock_read rd)
{
	struct tcp_sock *tp = rd ? tcp_sock_of(sk, rd) : (struct tcp_sock *)sk;
	__u64 sent, received;

	if (!tp)
		return;
	if (rd) {
		sent = tp->bytes_sent;
		received = tp->bytes_received;
	} else {
		sent = BPF_CORE_READ(tp, bytes_sent);
		received = BPF_CORE_READ(tp, bytes_received);
	}
	if (sent || received)
		mark((__u64)sk);
}

/* The handshake ended: SYN_SENT -> ESTABLISHED (connect), SYN_RECV -> ESTABLISHED (passive open,
 * or the end of a simultaneous open, which stays a client). Or, for a server, its passive open
 * ended without it (done false: fast_open_ended), counted open then, with no handshake to time. */
static __always_inline void on_established(struct sock *sk, int oldstate, struct conn_info *known, bool done,
					   enum sock_read rd)
{
	__u64 key = (__u64)sk, now = bpf_ktime_get_boot_ns();
	__u32 seq = sock_write_seq(sk, rd);
	struct conn_info ci = { .est_seq = seq };
	bool inserted;

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
		agg_close_unseen(known);
		bpf_map_delete_elem(&conns, &key);
		known = NULL;
	} else if (known && known->role == ROLE_CLIENT && oldstate != TCP_SYN_SENT &&
		   !(rd ? sk->sk_socket : BPF_CORE_READ(sk, sk_socket))) {
		/* An undated client entry under a passive open's child (no socket file until
		 * accept()): a connect's on the same socket memory that never established and whose
		 * close the kernel never showed us, not this socket's (found by an independent check:
		 * the child reported as a connect, with that connect's process and start). Only a
		 * simultaneous open, whose socket is its connect()'s, takes its entry over. */
		count(COUNTER_CLOSE_UNSEEN);
		bpf_map_delete_elem(&conns, &key);
		known = NULL;
	}
	if (oldstate == TCP_SYN_SENT || (known && known->role == ROLE_CLIENT && !known->start_ns)) {
		struct conn_info *entry = known;

		if (known) {
			known->start_ns = now; /* in place: a map update costs more than the rest */
			known->est_seq = seq;
			handshake_end(known, sk, now, true, rd);
			classify(known, sk, true, rd); /* the local port is known from here */
			if (!known->dialled)
				find_backend(known, sk, rd);
			ci = *known;
		} else {
			ci.role = ROLE_CLIENT; /* connect() began before podnet loaded */
			ci.start_ns = now;
			handshake_end(&ci, sk, now, true, rd);
			classify(&ci, sk, true, rd);
			find_backend(&ci, sk, rd);
			entry = track(key, &ci);
		}
		report(sk, EVENT_CONNECT, &ci, 0, now, rd, entry);
		return;
	}
	if (marked_reads && done) /* tested here: the call itself is then dead code without marks */
		mark_early_data(sk, rd);
	if (!known) {
		/* Passive open, in softirq: counted in the aggregates now; for the ring there is no
		 * process to name: accept() will, unless nothing calls it, in which case the close
		 * reports the open. */
		ci.role = ROLE_SERVER;
		ci.start_ns = done ? now : fast_open_start(sk, now);
		if (done)
			handshake_end(&ci, sk, now, false, rd);
		if (send_events && process_context)
			ci.unaccepted = key; /* accept() will report it, unless its close comes first */
		classify(&ci, sk, true, rd);
		/* accept() on another CPU may have inserted the entry since the lookup (a TCP Fast Open
		 * child accepted in SYN_RECV): then it is dated and counted below, once. Counted here
		 * too, it was counted twice and left `active` above 0 for good (found by an independent
		 * check: 82 of 25,000 Fast Open connections). One with a start is this very change's,
		 * inserted and counted by the program that did it. */
		inserted = !bpf_map_update_elem(&conns, &key, &ci, BPF_NOEXIST);
		known = bpf_map_lookup_elem(&conns, &key);
		if (inserted || !known) {
			to_metrics(sk, EVENT_ACCEPT, &ci, 0, now, rd, known);
			if (!process_context)
				to_ring(sk, EVENT_ACCEPT, &ci, 0, now, rd); /* nothing else will: no pid to name */
			if (!known)
				return;
		}
	}
	/* accept() may have come first (TCP Fast Open): it reported the open to the ring, this
	 * dates it and counts it. */
	if (!known->start_ns) {
		known->start_ns = done ? now : fast_open_start(sk, now);
		known->est_seq = seq;
		if (done)
			handshake_end(known, sk, now, false, rd);
		to_metrics(sk, EVENT_ACCEPT, known, 0, now, rd, known);
	}
}

/* A connect that failed before its SYN left, reported here outside a connect() system call (an
 * io_uring connect that found no free tuple, EADDRNOTAVAIL): noted for its completion, which
 * cannot tell it from a connect that failed before SYN_SENT (maps.h failed_unsent). */
static __always_inline void note_unsent_failure(struct sock *sk)
{
	__u64 key = (__u64)sk;
	__u8 one = 1;

	bpf_map_update_elem(&failed_unsent, &key, &one, BPF_ANY);
}

/* Whether the state program reported this socket's failed connect already (note_unsent_failure);
 * the note is taken. */
static __always_inline bool unsent_failure_reported(struct sock *sk)
{
	__u64 key = (__u64)sk;

	if (!bpf_map_lookup_elem(&failed_unsent, &key))
		return false;
	bpf_map_delete_elem(&failed_unsent, &key);
	return true;
}

/* Any -> CLOSE (but from LISTEN or CLOSE). */
static __always_inline void on_close(struct sock *sk, int oldstate, struct conn_info *known, enum sock_read rd)
{
	__u64 key = (__u64)sk, now = bpf_ktime_get_boot_ns();
	struct conn_info ci = { .role = ROLE_CLIENT };
	enum open_claim claim = OPEN_REPORTED;
	__u8 deferred;

	if (known) {
		ci = *known;
		/* Not accepted yet, as far as the copy says: accept() on another CPU may claim it at
		 * this very moment; whichever claims first reports the open. */
		if (ci.unaccepted)
			claim = close_claims_open(known, key);
		/* Claims what the periodic reads counted: a read that has not stored its count yet
		 * finds COUNTED_CLOSED and counts nothing, so the close adds exactly the rest. Three
		 * locked exchanges, made only when something reads open connections (metrics). */
		if (live_reads) {
			ci.counted_sent = __sync_lock_test_and_set(&known->counted_sent, COUNTED_CLOSED);
			ci.counted_received = __sync_lock_test_and_set(&known->counted_received, COUNTED_CLOSED);
			ci.counted_retrans = __sync_lock_test_and_set(&known->counted_retrans, COUNTED_CLOSED);
		}
		if (claim == OPEN_REPORTED)
			bpf_map_delete_elem(&conns, &key); /* otherwise last (below), or by accept() */
	} else if (oldstate == TCP_SYN_RECV) {
		return; /* a passive open that never completed: nothing was reported open */
	} else if (oldstate != TCP_SYN_SENT) {
		count_untracked(sk, rd); /* established before podnet loaded, or evicted */
		return;
	}
	if (ci.role == ROLE_CLIENT && !ci.start_ns && oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV) {
		/* Closed from a state only an established connection reaches: its establishment ran
		 * without this program (a classic tracepoint's recursion miss, or a kernel that runs no
		 * BPF program in some task's context). Not a failed connect: a close of a connection
		 * never seen open, like the server's end of it. */
		if (!ci.excluded)
			count(COUNTER_CLOSE_UNTRACKED);
		return;
	}
	if (ci.role == ROLE_CLIENT && !ci.start_ns) {
		/* Never established: the connect failed (refused, timed out, reset, cancelled). */
		if (!known)
			classify(&ci, sk, false, rd); /* failed: never sampled out */
		if (!ci.dialled)
			find_backend(&ci, sk, rd); /* e.g. refused by the backend it was sent to */
		ci.syn_retrans = syn_retransmits(sk, rd);
		report(sk, EVENT_CONNECT, &ci, connect_errno(sk, ci.connect_err, rd), now, rd, NULL);
		if (send_events && process_context && !syn_sent_at(sk, rd) && !this_threads_connect())
			note_unsent_failure(sk); /* an io_uring connect's: its completion must not report it again */
		return;
	}
	ci.close_reason = close_reason_of(sk, oldstate, &ci, rd);
	ci.closed_from = oldstate;
	/* Left out by sampling, but it ended abnormally: kept after all, its open reported now at
	 * the time it happened (its entry kept what the open record needs). */
	deferred = ci.sampled_out;
	if (sample_one_in > 1)
		ci.abnormal = ended_abnormally(sk, ci.close_reason, rd);
	if (deferred && ci.abnormal) {
		ci.sampled_out = 0;
		if (ci.role == ROLE_CLIENT)
			to_ring(sk, EVENT_CONNECT, &ci, 0, ci.start_ns, rd);
	} else if (deferred && !ci.excluded) {
		count(COUNTER_SAMPLED_OUT); /* left out for good: what sampling kept from logs is counted */
	}
	/* Accepted by nobody through accept() (io_uring, or reset while queued), or its accept
	 * left out by sampling: report the passive open now, at the time accept() returned it
	 * (opened_ns), or else when the handshake completed, so server counts stay whole. (The
	 * aggregates counted it at its handshake.) */
	if (ci.role == ROLE_SERVER && (claim == OPEN_CLOSE_REPORTS || deferred))
		to_ring(sk, EVENT_ACCEPT, &ci, 0, ci.opened_ns ? ci.opened_ns : (ci.start_ns ? ci.start_ns : now), rd);
	report(sk, EVENT_CLOSE, &ci, 0, now, rd, NULL);
	if (claim == OPEN_CLOSE_REPORTS)
		bpf_map_delete_elem(&conns, &key);
}

/* The errno of the ICMP error just queued on the socket (applications that set IP_RECVERR get
 * ICMP errors queued and reported before TCP records them in sk_err or
 * sk_err_soft, where SO_ERROR takes them from); 0 if the queue's last entry is not one. */
static __always_inline int queued_icmp_errno(struct sock *sk)
{
	struct sk_buff *skb = BPF_CORE_READ(sk, sk_error_queue.prev);
	struct sock_exterr_skb *serr;
	__u8 origin;

	if (!skb || (void *)skb == (void *)&sk->sk_error_queue)
		return 0;
	serr = (struct sock_exterr_skb *)&skb->cb;
	origin = BPF_CORE_READ(serr, ee.ee_origin);
	if (origin != SO_EE_ORIGIN_ICMP && origin != SO_EE_ORIGIN_ICMP6)
		return 0;
	return BPF_CORE_READ(serr, ee.ee_errno);
}

/* A connecting socket reported an error (an ICMP unreachable, a reset): kept for its CLOSE,
 * since the application it wakes may read and clear sk_err, and close the socket itself, before
 * the kernel moves it to CLOSE. An entry is made here where SYN_SENT made none (rare: only failures). */
static __always_inline void on_connect_error(struct sock *sk, enum sock_read rd)
{
	__u64 key = (__u64)sk;
	int err = rd ? sk->sk_err : BPF_CORE_READ(sk, sk_err);
	struct conn_info *known;

	if (!err)
		err = queued_icmp_errno(sk);
	if (err <= 0 || err > 255)
		return;
	known = bpf_map_lookup_elem(&conns, &key);
	if (!known) {
		struct conn_info ci = { .role = ROLE_CLIENT };

		classify(&ci, sk, false, rd);
		known = track(key, &ci);
		if (!known)
			return;
	}
	if (known->role == ROLE_CLIENT && !known->start_ns)
		known->connect_err = err;
}

/* connect() again on a socket whose attempt failed (the POSIX way to learn a non-blocking
 * connect's outcome) starts no attempt: it returns the failure, which the state machine reported
 * at the CLOSE already, and disconnects the socket (tcp_disconnect), which reports error 0 on it
 * in CLOSE, inside that call. Noted in the call, so that its exit does not report the failure
 * again. Only for the call's own socket: a softirq in the same thread may report another's. The
 * descriptor walk is paid on errors only. */
static __always_inline void on_failure_collected(struct sock *sk)
{
	struct connect_call *call = this_threads_connect();

	if (call && (__u64)sock_from_fd(call->fd, READ_PROBED) == (__u64)sk)
		call->collected = 1;
}

/* The same from the classic tracepoint, which names no socket: a report of error 0 from a
 * socket with no peer port left is tcp_disconnect's (an error-queue report, such as a transmit
 * timestamp's, keeps its connection's port), which runs in process context with the socket
 * locked, never in a softirq: inside this thread's connect() it is that call's socket. */
static __always_inline void on_failure_collected_unnamed(void)
{
	struct connect_call *call = this_threads_connect();

	if (call)
		call->collected = 1;
}

/* The peer reset a connection (tcp_receive_reset, before the kernel closes it): noted for its
 * close reason, where sk_err alone could be read and cleared by the application first. */
static __always_inline void on_reset_received(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct conn_info *known = bpf_map_lookup_elem(&conns, &key);

	if (known)
		known->reset_received = 1;
}

/* A listening socket joins `listeners` (its value is written by the listener scan); a full map
 * is counted, and the scans then walk every descriptor instead. tgid is a process in the
 * socket's namespace, through which user space reads the namespace's ListenDrops. at_listen: it
 * listens from now, and drops counts from its drop count now (a socket listening again after a
 * shutdown() keeps its earlier drops, reported with its earlier listening period); a listener
 * the start-up scan found counts them all (user space takes what it had then as seen). */
static __always_inline void add_listener(struct sock *sk, __u32 tgid, bool at_listen)
{
	__u64 key = (__u64)sk;
	struct listen_drops none = { .tgid = tgid, .since = bpf_ktime_get_ns(), .base = at_listen ? sock_drops(sk) : 0 };
	struct listen_drops *old, closed;
	long err = bpf_map_update_elem(&listeners, &key, &none, BPF_NOEXIST);
	__u64 aside;

	if (err == -E2BIG) {
		count(COUNTER_LISTENERS_FULL);
	} else if (err == -EEXIST) {
		/* A closed listener's entry not reported yet, on the same socket memory (a server
		 * restarted at once gets its old listener's): the closed one's is set aside for the
		 * scan, which never reads a closed entry's socket. */
		old = bpf_map_lookup_elem(&listeners, &key);
		if (old && old->closed) {
			closed = *old;
			/* The socket's address, from the map (a scalar where key is a pointer to the
			 * verifier), with its low bit set: never a socket's, sockets are aligned. */
			aside = closed.sk | 1;
			bpf_map_update_elem(&listeners, &aside, &closed, BPF_ANY);
			bpf_map_update_elem(&listeners, &key, &none, BPF_ANY);
		}
	}
}

/* A socket began listening, or stopped: kept in `listeners` for the listener scan (progress.h),
 * which reads the rest while it listens; at its stop its last count is read here. listen() runs
 * in the listening process: its tgid names the namespace for user space. */
static __always_inline void on_listen(struct sock *sk, bool listening)
{
	__u64 key = (__u64)sk;

	struct listen_drops *r;

	if (!keep_listeners)
		return;
	if (listening) {
		add_listener(sk, bpf_get_current_pid_tgid() >> 32, true);
		return;
	}
	/* Its last count, for the next listener scan: drops just before a close (an overloaded
	 * server killed by its probe) are counted, and claim their share of the namespace's. */
	r = bpf_map_lookup_elem(&listeners, &key);
	if (r && !r->closed) {
		fill_listen_drops(r, sk);
		r->closed = LISTEN_CLOSED;
	}
}

/* Whether a server's TCP Fast Open child leaves SYN_RECV other than to ESTABLISHED: closed by
 * its application (FIN_WAIT1; an untracked one is a metrics-only podnet's, which has no accept()
 * hook), or reset or timed out (CLOSE) after accept() took it, before, or with no accept() hook
 * to see it (untracked, told from the rare kernel paths that drop a child made for a completed
 * handshake by its Fast Open request, still attached). Its passive open ends there: the SYN
 * carried data into a socket of its own. A simultaneous open (a client) closed before its
 * handshake ended stays what its close makes of it. */
static __always_inline bool fast_open_ended(struct sock *sk, int oldstate, int newstate, const struct conn_info *known,
					    enum sock_read rd)
{
	if (oldstate != TCP_SYN_RECV)
		return false;
	if (newstate == TCP_FIN_WAIT1)
		return !known || known->role == ROLE_SERVER;
	if (newstate != TCP_CLOSE)
		return false;
	return known ? known->role == ROLE_SERVER && !known->start_ns : fast_open_child(sk, rd);
}

/* One interesting state change of a TCP socket. */
static __always_inline void on_state(struct sock *sk, int oldstate, int newstate, enum sock_read rd)
{
	__u64 key = (__u64)sk;
	struct conn_info *known;

	if (newstate == TCP_LISTEN || oldstate == TCP_LISTEN) { /* interesting(): LISTEN -> CLOSE only */
		on_listen(sk, newstate == TCP_LISTEN);
		return;
	}
	if (newstate == TCP_SYN_SENT) {
		on_syn_sent(sk, rd);
		return;
	}
	known = bpf_map_lookup_elem(&conns, &key);
	/* One call site: on_established is inlined. A Fast Open child closed in SYN_RECV is
	 * counted open first, in place (known) or in the entry that makes, then closed. */
	if (newstate == TCP_ESTABLISHED || fast_open_ended(sk, oldstate, newstate, known, rd)) {
		on_established(sk, oldstate, known, newstate == TCP_ESTABLISHED, rd);
		if (!known && newstate == TCP_CLOSE)
			known = bpf_map_lookup_elem(&conns, &key);
	}
	if (newstate == TCP_CLOSE) {
		on_close(sk, oldstate, known, rd);
	} else if (newstate == TCP_SYN_RECV && !known) {
		/* SYN_SENT -> SYN_RECV, a simultaneous open: remember it is a client (where its
		 * SYN_SENT entry is gone: evicted, or SYN_SENT before podnet loaded). */
		struct conn_info ci = { .role = ROLE_CLIENT };

		classify(&ci, sk, false, rd); /* sampled when established */
		track(key, &ci);
	}
}

#endif
