/* SPDX-License-Identifier: Apache-2.0 */
/* Open connections, read by programs that user space runs, not by hooks:
 *   - progress (every metrics interval): what each open connection sent, received and
 *     retransmitted since the last read is added to its metric key, in the current aggregation
 *     interval map (both aggregation modes). A close adds only the rest (state.h). Unmarked,
 *     the read walks `conns` and also counts each open connection active in its key. Marked
 *     (in-kernel aggregation where the kernel has the hooks, issue 12), it visits only the
 *     sockets that sent or received data since the last read (marked by the tcp_sendmsg_locked
 *     and sk_data_ready programs) and those still sending: an idle connection costs nothing,
 *     and `active` is kept by opens and closes (aggregate.h).
 *   - the start-up scan (iter/task_file, once): every TCP socket some process holds, in every
 *     network namespace, is found; established ones podnet does not track yet (they predate it)
 *     are tracked from then on, so their bytes since then and their close are counted, and
 *     reported to user space as EVENT_FOUND records written to the iterator's output.
 *
 * Exactly once, lock-free: a read moves conn_info.counted_* forward with compare-and-swap, and
 * the close swaps COUNTED_CLOSED in; whichever comes second sees the other's value. */
#ifndef PODNET_PROGRESS_H
#define PODNET_PROGRESS_H

#include "podnet.h"
#include "maps.h"
#include "sock.h"
#include "aggregate.h"
#include "state.h"
#include "select.h"
#include "marks.h"

#define SOCK_BINDPORT_LOCK 8

/* The start-up scan running now, set by user space before each (never 0). */
volatile __u8 scan_id = 1;

/* Found records the scan owes its output. A record that does not fit the output buffer is
 * dropped by the kernel, which retries the object in the next read, after user space took the
 * full buffer. By then the connection may have closed: tracked already, its close was
 * reported, but the retry sees a closed socket (or, its descriptor closed, no object at all)
 * and reported nothing, so the close came with no record of the connection (a flaky run of
 * TestConnectionClosingDuringTheScanIsCountedOnce). So the record is kept here instead and written first by the scan's next
 * run, whatever object that is, the last call of the scan (no object) included. A run's
 * output is dropped whole when any of its writes does not fit, so the owed records are given
 * up only by a run whose writes all fit. OWED_MAX: the run after a full buffer starts an empty
 * one (32 KiB, ~200 records), so one record is ever owed; two for margin. With no room left
 * (never seen), it is left to the kernel's retry, as before (lost if the connection closes
 * first). Bytes, 8-aligned: a second Go type for struct event is refused by bpf2go, and an
 * unaligned copy is one byte per store. */
#define OWED_MAX 2
__u8 owed[OWED_MAX][sizeof(struct event)] __attribute__((aligned(8)));
volatile __u32 owed_n;

/* When the start-up scan first ran (jiffies), set by it: a socket born since then was seen open
 * by the state programs (on_accept tells an eviction from an older connection by it). 0 until
 * then, and on kernels without iterators. */
volatile __u64 started_jiffies;

/* Established, or closing but not closed: the connection was reported open and not yet
 * closed. */
static __always_inline bool open_state(int state)
{
	return state == TCP_ESTABLISHED || state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 ||
	       state == TCP_CLOSE_WAIT || state == TCP_CLOSING || state == TCP_LAST_ACK;
}

/* Whether the socket left the connection hash table: a close is under way (tcp_set_state
 * unhashes before the state changes), or it moved to TIME_WAIT. A probe read: the start-up
 * scan's socket pointers are not typed for the verifier (see find_connection). */
static __always_inline bool sock_unhashed(struct sock *sk)
{
	return !BPF_CORE_READ(sk, __sk_common.skc_node.pprev);
}

/* Set by user space before each marked read: the set it takes (0: marked_a, 1: marked_b), and
 * whether it also walks every tracked connection (a socket found its set full since the last
 * read, so the set may lack it). */
volatile __u8 read_set = 0;
volatile __u8 read_all = 0;

/* How much a monotonic total grew since it was last counted, now counted; 0 when the close
 * claimed the count first (it then counts the growth itself). Only one read runs at a time,
 * so a failed swap can only be the close's. */
static __always_inline __u64 count_growth64(__u64 *counted, __u64 total)
{
	__u64 old = *(volatile __u64 *)counted;

	if (old == COUNTED_CLOSED || total <= old)
		return 0;
	if (__sync_val_compare_and_swap(counted, old, total) != old)
		return 0;
	return total - old;
}

/* A connection tracked only now, open already (found at start, or taken at its accept): its
 * totals so far count as reported, so its bytes count from here. */
static __always_inline void counted_from(struct conn_info *ci, const struct event *totals)
{
	ci->counted_sent = totals->bytes_sent;
	ci->counted_received = totals->bytes_received;
	ci->counted_retrans = totals->retransmits;
}

/* Whether a total grew past its count (never once the close has claimed it). */
static __always_inline bool grew(__u64 *counted, __u64 total)
{
	__u64 old = *(volatile __u64 *)counted;

	return old != COUNTED_CLOSED && total > old;
}

/* Adds a total's growth to a sum that closes add to concurrently; nothing, not even the locked
 * add, for the idle connections that are most of them. */
static __always_inline void add_growth(__u64 *sum, __u64 *counted, __u64 total)
{
	__u64 growth = count_growth64(counted, total);

	if (growth)
		__sync_fetch_and_add(sum, growth);
}

/* Data sent and not acknowledged yet: the totals of such a socket can still move with no call
 * to mark it (the rest of a send goes out as ACKs come back; retransmissions), so a marked read
 * keeps it marked. (Arriving data marks its socket itself.) */
static __always_inline bool in_flight(struct sock *sk, enum sock_read rd)
{
	struct tcp_sock *tp;

	if (rd == READ_CAST) {
		tp = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock));
		return tp->write_seq != tp->snd_una;
	}
	tp = (struct tcp_sock *)sk;
	return BPF_CORE_READ(tp, write_seq) != BPF_CORE_READ(tp, snd_una);
}

/* One tracked connection, at a periodic read; returns whether a marked read keeps it marked (it
 * moved data since the last read, or may still). An unmarked read counts it active in its key;
 * a marked one leaves that to opens and closes (aggregate.h) and, for a connection that moved
 * nothing, stops at its totals: no key, no map update. */
static __always_inline bool progress_of(__u64 *key, struct conn_info *ci, enum sock_read rd)
{
	struct event e = {};
	struct agg_key k;
	struct agg_value *v;
	struct sock *sk;
	bool folded;
	int state;

	if (!key || !ci || (!ci->start_ns && ci->role == ROLE_CLIENT) || ci->excluded)
		return false; /* the end of the walk, a connect still in progress, or left out */
	sk = (struct sock *)*key;
	if (rd == READ_CAST)
		sk = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock));
	state = sock_state(sk, rd);
	if (!open_state(state))
		return false; /* closing right now (its close counts it), or a close never seen */
	count(COUNTER_PROGRESS_VISITED);
	fill_close(&e, sk, rd, ci->role == ROLE_CLIENT, STATE_NOW);
	if (marked_reads && !grew(&ci->counted_sent, e.bytes_sent) && !grew(&ci->counted_received, e.bytes_received) &&
	    !grew(&ci->counted_retrans, e.retransmits))
		return in_flight(sk, rd);
	e.role = ci->role;
	fill_sock(&e, sk, rd);
	if (!e.cgroup_id)
		e.cgroup_id = ci->cgroup_id;
	/* Keyed as its open and close are: by the backend its connect was sent to, when metrics
	 * split by backend (an independent check found live bytes in a key without one). */
	if (backend_in_metrics) {
		e.backend_port = ci->backend_port;
		__builtin_memcpy(e.backend_addr, ci->backend_addr, sizeof(e.backend_addr));
		if (ci->dialled)
			e.flags |= EVENT_FLAG_DIALLED;
	}
	agg_key_of(&k, &e);
	v = agg_value_of(&k, &folded);
	if (!v)
		return true;
	if (!marked_reads)
		v->active++; /* only this read writes it, and one read runs at a time */
	add_growth(&v->bytes_sent, &ci->counted_sent, e.bytes_sent);
	add_growth(&v->bytes_received, &ci->counted_received, e.bytes_received);
	add_growth(&v->retransmits, &ci->counted_retrans, e.retransmits);
	return true;
}

/* A socket taken out of the marked set (or front slot) being read: read, and marked again in
 * the current one while it still moves data. A socket podnet does not track is dropped. */
static __always_inline void read_marked(__u64 key, enum sock_read rd)
{
	struct conn_info *ci = bpf_map_lookup_elem(&conns, &key);

	if (ci && progress_of(&key, ci, rd))
		mark(key);
}

/* A socket of the marked set being read. */
static __always_inline long marked_of(struct bpf_map *set, __u64 *key, enum sock_read rd)
{
	read_marked(*key, rd);
	bpf_map_delete_elem(set, key);
	return 0;
}

/* Slot i of the front's half the read takes (read_set): its socket, if any, read like one of
 * the set, and the slot freed for the hooks' next turn on this half. */
static __always_inline long front_of(__u32 i, enum sock_read rd)
{
	__u32 slot = front_half(read_set) + (i & front_mask);
	__u64 *front = bpf_map_lookup_elem(&marked_front, &slot);
	__u64 key;

	if (!front)
		return 0;
	key = *front;
	if (!key)
		return 0;
	*front = 0;
	read_marked(key, rd);
	return 0;
}

/* A tracked connection, at a walk of every one: marked too when marked reads will want it. */
static __always_inline long walked(__u64 *key, struct conn_info *ci, enum sock_read rd)
{
	if (progress_of(key, ci, rd) && marked_reads)
		mark(*key);
	return 0;
}

/* The TCP (or, for listeners, MPTCP) socket behind an iterated file, or NULL. */
static __always_inline struct sock *file_stream_sock(struct file *file, bool mptcp)
{
	struct socket *sock;
	struct sock *sk;
	__u16 family, protocol;

	if (!file)
		return NULL;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return NULL;
	sk = sock->sk;
	if (!sk)
		return NULL;
	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	if (BPF_CORE_READ_BITFIELD(sk, sk_type) != SOCK_STREAM)
		return NULL;
	protocol = BPF_CORE_READ_BITFIELD(sk, sk_protocol);
	if (protocol == IPPROTO_TCP || (mptcp && protocol == IPPROTO_MPTCP))
		return sk;
	return NULL;
}

/* The TCP socket an iterated stream socket stands for: itself, or beneath an MPTCP socket its
 * first subflow (the listener, or the connection's first path: what the state programs see;
 * further subflows, made by the kernel, are in no descriptor table). NULL once that subflow is
 * gone. A plain pointer, read with a probe read. */
static __always_inline struct sock *tcp_beneath(struct sock *sk)
{
	if (BPF_CORE_READ_BITFIELD(sk, sk_protocol) != IPPROTO_MPTCP)
		return sk;
	return BPF_CORE_READ((struct mptcp_sock *)sk, first);
}

/* A listener the start-up scan found (it began before podnet loaded) joins `listeners`: the TCP
 * socket beneath an MPTCP listener, which is where drops are counted. */
static __always_inline void note_listening(struct sock *sk, __u32 tgid)
{
	if (!keep_listeners)
		return;
	sk = tcp_beneath(sk);
	if (sk)
		add_listener(sk, tgid, false);
}

/* The start-up scan's first pass: every listening port, per network namespace. MPTCP
 * listeners too (Go 1.24+ listens with MPTCP by default): what they accept from plain TCP
 * clients are TCP sockets on their port. */
static __always_inline void note_listener(struct sock *sk, __u32 tgid)
{
	struct listen_port lp = {};
	__u8 one = 1;

	if (sk->__sk_common.skc_state != TCP_LISTEN)
		return;
	lp.netns_ino = sk->__sk_common.skc_net.net->ns.inum;
	lp.port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	bpf_map_update_elem(&listen_ports, &lp, &one, BPF_ANY);
	note_listening(sk, tgid);
}

/* Whether a local port outside the socket's namespace's ephemeral range (net.ipv4.
 * ip_local_port_range, both families: where connect() picks a client's local port) faces a peer
 * port inside it: a server's end. The range is one u32 (low | high << 16) from 6.3 on, two ints
 * before. Probe reads: the start-up scan's, once per socket. */
static __always_inline bool serves_ephemeral(struct sock *sk, __u16 local, __u16 peer)
{
	struct net *net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	__u32 r[2] = {};

	if (bpf_core_field_size(net->ipv4.ip_local_ports.range) == sizeof(__u32)) {
		bpf_core_read(r, sizeof(__u32), &net->ipv4.ip_local_ports.range);
		r[1] = r[0] >> 16;
		r[0] &= 0xffff;
	} else {
		bpf_core_read(r, sizeof(r), &net->ipv4.ip_local_ports.range);
	}
	return (local < r[0] || local > r[1]) && peer >= r[0] && peer <= r[1];
}

/* The listener scan (issue 15, run by user space each metrics interval): every listening TCP
 * socket with its drops (all of its socket's: a socket listening again after a shutdown() counts
 * its earlier period's too on this walk, which runs only where `listeners` is unused or full).
 * An MPTCP listener (Go 1.24+ listens so by default) drops on the TCP listener beneath it, which
 * no descriptor names. */
static __always_inline void write_listen_drops(struct seq_file *seq, struct sock *sk, __u32 tgid)
{
	struct listen_drops r = { .tgid = tgid };

	if (sk->__sk_common.skc_state != TCP_LISTEN)
		return;
	sk = tcp_beneath(sk);
	if (!sk)
		return;
	fill_listen_drops(&r, sk);
	bpf_seq_write(seq, &r, sizeof(r));
}

/* One listener of `listeners`, at the listener scan: its value refreshed; one that stopped
 * listening reported with the count its close kept, then dropped at the next scan; an entry
 * whose socket no longer listens otherwise (a scan that raced its close) dropped. */
static __always_inline long listener_of(struct bpf_map *map, __u64 *key, struct listen_drops *r)
{
	struct sock *sk = (struct sock *)*key;

	if (r->closed) { /* its last count, taken at its close: reported once, then dropped */
		if (r->closed == LISTEN_CLOSED)
			r->closed = LISTEN_REPORTED;
		else
			bpf_map_delete_elem(map, key);
		return 0;
	}
	if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_LISTEN) {
		bpf_map_delete_elem(map, key);
		return 0;
	}
	fill_listen_drops(r, sk);
	return 0;
}

/* Writes the owed records to the output; false when they did not fit (all stay owed). */
static __always_inline bool write_owed(struct seq_file *seq)
{
	__u32 n = owed_n;

#pragma unroll
	for (int i = 0; i < OWED_MAX; i++) {
		if (i < n && bpf_seq_write(seq, owed[i], sizeof(owed[i])))
			return false;
	}
	return true;
}

/* Keeps a record that did not fit for the next run; false when there is no room. */
static __always_inline bool owe(const struct event *e)
{
	__u32 n = owed_n;

	if (n >= OWED_MAX)
		return false;
	__builtin_memcpy(owed[n], e, sizeof(*e));
	owed_n = n + 1;
	return true;
}

/* The start-up scan's second pass: an established connection nobody tracks yet predates
 * podnet. Tracked from now, its bytes so far counted as already reported, and written out.
 * False when its record did not fit the output (owed, or left to the kernel's retry). */
static __always_inline bool find_connection(struct seq_file *seq, struct task_struct *task, __u32 fd, struct sock *sk)
{
	struct conn_info ci = { .found = scan_id };
	struct conn_info *known;
	struct listen_port lp = {};
	struct event e = {};
	__u64 key = (__u64)sk;
	bool counted, wrote;
	int state;

	/* Probe reads only: a socket reached through bpf_sock_from_file is an untrusted pointer on
	 * some kernels (one 6.18.44 build here marks socket->sk so, an earlier build of it did not),
	 * and no helper, bpf_skc_to_tcp_sock included, takes one; an MPTCP connection's subflow is
	 * a plain pointer read from its socket. Once per socket at Start. */
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (!open_state(state) || sock_unhashed(sk))
		return true;
	fill_sock(&e, sk, READ_PROBED);
	lp.netns_ino = e.netns_ino;
	lp.port = e.local_port;
	/* The kernel keeps no role. A port bound explicitly says client: accepted sockets never
	 * have the bind lock (sk_clone_lock clears their listener's), so only a client that bound
	 * its port before connect() does (it said server until an independent check found such
	 * clients in series of their own, a byte too many: payload_sent takes the SYN out by role).
	 * Then a listener on the local port, SO_REUSEADDR (which accepted sockets inherit from
	 * their listener - Go, Python, nginx and most servers set it - and clients rarely set
	 * without binding), or a local port outside the ephemeral range facing a peer's port
	 * inside it (the listener closed since, its connections draining) says server. */
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks) & SOCK_BINDPORT_LOCK)
		ci.role = ROLE_CLIENT;
	else if (bpf_map_lookup_elem(&listen_ports, &lp) || BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_reuse) ||
		 serves_ephemeral(sk, e.local_port, e.peer_port))
		ci.role = ROLE_SERVER;
	else
		ci.role = ROLE_CLIENT;
	fill_close(&e, sk, READ_PROBED, ci.role == ROLE_CLIENT, STATE_NOW);
	ci.pid = task->tgid;
	ci.found_fd = fd;
	ci.excluded = excluded_peer(e.family, e.peer_addr, ci.role == ROLE_SERVER ? e.local_port : e.peer_port);
	task_process_comm(task, ci.comm, READ_TYPED); /* the process's name, as connect and accept take it */
	ci.start_ns = bpf_ktime_get_boot_ns();
	ci.est_seq = sock_write_seq(sk, READ_PROBED);
	counted_from(&ci, &e);
	/* Marked reads: counted open before it is tracked, so that no close can take it out first;
	 * taken out again below where the scan does not track it after all. */
	e.role = ci.role;
	counted = marked_reads && !ci.excluded;
	if (counted)
		remember_open(&ci, &e, count_found(&e, 1, false));
	if (bpf_map_update_elem(&conns, &key, &ci, BPF_NOEXIST)) {
		/* Tracked already: opened since podnet loaded, or found by this scan in a run whose
		 * record was dropped, or held by another process. */
		if (counted)
			count_found(&e, -1, ci.active_folded);
		known = bpf_map_lookup_elem(&conns, &key);
		if (!known || known->found != ci.found || known->pid != ci.pid || known->found_fd != fd ||
		    known->found_reported)
			return true;
		ci = *known;
	}
	/* Closing meanwhile? A close unhashes the socket before its state program runs (the state
	 * is stored after): if it is unhashed now, whichever of the two removes the entry says
	 * what happened. Deleted here: the close found nothing, or will (untracked), so nothing
	 * is reported. Already gone: the close reported it, so the find is reported too. */
	if (sock_unhashed(sk) && !bpf_map_delete_elem(&conns, &key)) {
		if (counted)
			count_found(&e, -1, ci.active_folded);
		return true;
	}
	if (ci.excluded)
		return true; /* tracked, so that its close is no untracked one, but reported nowhere */
	/* Data queued or unacknowledged when found goes out with no send call to mark it: marked
	 * now, or marked reads would count none of it while the connection stays open (found by an
	 * independent check: 1 MiB written before Start, the server's end counting it, the client's
	 * flat until its close). The read keeps it marked while data is in flight (progress_of). */
	if (marked_reads && in_flight(sk, READ_PROBED))
		mark(key);
	e.timestamp_ns = ci.start_ns;
	e.type = EVENT_FOUND;
	e.role = ci.role;
	e.flags = EVENT_FLAG_FOUND | EVENT_FLAG_ROLE_GUESSED;
	if (process_context) { /* process attributes on (state.h fill_event) */
		e.pid = ci.pid;
		__builtin_memcpy(e.comm, ci.comm, sizeof(e.comm));
	}
	/* Logs sampling leaves none of them out: a start-up's backlog of records, each weighing 1
	 * (its close says so too), rather than a share decided without seeing how it ends. */
	if (sample_one_in > 1)
		e.sample_one_in = 1;
	/* Did not fit (this run's output is dropped): owed to the next run's, and so reported for
	 * this object's retry; with no room owed, the retry writes it. */
	wrote = !bpf_seq_write(seq, &e, sizeof(e));
	if (!wrote && !owe(&e))
		return false;
	known = bpf_map_lookup_elem(&conns, &key);
	if (known && known->found == ci.found)
		known->found_reported = 1;
	return wrote;
}

#endif
