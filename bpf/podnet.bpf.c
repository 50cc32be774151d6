// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
//go:build ignore

/* TCP connect / accept / close events for podnet.
 *
 * Two hook sets, chosen by the loader after probing the kernel:
 *   - the state machine (state.h): tp_btf/inet_sock_set_state where BTF raw tracepoints load
 *     (cheaper; two instances, see recursion.h), else the classic tracepoint
 *     sock/inet_sock_set_state. All call on_state(), which reports to the ring or to the
 *     in-kernel aggregates.
 *   - syscalls: accept()/accept4() exit (the acceptor's pid is only known in process context)
 *     and connect() enter/exit (failures that never reach SYN_SENT).
 */
#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_tracing.h"
#include "bpf_endian.h"

#include "podnet.h"
#include "maps.h"
#include "sock.h"
#include "recursion.h"
#include "calls.h"
#include "state.h"
#include "progress.h"

#define EISCONN 106
#define EALREADY 114
#define EINPROGRESS 115

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keep the contract types in BTF so bpf2go can generate them. */
const struct event *unused_event __attribute__((unused));
const enum event_type *unused_event_type __attribute__((unused));
const enum role *unused_role __attribute__((unused));
const enum event_flag *unused_event_flag __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));
const enum close_reason *unused_close_reason __attribute__((unused));
const enum handshake_histogram *unused_handshake_histogram __attribute__((unused));
const struct listen_drops *unused_listen_drops __attribute__((unused));
const enum listen_closed *unused_listen_closed __attribute__((unused));
const enum agg_key_drop *unused_agg_key_drop __attribute__((unused));
const enum agg_key_flag *unused_agg_key_flag __attribute__((unused));
/* ...and the aggregate types complete: otherwise clang 14 leaves them forward declarations in
 * the inner map's BTF, which no loader can size. */
const struct agg_key *unused_agg_key __attribute__((unused));
const struct agg_value *unused_agg_value __attribute__((unused));

/* The state programs, tp_btf: two instances, so that a run the kernel skips because it
 * interrupted the first is done by the second (recursion.h). Attached in this order. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(state_tp_btf, struct sock *sk, int oldstate, int newstate)
{
	struct handled *h;

	if (!interesting(oldstate, newstate))
		return 0;
	if (is_tcp(sk, READ_TYPED))
		on_state(sk, oldstate, newstate, READ_TYPED);
	h = notes();
	if (h)
		note_handled(h, sk, change_tag(sk, oldstate, newstate));
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(state_tp_btf_nested, struct sock *sk, int oldstate, int newstate)
{
	struct handled *h;
	__u64 mark;

	if (!interesting(oldstate, newstate))
		return 0;
	h = notes();
	if (!h)
		return 0;
	mark = h->notes;
	if (!was_handled(h, sk, change_tag(sk, oldstate, newstate))) {
		count(COUNTER_RECURSION_COVERED);
		if (is_tcp(sk, READ_TYPED))
			on_state(sk, oldstate, newstate, READ_TYPED);
	}
	forget_nested(h, mark);
	return 0;
}

/* A socket reported an error: a connecting one keeps it for its close (on_connect_error); a
 * closed one may be a connect() collecting an earlier failure (on_failure_collected). Errors
 * are rare, so this costs nothing per connection. tp_btf: the classic tracepoint does not name
 * the socket (failure_collected_tracepoint does the second part without it). */
SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(error_report_tp_btf, struct sock *sk)
{
	int state = sk->__sk_common.skc_state;

	if (state == TCP_SYN_SENT && is_tcp(sk, READ_TYPED))
		on_connect_error(sk, READ_TYPED);
	else if (state == TCP_CLOSE && send_events && process_context && is_tcp(sk, READ_TYPED))
		on_failure_collected(sk);
	return 0;
}

/* The peer reset a connection: noted for its close reason (on_reset_received). Resets are rare:
 * nothing per connection. tp_btf only, like the error report (elsewhere sk_err says it). */
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(reset_received_tp_btf, struct sock *sk)
{
	on_reset_received(sk);
	return 0;
}

/* A SYN-ACK retransmitted (by its timer, or answering a retransmitted SYN): its request's first
 * SYN-ACK is kept to time the server's handshake (on_synack_retransmit). Rare: nothing per
 * connection. tp_btf only, like the error report. */
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(synack_retransmit_tp_btf, const struct sock *sk, const struct request_sock *req)
{
	on_synack_retransmit(req);
	return 0;
}

/* The state program, classic tracepoint. One instance is all it can be: classic tracepoint
 * programs share one per-CPU guard (bpf_prog_active) with every kprobe and classic tracepoint
 * program, the syscall ones included, so a second instance would be skipped exactly when the
 * first is. Its recursion misses stay loss (counted). */
SEC("tracepoint/sock/inet_sock_set_state")
int state_tracepoint(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol == IPPROTO_TCP && interesting(ctx->oldstate, ctx->newstate))
		on_state((struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate, READ_PROBED);
	return 0;
}

/* The error report, classic tracepoint: only a connect() collecting an earlier failure
 * (on_failure_collected_unnamed), where no tp_btf program sees it. Attached with the syscall
 * hooks, where the kernel has the tracepoint (5.14+); errors only. */
SEC("tracepoint/sock/inet_sk_error_report")
int failure_collected_tracepoint(struct trace_event_raw_inet_sk_error_report *ctx)
{
	if (ctx->error == 0 && ctx->dport == 0 && ctx->protocol == IPPROTO_TCP)
		on_failure_collected_unnamed();
	return 0;
}

/* The TCP socket of a descriptor's socket: an MPTCP socket's connection is its first subflow,
 * the TCP socket the state machine tracks. accept() on an MPTCP listener returns the MPTCP
 * socket when the client spoke MPTCP (a plain TCP client's connection comes as its TCP socket);
 * connect() on an MPTCP socket connects its first subflow, which holds the failure of one that
 * failed before its SYN (found by an independent check: such failures were in no record).
 * Kernels without MPTCP have no such socket. */
static __always_inline struct sock *tcp_socket_of(struct sock *sk, enum sock_read rd)
{
	__u16 protocol;

	if (!bpf_core_field_exists(((struct mptcp_sock *)0)->first))
		return sk;
	protocol = rd ? BPF_CORE_READ_BITFIELD(sk, sk_protocol) : BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	if (protocol != IPPROTO_MPTCP)
		return sk;
	sk = BPF_CORE_READ((struct mptcp_sock *)sk, first);
	if (sk && rd == READ_CAST)
		sk = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock));
	return sk;
}

/* Whether a socket was born since the start-up scan (so an entry counted its open): its lsndtime
 * is its creation, for a server that has sent nothing before accept() returned it. */
static __always_inline bool born_since_start(struct sock *sk, enum sock_read rd)
{
	__u32 born;

	if (!started_jiffies)
		return false;
	if (rd == READ_CAST)
		born = ((struct tcp_sock *)bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock)))->lsndtime;
	else
		born = BPF_CORE_READ((struct tcp_sock *)sk, lsndtime);
	return (__s32)(born - (__u32)started_jiffies) >= 0;
}

/* accept() returned fd: name the acceptor. `rd` is how the socket is read once found: with
 * probe reads, or (READ_CAST, kernels with bpf_rdonly_cast) with plain loads through a typed
 * pointer, which saves ~15 probe reads per accept. The loader attaches one pair, with events
 * only (send_events): a server's open is then always claimed (close_claims_open). */
static __always_inline int on_accept(long fd, enum sock_read rd)
{
	struct sock *sk;
	__u64 key, now;
	struct conn_info ci = { .role = ROLE_SERVER };
	struct conn_info *known;
	bool inserted = false;

	if (fd < 0)
		return 0;
	sk = sock_from_fd(fd, rd);
	if (!sk)
		return 0;
	sk = tcp_socket_of(sk, rd);
	if (!sk || !is_tcp(sk, rd))
		return 0;
	key = (__u64)sk;
	known = bpf_map_lookup_elem(&conns, &key);
	if (known && known->role == ROLE_CLIENT) {
		/* accept() returns passive opens only: a client's entry under one is an earlier
		 * connection's at this socket memory, whose close the kernel never showed podnet (as
		 * on_established drops it; here first, for a child accepted before its handshake's
		 * end). Claimed, it would fail, and the connection be reported as that connect. */
		count(COUNTER_CLOSE_UNSEEN);
		agg_close_unseen(known);
		bpf_map_delete_elem(&conns, &key);
		known = NULL;
	}
	if (!known) {
		int state = sock_state(sk, rd);

		if (state == TCP_CLOSE)
			return 0; /* already closed and reported before accept() returned it */
		/* Or closing now, on another CPU: its state program, which reported the open and
		 * deleted the entry, runs before the kernel stores CLOSE, but after the error that
		 * reset, timeout or abort ends the connection with (the only ways one not accepted
		 * yet closes). Tracked again, it was reported twice and left an entry for a closed
		 * socket (found by an independent check). An established socket with an error of
		 * its own (an ICMP one, its listener set IP_RECVERR) and no entry (evicted) is left
		 * untracked too: its close counts untracked. */
		if (rd ? sk->sk_err : BPF_CORE_READ(sk, sk_err))
			return 0;
		/* Still in SYN_RECV (TCP Fast Open): the handshake's end will count it. Otherwise it
		 * was established before it was tracked: its entry was evicted from a full `conns`
		 * after its handshake counted its open (born since the start-up scan), or it waited in
		 * the queue since before podnet loaded. Either way its open is not counted (again), nor
		 * its duration (its start is unknown), as for a found connection; the older one is
		 * counted open, for its close to take (the evicted one's open is counted already). */
		classify(&ci, sk, true, rd);
		if (state != TCP_SYN_RECV) {
			/* Its bytes count from here: what it moved before was counted by its evicted
			 * entry's reads (up to the last of them), or happened before podnet loaded. */
			struct event totals = {};

			fill_close(&totals, sk, rd, false, state);
			counted_from(&ci, &totals);
			if (!born_since_start(sk, rd)) {
				ci.open_unseen = 1;
				/* Kept whatever the sampling, as its client end, found at start, is: the
				 * two ends of a connection agree (found by an independent check). */
				ci.sampled_out = 0;
			}
		}
		/* Inserted claimed, as a found entry is below (a close may come meanwhile); unless
		 * the handshake's end inserted one since the lookup, which is claimed as found. */
		ci.unaccepted = key + OPEN_ACCEPTING;
		inserted = !bpf_map_update_elem(&conns, &key, &ci, BPF_NOEXIST);
		known = bpf_map_lookup_elem(&conns, &key);
		if (!known)
			return 0;
		/* Closed on another CPU between the checks above and the insert, by a close that
		 * never saw this entry (it would have marked it OPEN_CLOSED): it reported what there
		 * was; this entry would be left for a closed socket. (The kernel stores CLOSE only
		 * after the close's program, so a close that ends just now can still slip by.) */
		if (inserted && sock_state(sk, rd) == TCP_CLOSE &&
		    exchange_unaccepted(known, key + OPEN_ACCEPTING, 0) == key + OPEN_ACCEPTING) {
			bpf_map_delete_elem(&conns, &key);
			return 0;
		}
		/* Counted open only in its own entry, whose close takes it out: counted before the
		 * insert, an entry the handshake's end made meanwhile (which counted it) left that 1
		 * in `active` for good (a Fast Open connection accepted while its handshake ended). */
		if (inserted && ci.open_unseen)
			count_open_only(sk, known, rd);
	}
	/* Claimed before any write into the entry: a close on another CPU may report the open and
	 * free the entry at any moment until then (close_claims_open). */
	if (!inserted && !accept_claims_open(known, key))
		return 0;
	now = bpf_ktime_get_boot_ns();
	known->opened_ns = now; /* its accept record's time, also when sampling holds the record back to its close */
	known->role = ROLE_SERVER;
	known->pid = bpf_get_current_pid_tgid() >> 32;
	known->cgroup_id = fallback_cgroup_id();
	current_process_comm(known->comm, rd);
	ci = *known;
	accept_done(known, key);
	to_ring(sk, EVENT_ACCEPT, &ci, 0, now, rd); /* the aggregates count it at its handshake */
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept(ctx->ret, READ_PROBED);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept(ctx->ret, READ_PROBED);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int accept4_cast(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept(ctx->ret, READ_CAST);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int accept_cast(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept(ctx->ret, READ_CAST);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	connect_call_begin(ctx->args[1], ctx->args[0], ctx->args[2]);
	return 0;
}

/* Whether a connect's result is a failure: not success, nor one still under way. */
static __always_inline bool connect_failed(long ret)
{
	return ret < 0 && ret != -EINPROGRESS && ret != -EALREADY && ret != -EISCONN;
}

/* A connect that failed before SYN_SENT (no route, no free port, ...), which no state change
 * shows: to every sink, its peer as the caller passed it (uaddr, addrlen: user memory, read once:
 * the ring's record is the aggregates' event, with the process). */
static __always_inline void report_failed_connect(struct sock *sk, long ret, __u64 uaddr, __u32 addrlen)
{
	struct event local = { .type = EVENT_CONNECT, .role = ROLE_CLIENT, .error = -ret };
	struct event *e;
	__u16 family, port;
	__u32 flowinfo;
	__u8 peer[16];

	if (!connect_dest(uaddr, addrlen, &family, peer, &port, &flowinfo) ||
	    !connect_attempted(ret, addrlen, sk, BPF_CORE_READ(sk, __sk_common.skc_family), family, peer, flowinfo))
		return;
	fill_sock(&local, sk, READ_PROBED);
	/* The peer as the caller asked for it: the socket has none when connect() failed before
	 * SYN_SENT. */
	local.family = family;
	local.peer_port = port;
	__builtin_memcpy(local.peer_addr, peer, sizeof(peer));
	if (excluded_peer(local.family, local.peer_addr, local.peer_port))
		return;
	if (aggregate_in_kernel)
		agg_add(&local, false); /* a failure: never counted open */
	if (!ring_keeps(EVENT_CONNECT))
		return;
	local.timestamp_ns = bpf_ktime_get_boot_ns();
	e = reserve(EVENT_CONNECT, ROLE_CLIENT, local.timestamp_ns);
	if (!e)
		return;
	__builtin_memcpy(e, &local, sizeof(*e));
	e->pid = bpf_get_current_pid_tgid() >> 32;
	if (sample_one_in > 1)
		e->sample_one_in = 1; /* a failed connect is kept whatever the sampling */
	current_process_comm(e->comm, READ_PROBED);
	submit(e);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	long ret = ctx->ret; /* first: read after a call, clang derives a pointer into ctx the verifier refuses */
	struct connect_call *found = this_threads_connect();
	struct connect_call call;
	struct sock *sk;

	if (!found)
		return 0;
	call = *found;
	connect_call_end(found);
	if (call.async || call.collected || !connect_failed(ret))
		return 0;
	sk = sock_from_fd(call.fd, READ_PROBED); /* only now: failures are rare, the lookup is not cheap */
	if (sk)
		sk = tcp_socket_of(sk, READ_PROBED);
	if (sk && is_tcp(sk, READ_PROBED))
		report_failed_connect(sk, ret, call.uaddr, call.addrlen);
	return 0;
}

/* io_uring's accept (IORING_OP_ACCEPT) makes no accept() system call: its completion names the
 * acceptor instead, as exit_accept does, when its result is a descriptor of the process (not a
 * direct one: file_slot set, a slot of the ring's fixed-file table). A completion runs in the
 * submitter's context or in a thread of its process (task work, io-wq worker, SQPOLL thread),
 * which shares its descriptor table. Accepts that name no descriptor keep their accept record
 * for their close (on_close), as before; so do a multishot accept's, whose completions come
 * with no request (uring_completed returns on those). */
static __always_inline void uring_accepted(struct io_kiocb *req, int fd)
{
	struct io_accept *a = (struct io_accept *)&req->cmd; /* io_kiocb_to_cmd */

	if (BPF_CORE_READ(a, file_slot))
		return;
	on_accept(fd, READ_PROBED);
}

/* io_uring's connect (IORING_OP_CONNECT) makes no connect() system call, so a failure before
 * its SYN (no route) reaches neither the syscall hooks nor a state program. Its completion
 * does, for every io_uring completion on the node: req and res are the completion's, and only
 * failures and results that may be descriptors (res >= 0) read more (the request's opcode).
 * Attached with the syscall hooks, where the kernel has io_uring; its cost per completion is
 * BenchmarkURingCompletion's (a tp_btf variant measured no cheaper, so there is one program
 * for both hook modes). */
static __always_inline void uring_completed(struct io_kiocb *req, int res)
{
	struct io_connect *c;
	struct socket *sock;
	struct file *file;
	struct sock *sk;

	if (!req)
		return;
	if (res >= 0) { /* a no-op, a read, a write... or an accept's descriptor */
		if (BPF_CORE_READ(req, opcode) == IORING_OP_ACCEPT)
			uring_accepted(req, res);
		return;
	}
	if (!connect_failed(res))
		return;
	if (BPF_CORE_READ(req, opcode) != IORING_OP_CONNECT)
		return;
	c = (struct io_connect *)&req->cmd; /* io_kiocb_to_cmd: a request's command is its first bytes */
	file = BPF_CORE_READ(c, file);
	sock = file ? BPF_CORE_READ(file, private_data) : NULL;
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return;
	sk = BPF_CORE_READ(sock, sk);
	if (sk)
		sk = tcp_socket_of(sk, READ_PROBED);
	if (!sk || !is_tcp(sk, READ_PROBED))
		return;
	/* Its SYN was sent: the state program reports its failure at its close from SYN_SENT. A
	 * connect that fails before leaves (or sets back) the destination port 0; so does one that
	 * reached SYN_SENT and found no free tuple, which the state program reported too. */
	if (BPF_CORE_READ(sk, __sk_common.skc_dport) || unsent_failure_reported(sk))
		return;
	report_failed_connect(sk, res, (__u64)BPF_CORE_READ(c, addr), BPF_CORE_READ(c, addr_len));
}

SEC("tracepoint/io_uring/io_uring_complete")
int uring_complete(struct trace_event_raw_io_uring_complete *ctx)
{
	int res = ctx->res; /* first: read after a call, clang derives a pointer into ctx the verifier refuses */

	uring_completed(ctx->req, res);
	return 0;
}

/* Service -> backend (nat.h): attached by the loader at POST_ROUTING in the node's network
 * namespace, for IPv4 and IPv6, only when asked to and where the kernel has netfilter programs
 * (6.4+); never loaded otherwise. */
SEC("netfilter")
int nat_seen(struct bpf_nf_ctx *ctx)
{
	return nat_note(ctx);
}

/* Live progress of open connections (progress.h): run by user space (BPF_PROG_TEST_RUN) every
 * metrics interval; never attached. Marked, it takes the marked set user space names (its front
 * first, then the hash behind it), and walks `conns` too only when a mark was lost to a full
 * set; unmarked, it walks `conns`. A program that walks maps, because this kind of kernel
 * refuses map-element iterators (EPERM). The loader keeps one: the cast variant reads each
 * socket with plain loads (6.2+), the other with probe reads. */
static long progress_cast_cb(struct bpf_map *map, __u64 *key, struct conn_info *ci, void *unused)
{
	return walked(key, ci, READ_CAST);
}

static long progress_probed_cb(struct bpf_map *map, __u64 *key, struct conn_info *ci, void *unused)
{
	return walked(key, ci, READ_PROBED);
}

static long marked_cast_cb(struct bpf_map *map, __u64 *key, __u8 *unused_value, void *unused)
{
	return marked_of(map, key, READ_CAST);
}

static long marked_probed_cb(struct bpf_map *map, __u64 *key, __u8 *unused_value, void *unused)
{
	return marked_of(map, key, READ_PROBED);
}

static long front_cast_cb(__u64 i, void *unused)
{
	return front_of(i, READ_CAST);
}

static long front_probed_cb(__u64 i, void *unused)
{
	return front_of(i, READ_PROBED);
}

/* One read, with one variant's callbacks (constants once inlined). */
static __always_inline void read_progress(void *front_cb, void *marked_cb, void *walk_cb)
{
	if (marked_reads) {
		bpf_loop(front_mask + 1, front_cb, NULL, 0);
		if (read_set)
			bpf_for_each_map_elem(&marked_b, marked_cb, NULL, 0);
		else
			bpf_for_each_map_elem(&marked_a, marked_cb, NULL, 0);
		if (!read_all)
			return;
	}
	bpf_for_each_map_elem(&conns, walk_cb, NULL, 0);
}

SEC("raw_tp")
int progress_cast(void *ctx)
{
	read_progress(front_cast_cb, marked_cast_cb, progress_cast_cb);
	return 0;
}

SEC("raw_tp")
int progress_probed(void *ctx)
{
	read_progress(front_probed_cb, marked_probed_cb, progress_probed_cb);
	return 0;
}

/* The listener scan (progress.h, every metrics interval, run by user space): every listening
 * socket of `listeners` gets its drops, netns, port and cgroup written into its value. */
static long listener_cb(struct bpf_map *map, __u64 *key, struct listen_drops *r, void *unused)
{
	return listener_of(map, key, r);
}

SEC("raw_tp")
int scan_listeners(void *ctx)
{
	bpf_for_each_map_elem(&listeners, listener_cb, NULL, 0);
	return 0;
}

/* Data moved (marked reads, progress.h): a send (tcp_sendmsg_locked, per chunk a sendmsg
 * queues) or data arriving (sk_data_ready, per wakeup of the socket's reader; it fires for every
 * kind of socket, so others are left at a type check). The socket is marked for the next live
 * read; nothing else, so a call pays a dispatch and, most of the time, one load of its slot
 * (progress.h). Two programs, so neither is ever skipped for the other (the kernel's recursion
 * guard is per program). Loaded only for marked reads (6.12+). */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(sent_tp_btf, struct sock *sk)
{
	mark((__u64)sk);
	return 0;
}

/* The states in which bytes can still arrive. The others wake a reader for no byte to count
 * early: a listener's wakeup (a connection to accept), the peer's FIN (the socket is then in
 * CLOSE_WAIT, CLOSING, or CLOSE after FIN_WAIT2): a connect/close workload must not pay a mark
 * per end. Data that came with the FIN is counted by the next send's mark or the close. */
#define RECEIVING_STATES (TCPF_ESTABLISHED | TCPF_FIN_WAIT1 | TCPF_FIN_WAIT2)

SEC("tp_btf/sk_data_ready")
int BPF_PROG(arrived_tp_btf, struct sock *sk)
{
	if (((1 << sk->__sk_common.skc_state) & RECEIVING_STATES) && is_tcp(sk, READ_TYPED))
		mark((__u64)sk);
	return 0;
}

/* MPTCP queues data onto its TCP subflows itself, with no tcp_sendmsg_locked: its scheduler's
 * choice of a subflow, at every push, marks each subflow it weighs (a subflow weighed but not
 * used costs the read one visit). Arrivals on subflows are marked by sk_data_ready. Loaded
 * where the kernel has MPTCP; with a BPF scheduler (no tracepoint) a subflow is read by the
 * arrivals of its own data or at its close. */
SEC("tp_btf/mptcp_subflow_get_send")
int BPF_PROG(mptcp_sent_tp_btf, struct mptcp_subflow_context *subflow)
{
	mark((__u64)BPF_CORE_READ(subflow, tcp_sock));
	return 0;
}

/* The start-up scan (progress.h), in two passes over every process's files. */
SEC("iter/task_file")
int find_listeners(struct bpf_iter__task_file *ctx)
{
	struct sock *sk = file_stream_sock(ctx->file, true);
	struct task_struct *task = ctx->task;

	if (sk && task)
		note_listener(sk, task->tgid);
	return 0;
}

SEC("iter/task_file")
int scan_listen_drops(struct bpf_iter__task_file *ctx)
{
	struct sock *sk = file_stream_sock(ctx->file, true);
	struct task_struct *task = ctx->task;

	if (sk && task)
		write_listen_drops(ctx->meta->seq, sk, task->tgid);
	return 0;
}

SEC("iter/task_file")
int find_connections(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct sock *sk;

	if (!started_jiffies)
		started_jiffies = bpf_jiffies64();
	/* First what earlier runs owe (progress.h), also in the scan's last call (no task). */
	if (!write_owed(ctx->meta->seq))
		return 0;
	if (task) {
		sk = file_stream_sock(ctx->file, true);
		if (sk)
			sk = tcp_beneath(sk);
		if (sk && !find_connection(ctx->meta->seq, task, ctx->fd, sk))
			return 0; /* this run's output is dropped, the owed records with it */
	}
	owed_n = 0;
	return 0;
}
