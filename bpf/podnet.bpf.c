// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
//go:build ignore

/* TCP connect / accept / close events for podnet.
 *
 * Two hook sets, chosen by the loader after probing the kernel:
 *   - the state machine: tp_btf/inet_sock_set_state where BTF raw tracepoints load (cheaper),
 *     else the classic tracepoint sock/inet_sock_set_state. Both call on_state().
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
#include "aggregate.h"

#define EISCONN 106
#define EALREADY 114
#define EINPROGRESS 115

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before load. The reader polls; it is woken only when the backlog reaches
 * this many bytes (default: a quarter of the ring), never per event. */
const volatile __u64 wakeup_bytes = 1 << 21;

/* Set by the loader: count into `aggregates` instead of writing events to the ring (see
 * aggregate.h); the syscall programs are then neither loaded nor attached. */
const volatile bool aggregate_in_kernel = false;

/* Keep the contract types in BTF so bpf2go can generate them. */
const struct event *unused_event __attribute__((unused));
const enum event_type *unused_event_type __attribute__((unused));
const enum role *unused_role __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));

/* Ring memory for an event, or NULL (counted) when the ring is full. */
static __always_inline struct event *reserve(__u8 type, __u8 role, __u64 now)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(COUNTER_RESERVE_FAILED);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->timestamp_ns = now;
	e->type = type;
	e->role = role;
	return e;
}

static __always_inline void submit(struct event *e)
{
	__u64 backlog, flags = BPF_RB_NO_WAKEUP;

	/* Wake once, as this record takes the backlog across the mark (8 = record header). */
	backlog = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (backlog >= wakeup_bytes && backlog < wakeup_bytes + sizeof(*e) + 8)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

static __always_inline void set_process(struct event *e, const struct conn_info *ci)
{
	e->pid = ci->pid;
	__builtin_memcpy(e->comm, ci->comm, sizeof(e->comm));
}

/* CLOSE -> SYN_SENT, inside connect(): the caller's process context. */
static __always_inline void on_syn_sent(struct sock *sk)
{
	__u64 key = (__u64)sk;
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_info ci = { .role = ROLE_CLIENT, .pid = id >> 32 };
	struct connect_call *call;

	bpf_get_current_comm(ci.comm, sizeof(ci.comm));
	bpf_map_update_elem(&conns, &key, &ci, BPF_ANY);
	call = bpf_map_lookup_elem(&connect_calls, &id);
	if (call)
		call->async = 1; /* this thread's connect() reached SYN_SENT */
}

/* SYN_SENT -> ESTABLISHED (connected) or -> CLOSE (refused, timed out, reset, cancelled). */
static __always_inline void on_connect_done(struct sock *sk, int newstate, enum sock_read direct)
{
	__u64 key = (__u64)sk;
	__u64 now = bpf_ktime_get_boot_ns();
	struct conn_info ci = { .role = ROLE_CLIENT };
	struct conn_info *known = bpf_map_lookup_elem(&conns, &key);
	struct event *e;

	if (known)
		ci = *known;
	if (newstate != TCP_ESTABLISHED) {
		bpf_map_delete_elem(&conns, &key);
	} else if (known) {
		known->start_ns = now; /* in place: a map update costs more than the rest */
		ci.start_ns = now;
	} else {
		ci.start_ns = now; /* connect() began before podnet loaded */
		bpf_map_update_elem(&conns, &key, &ci, BPF_ANY);
	}

	e = reserve(EVENT_CONNECT, ROLE_CLIENT, now);
	if (!e)
		return;
	fill_sock(e, sk, direct);
	set_process(e, &ci);
	if (newstate != TCP_ESTABLISHED)
		e->error = connect_errno(sk, direct);
	submit(e);
}

static __always_inline void emit_accept(struct sock *sk, const struct conn_info *ci, __u64 ts, enum sock_read direct)
{
	struct event *e = reserve(EVENT_ACCEPT, ROLE_SERVER, ts);
	if (!e)
		return;
	fill_sock(e, sk, direct);
	set_process(e, ci);
	e->start_ns = ci->start_ns;
	submit(e);
}

/* Any -> CLOSE for a connection that was established. */
static __always_inline void on_close(struct sock *sk, enum sock_read direct)
{
	__u64 key = (__u64)sk;
	struct conn_info *known = bpf_map_lookup_elem(&conns, &key);
	struct conn_info ci;
	struct event *e;

	if (!known) {
		count(COUNTER_CLOSE_UNTRACKED);
		return;
	}
	ci = *known;
	bpf_map_delete_elem(&conns, &key);

	/* Accepted by nobody through accept() (io_uring, or reset while queued): report the
	 * passive open now, at the time the handshake completed, so server counts stay whole. */
	if (ci.role == ROLE_SERVER && !ci.accepted)
		emit_accept(sk, &ci, ci.start_ns, direct);

	e = reserve(EVENT_CLOSE, ci.role, bpf_ktime_get_boot_ns());
	if (!e)
		return;
	fill_sock(e, sk, direct);
	set_process(e, &ci);
	e->start_ns = ci.start_ns;
	fill_close(e, sk, direct);
	submit(e);
}

static __always_inline int on_state(struct sock *sk, int oldstate, int newstate, enum sock_read direct)
{
	if (newstate == TCP_SYN_SENT)
		on_syn_sent(sk);
	else if (oldstate == TCP_SYN_SENT && (newstate == TCP_ESTABLISHED || newstate == TCP_CLOSE))
		on_connect_done(sk, newstate, direct); /* SYN_SENT -> SYN_RECV (simultaneous open) goes on */
	else if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		/* Passive open done, in softirq: no process to name yet; accept() fills it in. */
		__u64 key = (__u64)sk;
		struct conn_info ci = { .role = ROLE_SERVER, .start_ns = bpf_ktime_get_boot_ns() };
		bpf_map_update_elem(&conns, &key, &ci, BPF_ANY);
	} else if (newstate == TCP_CLOSE)
		on_close(sk, direct);
	return 0;
}

/* Most transitions (FIN_WAIT1, CLOSE_WAIT, LAST_ACK...) say nothing podnet reports: they are
 * dropped before the socket is touched, since this hook runs ~10 times per connection. */
static __always_inline bool interesting(int oldstate, int newstate)
{
	return newstate == TCP_SYN_SENT || oldstate == TCP_SYN_SENT || newstate == TCP_CLOSE ||
	       (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(state_tp_btf, struct sock *sk, int oldstate, int newstate)
{
	if (aggregate_in_kernel) {
		if (agg_interesting(oldstate, newstate) && is_tcp(sk, READ_TYPED))
			agg_on_state(sk, oldstate, newstate, READ_TYPED);
		return 0;
	}
	if (!interesting(oldstate, newstate) || !is_tcp(sk, READ_TYPED))
		return 0;
	return on_state(sk, oldstate, newstate, READ_TYPED);
}

SEC("tracepoint/sock/inet_sock_set_state")
int state_tracepoint(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	if (aggregate_in_kernel) {
		if (agg_interesting(ctx->oldstate, ctx->newstate))
			agg_on_state((struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate, READ_PROBED);
		return 0;
	}
	if (!interesting(ctx->oldstate, ctx->newstate))
		return 0;
	return on_state((struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate, READ_PROBED);
}

/* accept() returned fd: name the acceptor. `rd` is how the socket is read once found: with
 * probe reads, or (READ_CAST, kernels with bpf_rdonly_cast) with plain loads through a typed
 * pointer, which saves ~15 probe reads per accept. The loader attaches one pair. */
static __always_inline int on_accept(long fd, enum sock_read rd)
{
	struct sock *sk;
	__u64 key;
	struct conn_info ci = { .role = ROLE_SERVER };
	struct conn_info *known;

	if (fd < 0)
		return 0;
	sk = sock_from_fd(fd);
	if (!sk)
		return 0;
	if (rd == READ_CAST)
		sk = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock));
	if (!is_tcp(sk, rd))
		return 0;
	key = (__u64)sk;
	known = bpf_map_lookup_elem(&conns, &key);
	if (known)
		ci = *known;
	else if ((rd ? sk->__sk_common.skc_state : BPF_CORE_READ(sk, __sk_common.skc_state)) == TCP_CLOSE)
		return 0; /* already closed and reported before accept() returned it */
	ci.accepted = 1;
	ci.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(ci.comm, sizeof(ci.comm));
	if (known)
		*known = ci;
	else
		bpf_map_update_elem(&conns, &key, &ci, BPF_ANY);
	emit_accept(sk, &ci, bpf_ktime_get_boot_ns(), rd);
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
	__u64 id = bpf_get_current_pid_tgid();
	struct connect_call call = {
		.uaddr = ctx->args[1],
		.fd = ctx->args[0],
		.addrlen = ctx->args[2],
	};

	bpf_map_update_elem(&connect_calls, &id, &call, BPF_ANY);
	return 0;
}

/* The peer as the caller asked for it: the socket has no peer address when connect() failed
 * before SYN_SENT. sockaddr_in: port at 2, address at 4; sockaddr_in6: port at 2, address at 8. */
static __always_inline void fill_peer_from_sockaddr(struct event *e, const struct connect_call *call)
{
	__u8 addr[28] = {};
	__u32 len = call->addrlen;
	__u16 family;

	if (len > sizeof(addr))
		len = sizeof(addr);
	if (bpf_probe_read_user(addr, len, (void *)call->uaddr))
		return;
	family = *(__u16 *)addr;
	if (family == AF_INET && len >= 8) {
		e->family = AF_INET;
		__builtin_memset(e->peer_addr, 0, sizeof(e->peer_addr));
		__builtin_memcpy(e->peer_addr, &addr[4], 4);
	} else if (family == AF_INET6 && len >= 24) {
		e->family = AF_INET6;
		__builtin_memcpy(e->peer_addr, &addr[8], 16);
	} else {
		return;
	}
	e->peer_port = bpf_ntohs(*(__u16 *)&addr[2]);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct connect_call *found = bpf_map_lookup_elem(&connect_calls, &id);
	struct connect_call call;
	long ret = ctx->ret;
	struct event *e;
	struct sock *sk;

	if (!found)
		return 0;
	call = *found;
	bpf_map_delete_elem(&connect_calls, &id);
	if (ret >= 0 || call.async || ret == -EINPROGRESS || ret == -EALREADY || ret == -EISCONN)
		return 0;
	sk = sock_from_fd(call.fd); /* only now: failures are rare, the lookup is not cheap */
	if (!sk || !is_tcp(sk, READ_PROBED))
		return 0;

	e = reserve(EVENT_CONNECT, ROLE_CLIENT, bpf_ktime_get_boot_ns());
	if (!e)
		return 0;
	fill_sock(e, sk, READ_PROBED);
	fill_peer_from_sockaddr(e, &call);
	e->error = -ret;
	e->pid = id >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	submit(e);
	return 0;
}
