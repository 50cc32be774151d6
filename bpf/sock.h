/* SPDX-License-Identifier: Apache-2.0 */
/* Reading a socket's identity with CO-RE: valid in process and softirq context alike, since it
 * only follows the socket, never `current`. */
#ifndef PODNET_SOCK_H
#define PODNET_SOCK_H

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_MPTCP 262
#define SOCK_STREAM 1
#define EPIPE 32
#define ECONNABORTED 103 /* tcp_abort: SOCK_DESTROY (close_reason_of) */
#define ECONNRESET 104
#define ETIMEDOUT 110
/* ICMP soft errors a connection that timed out may carry instead of ETIMEDOUT (close_reason_of) */
#define ENONET 64
#define ENETUNREACH 101
#define EHOSTDOWN 112
#define EHOSTUNREACH 113
#define EADDRNOTAVAIL 99
#define EINVAL 22
#define PF_KTHREAD 0x00200000 /* include/linux/sched.h */

/* How a socket's fields are read. Every reader takes one, a constant at each call site, and
 * after inlining each program keeps one way:
 *   READ_PROBED: bpf_probe_read_kernel, for pointers the verifier knows nothing about (classic
 *                tracepoint arguments, sockets found from a file descriptor);
 *   READ_TYPED:  plain loads, where the verifier knows the socket's type (tp_btf arguments);
 *   READ_CAST:   plain loads through a pointer typed with bpf_rdonly_cast (6.2+), which the
 *                verifier treats as untrusted: no helper takes it, so the local port is read
 *                through a cast too.
 * Plain loads cost a fraction of a probe read, and fill_sock does about ten. */
enum sock_read {
	READ_PROBED = 0,
	READ_TYPED = 1,
	READ_CAST = 2,
};

/* Makes a kernel pointer typed (read-only, untrusted); only in programs loaded where the
 * kernel has it (see kernel.castSupported). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

static __always_inline bool is_tcp(struct sock *sk, enum sock_read direct)
{
	__u16 family = direct ? sk->__sk_common.skc_family : BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family != AF_INET && family != AF_INET6)
		return false;
	/* A bitfield before 5.6, a u16 since: the BITFIELD reads handle both. */
	if (direct)
		return BPF_CORE_READ_BITFIELD(sk, sk_protocol) == IPPROTO_TCP &&
		       BPF_CORE_READ_BITFIELD(sk, sk_type) == SOCK_STREAM;
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) == IPPROTO_TCP &&
	       BPF_CORE_READ_BITFIELD_PROBED(sk, sk_type) == SOCK_STREAM;
}

/* sock_cgroup_data before 5.15: one word holding either the cgroup pointer or, while the bit
 * `is_data` (bit 0) is set, the socket's net_cls classid and net_prio index, in which case the
 * kernel itself takes the socket to be in the root cgroup (sock_cgroup_ptr). */
struct sock_cgroup_data___old {
	__u64 val;
} __attribute__((preserve_access_index));

struct sock___old {
	struct sock_cgroup_data___old sk_cgrp_data;
} __attribute__((preserve_access_index));

/* Whether the socket names its cgroup on this kernel, in either layout (resolved at load). */
static __always_inline bool sock_cgroup_readable(void)
{
	return bpf_core_field_exists(struct sock_cgroup_data, cgroup) ||
	       bpf_core_field_exists(struct sock_cgroup_data___old, val);
}

/* The cgroup v2 id of the socket, 0 when unknown. */
static __always_inline __u64 sock_cgroup_id(struct sock *sk, enum sock_read direct)
{
	/* sock_cgroup_data holds a plain cgroup pointer since 5.15; older kernels packed it. */
	if (bpf_core_field_exists(struct sock_cgroup_data, cgroup)) {
		if (direct)
			return sk->sk_cgrp_data.cgroup->kn->id;
		return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
	}
	if (bpf_core_field_exists(struct sock_cgroup_data___old, val)) {
		__u64 val = BPF_CORE_READ((struct sock___old *)sk, sk_cgrp_data.val);

		if (!val || (val & 1))
			return 0; /* net_cls/net_prio data, no cgroup pointer: process context may know */
		return BPF_CORE_READ((struct cgroup *)val, kn, id);
	}
	return 0;
}

/* The local port in host order. From inet_sport: skc_num is already 0 at ->CLOSE; both are 0
 * until connect() binds one. inet_sport lies beyond struct sock: in tp_btf the verifier wants
 * the socket typed as what it is before reading it. */
static __always_inline __u16 sock_local_port(struct sock *sk, enum sock_read direct)
{
	if (direct == READ_CAST) {
		struct inet_sock *inet = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct inet_sock));
		return bpf_ntohs(inet->inet_sport);
	}
	if (direct) {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
		return tp ? bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport) : 0;
	}
	return bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

/* The socket's send sequence. At ESTABLISHED it is the initial sequence + 1: random per
 * connection, so a later connection on the same socket memory does not share it. */
static __always_inline __u32 sock_write_seq(struct sock *sk, enum sock_read direct)
{
	if (direct == READ_TYPED) {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
		return tp ? tp->write_seq : 0;
	}
	return BPF_CORE_READ((struct tcp_sock *)sk, write_seq);
}

/* Whether a socket leaving SYN_RECV for CLOSE is a server's TCP Fast Open child: made at the SYN,
 * its request attached until the handshake ends or the socket is closed; or reset by its peer,
 * which detaches the request first (tcp_check_req's embryonic reset). A child made for a
 * completed handshake (no Fast Open) is in SYN_RECV only inside the kernel's hand-over, and
 * closed there with no error when another CPU's child took the request. */
static __always_inline bool fast_open_child(struct sock *sk, enum sock_read direct)
{
	int err = direct ? sk->sk_err : BPF_CORE_READ(sk, sk_err);

	if (err == ECONNRESET)
		return true;
	if (direct == READ_TYPED) {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
		return tp && tp->fastopen_rsk;
	}
	return BPF_CORE_READ((struct tcp_sock *)sk, fastopen_rsk) != NULL;
}

/* The socket as a tcp_sock for plain loads (rd READ_TYPED or READ_CAST; NULL only where a typed
 * socket is no TCP one). READ_PROBED readers use BPF_CORE_READ instead. */
static __always_inline struct tcp_sock *tcp_sock_of(struct sock *sk, enum sock_read rd)
{
	if (rd == READ_CAST)
		return bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock));
	return bpf_skc_to_tcp_sock(sk);
}

/* Whether the kernel was giving up on the connection when it closed: retransmitting, or probing
 * (keepalive, zero window) unanswered. tcp_write_err, the kernel's timeout, runs with one of
 * them non-zero (retransmits_timed_out needs a retransmission), and the ACKs of a healthy
 * exchange reset both. */
static __always_inline bool giving_up(struct sock *sk, enum sock_read rd)
{
	struct tcp_sock *tp;

	if (rd) {
		tp = tcp_sock_of(sk, rd);
		return tp && (tp->inet_conn.icsk_retransmits || tp->inet_conn.icsk_probes_out);
	}
	return BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_retransmits) ||
	       BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_probes_out);
}

/* When a server's TCP Fast Open child that ends without becoming established (state.h
 * fast_open_ended) began, in CLOCK_BOOTTIME ns (now is the clock now): its request's first
 * SYN-ACK, sent as the SYN carrying data arrived, which the child keeps until the CLOSE state
 * change (tcp_done lets go of it after); now when not known. Its duration is its life, and its
 * accept record, dated at accept() (events), falls inside it (an independent check saw a
 * duration of µs for a child reset 0.2 s, or timed out 7 s, after accept()). Probe reads: only
 * for such a child. */
static __always_inline __u64 fast_open_start(struct sock *sk, __u64 now)
{
	struct request_sock *req = BPF_CORE_READ((struct tcp_sock *)sk, fastopen_rsk);
	__u64 sent_us, now_us = bpf_ktime_get_ns() / 1000; /* snt_synack: µs of CLOCK_MONOTONIC */

	if (!req)
		return now;
	sent_us = BPF_CORE_READ((struct tcp_request_sock *)req, snt_synack);
	if (!sent_us || sent_us > now_us || (now_us - sent_us) * 1000 >= now)
		return now;
	return now - (now_us - sent_us) * 1000;
}

/* When a connecting socket's SYN went out (tcp_sock.retrans_stamp, set by tcp_connect), 0 if
 * none did. */
static __always_inline __u32 syn_sent_at(struct sock *sk, enum sock_read direct)
{
	struct tcp_sock *tp;

	if (!direct)
		return BPF_CORE_READ((struct tcp_sock *)sk, retrans_stamp);
	tp = tcp_sock_of(sk, direct);
	return tp ? tp->retrans_stamp : 0;
}

/* Whether a client asked for TCP Fast Open at connect() (TCP_FASTOPEN_CONNECT): with a cookie
 * cached, connect() returns at SYN_SENT without a SYN and the SYN leaves, with data, at the first
 * send (tcp_fastopen_defer_connect), an application's think time later. */
static __always_inline bool fast_open_connect(struct sock *sk, enum sock_read direct)
{
	struct tcp_sock *tp;

	if (!bpf_core_field_exists(((struct tcp_sock *)0)->fastopen_connect))
		return false;
	if (!direct)
		return BPF_CORE_READ_BITFIELD_PROBED((struct tcp_sock *)sk, fastopen_connect);
	tp = tcp_sock_of(sk, direct);
	return tp && BPF_CORE_READ_BITFIELD(tp, fastopen_connect);
}

/* Whether the socket was shut down (sk_shutdown: close() sets both ways first). */
static __always_inline bool shut_down(struct sock *sk, enum sock_read direct)
{
	if (direct)
		return BPF_CORE_READ_BITFIELD(sk, sk_shutdown);
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown);
}

#define SEND_SHUTDOWN 2 /* include/net/sock.h */

/* Whether the socket's sending side was shut down (close(), or shutdown(SHUT_WR)). */
static __always_inline bool send_shut_down(struct sock *sk, enum sock_read direct)
{
	if (direct)
		return BPF_CORE_READ_BITFIELD(sk, sk_shutdown) & SEND_SHUTDOWN;
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown) & SEND_SHUTDOWN;
}

/* Why a connect ended SYN_SENT -> CLOSE, as a positive errno. sk_err names handshake failures
 * (refused, timed out, unreachable). When it is 0, either connect() found no free local port
 * (the state went SYN_SENT -> CLOSE inside the syscall, before a port was bound:
 * EADDRNOTAVAIL, ephemeral-port exhaustion) or the application closed the socket first. */
static __always_inline __s32 connect_errno(struct sock *sk, __u8 reported, enum sock_read direct)
{
	int err = direct ? sk->sk_err : BPF_CORE_READ(sk, sk_err);

	if (err)
		return err;
	/* An error the socket reported while connecting (on_connect_error): the application woken
	 * by it may have read and cleared sk_err (SO_ERROR) and closed the socket itself before it
	 * reached CLOSE. Measured with Go's dialer and a REJECT rule: every time. */
	if (reported)
		return reported;
	/* Its SYN went out (tcp_connect dates it in retrans_stamp, which only a disconnect clears):
	 * the application closed it, or disconnected it (shutdown() or connect(AF_UNSPEC) in
	 * SYN_SENT), which the kernel reports to it as ECONNRESET, set just after this state
	 * change; close() marks the socket shut down both ways before it (found by an independent
	 * check: a disconnect reported cancelled). None did: connect() found no tuple for it, no
	 * free local port or, for a port bound beforehand, the tuple already taken (an independent
	 * check saw those reported cancelled, when the local port alone decided); or a Fast Open
	 * connect() deferred its SYN to a first send that never came (it has its local port, which
	 * a failed connect() was never given): closed by the application, a connect() that
	 * returned 0 (found by an independent check: reported EADDRNOTAVAIL). One with a port bound
	 * beforehand and its tuple taken is told from it by nothing here: reported cancelled. */
	if (!syn_sent_at(sk, direct) && !(fast_open_connect(sk, direct) && sock_local_port(sk, direct)))
		return EADDRNOTAVAIL;
	return shut_down(sk, direct) ? PODNET_ECANCELED : ECONNRESET;
}

/* A TCP socket's smoothed RTT (tcp_sock srtt_us: µs << 3; its first sample alone right after
 * the handshake) and retransmissions (total_retrans), read as rd says. */
static __always_inline void tcp_rtt_retrans(struct sock *sk, enum sock_read rd, __u32 *srtt, __u32 *retrans)
{
	struct tcp_sock *tp;

	*srtt = *retrans = 0;
	if (rd) {
		tp = tcp_sock_of(sk, rd);
		if (tp) {
			*srtt = tp->srtt_us;
			*retrans = tp->total_retrans;
		}
	} else {
		*srtt = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us);
		*retrans = BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);
	}
}

/* Whether sk is an MPTCP connection's further subflow (not its first, which its connect()
 * connects): the path manager connects those, in a kworker or in the context of whatever asked
 * it to (`ip mptcp endpoint add ... subflow`, a user-space path manager), never the
 * application's. One read for a TCP socket; probe reads, as only process attribution and a join's handshake
 * (join_echo_sample) ask. */
static __always_inline bool further_subflow(struct sock *sk)
{
	struct mptcp_subflow_context *ctx;
	struct sock *conn;

	if (!bpf_core_field_exists(((struct tcp_sock *)0)->is_mptcp) || !BPF_CORE_READ((struct tcp_sock *)sk, is_mptcp))
		return false;
	ctx = BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_ulp_data);
	conn = ctx ? BPF_CORE_READ(ctx, conn) : NULL;
	return conn && BPF_CORE_READ((struct mptcp_sock *)conn, first) != sk;
}

/* Whether a server's first RTT sample is the echo of a SYN cookie's timestamp. The kernel keeps
 * no send time for a cookie's SYN-ACK (cookie_tcp_reqsk_init: snt_synack 0), so the child's
 * sample comes from the timestamp the ACK echoes, in whole ms (TCP_TS_HZ), and the cookie had
 * replaced that timestamp's low bits with the connection's options (cookie_init_timestamp: the
 * peer's window scale, 0xf for none, and SACK at bit 4): up to 63 ms too long (found by an
 * independent check: 2-63 ms server handshakes on loopback). rcv_tsecr has the connection's
 * timestamp offset taken out, as the cookie's bits were laid before it was added. A server
 * whose SYN-ACK's send time was kept has a sample in µs: a whole number of ms with those five
 * bits also matching, 1 in 32,000. The options are read only for a sample in whole ms. */
static __always_inline bool cookie_echo_sample(struct sock *sk, __u32 srtt)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u32 tsecr, options;

	if ((srtt >> 3) % 1000 || !BPF_CORE_READ_BITFIELD_PROBED(tp, rx_opt.tstamp_ok))
		return false;
	tsecr = BPF_CORE_READ(tp, rx_opt.rcv_tsecr);
	options = BPF_CORE_READ_BITFIELD_PROBED(tp, rx_opt.wscale_ok) ? BPF_CORE_READ_BITFIELD_PROBED(tp, rx_opt.snd_wscale) : 0xf;
	if (BPF_CORE_READ_BITFIELD_PROBED(tp, rx_opt.sack_ok))
		options |= 0x10;
	return (tsecr & 0x1f) == options;
}

/* Whether a server subflow's first RTT sample (srtt, <<3) came from the echo of its timestamp
 * (whole ms, at least 1) rather than from its SYN-ACK's time: so for an MPTCP MP_JOIN subflow,
 * whose request the kernel drops before that measurement (tcp_check_req, drop_req), found by an
 * independent check: 1 ms for 7-12 us on the wire, every join. The first subflow is measured. */
static __always_inline bool join_echo_sample(struct sock *sk, __u32 srtt)
{
	return (srtt >> 3) % 1000 == 0 && further_subflow(sk);
}

/* Where a connect() caller asked to go: the sockaddr in its memory (sockaddr_in: port at 2,
 * address at 4; sockaddr_in6: port at 2, flow info at 4, address at 8). addr is filled as
 * sockets keep addresses (IPv4 in its first 4 bytes), and only when the call is IPv4 or IPv6 and
 * readable; flowinfo (when asked for) is sockaddr_in6's, 0 for IPv4. */
#define SOCKADDR_READ 28 /* sockaddr_in6's size: connect_dest reads no more */

/* connect_dest with its read in sa (SOCKADDR_READ bytes; only the bytes read are looked at):
 * for callers whose stack has no room (dialled_of gives scratch memory). */
static __always_inline bool connect_dest_in(__u8 *sa, __u64 uaddr, __u32 addrlen, __u16 *family, __u8 *addr, __u16 *port,
					    __u32 *flowinfo)
{
	__u32 len = addrlen > SOCKADDR_READ ? SOCKADDR_READ : addrlen;
	__u16 f;

	if (bpf_probe_read_user(sa, len, (void *)uaddr))
		return false;
	f = *(__u16 *)sa;
	if (f == AF_INET && len >= 8) {
		__builtin_memset(addr, 0, 16);
		__builtin_memcpy(addr, &sa[4], 4);
	} else if (f == AF_INET6 && len >= 24) {
		__builtin_memcpy(addr, &sa[8], 16);
	} else {
		return false;
	}
	*family = f;
	*port = bpf_ntohs(*(__u16 *)&sa[2]);
	if (flowinfo)
		*flowinfo = f == AF_INET6 ? *(__u32 *)&sa[4] : 0;
	return true;
}

static __always_inline bool connect_dest(__u64 uaddr, __u32 addrlen, __u16 *family, __u8 *addr, __u16 *port, __u32 *flowinfo)
{
	__u8 sa[SOCKADDR_READ] = {};

	return connect_dest_in(sa, uaddr, addrlen, family, addr, port, flowinfo);
}

#define SS_UNCONNECTED 1

/* Whether a connect() that failed before SYN_SENT tried to connect at all, from the sockaddr
 * it was given as connect_dest read it (family, addr, flowinfo): the kernel refuses a sockaddr
 * it cannot read (EFAULT), too short or of another family (EAFNOSUPPORT) before any attempt.
 * EINVAL is such a refusal too - an IPv6 link-local peer with no interface to reach it on (no
 * scope id, no bound device), a flow label the socket does not hold, a socket in no state to
 * connect - except where a blackhole route answered the route lookup, an attempt to a
 * destination the node refuses (found by an independent check: such connects were in no
 * record; before that, independent checks saw the refusals reported as failed connects, to
 * 0.0.0.0:0 and to fe80::/10 peers). So EINVAL counts only for a well-formed sockaddr of a
 * socket that could connect (SS_UNCONNECTED: the route lookup's errors leave it so). */
static __always_inline bool connect_attempted(long err, __u32 addrlen, struct sock *sk, __u16 sock_family, __u16 family,
					      const __u8 *addr, __u32 flowinfo)
{
	if (addrlen < (sock_family == AF_INET6 ? 24 : 16) || family != sock_family)
		return false;
	if (err != -EINVAL)
		return true;
	if (BPF_CORE_READ(sk, sk_socket, state) != SS_UNCONNECTED)
		return false;
	if (family == AF_INET6 && ((addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80) || (flowinfo & bpf_htonl(0x000fffff))))
		return false; /* link-local or a flow label: the arguments' EINVALs */
	return true;
}

/* A socket's two ends: what exclusion and sampling decide from (select.h). */
struct ends {
	__u16 family;
	__u16 local_port; /* host byte order */
	__u16 peer_port;
	__u8 local_addr[16]; /* network byte order; IPv4 in the first 4 bytes */
	__u8 peer_addr[16];
};

/* The family, peer port and both addresses: sock_common fields only, which a request socket
 * has too (synack_key_of). */
static __always_inline void read_common_ends(struct sock *sk, enum sock_read direct, __u16 *family, __u16 *peer_port,
					     __u8 *local_addr, __u8 *peer_addr)
{
	struct sock_common *skc = &sk->__sk_common;

	if (direct) {
		*family = skc->skc_family;
		*peer_port = bpf_ntohs(skc->skc_dport);
		if (*family == AF_INET) {
			__builtin_memcpy(local_addr, &skc->skc_rcv_saddr, 4);
			__builtin_memcpy(peer_addr, &skc->skc_daddr, 4);
		} else {
			__builtin_memcpy(local_addr, &skc->skc_v6_rcv_saddr, 16);
			__builtin_memcpy(peer_addr, &skc->skc_v6_daddr, 16);
		}
		return;
	}
	*family = BPF_CORE_READ(sk, __sk_common.skc_family);
	*peer_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (*family == AF_INET) {
		bpf_core_read(local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(peer_addr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(local_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(peer_addr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

static __always_inline void read_ends(struct sock *sk, enum sock_read direct, __u16 *family, __u16 *local_port,
				      __u16 *peer_port, __u8 *local_addr, __u8 *peer_addr)
{
	read_common_ends(sk, direct, family, peer_port, local_addr, peer_addr);
	*local_port = sock_local_port(sk, direct);
}

static __always_inline void sock_ends(struct sock *sk, enum sock_read direct, struct ends *o)
{
	read_ends(sk, direct, &o->family, &o->local_port, &o->peer_port, o->local_addr, o->peer_addr);
}

/* Fills the socket's tuple, namespace and cgroup. */
static __always_inline void fill_sock(struct event *e, struct sock *sk, enum sock_read direct)
{
	read_ends(sk, direct, &e->family, &e->local_port, &e->peer_port, e->local_addr, e->peer_addr);
	if (direct)
		e->netns_ino = sk->__sk_common.skc_net.net->ns.inum;
	else
		e->netns_ino = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	e->cgroup_id = sock_cgroup_id(sk, direct);
}

/* sk's TCP state (enum TCP_*), as rd reads it. */
static __always_inline int sock_state(struct sock *sk, enum sock_read rd)
{
	return rd ? sk->__sk_common.skc_state : BPF_CORE_READ(sk, __sk_common.skc_state);
}

/* The socket's flags (enum sock_flags: SOCK_DONE, SOCK_DEAD...), to test with SOCK_FLAG. */
static __always_inline unsigned long sock_flags(struct sock *sk, enum sock_read direct)
{
	return direct ? sk->__sk_common.skc_flags : BPF_CORE_READ(sk, __sk_common.skc_flags);
}

#define SOCK_FLAG(f) (1UL << bpf_core_enum_value(enum sock_flags, f))

/* Whether the peer's FIN was taken in (tcp_fin sets SOCK_DONE after counting the FIN's byte of
 * sequence space in bytes_received). Not RCV_SHUTDOWN: close() and shutdown(SHUT_RD) set that
 * too, so a socket closed before the peer's FIN (the end that closes first, which the kernel
 * closes in FIN_WAIT2 and leaves the FIN to its time-wait socket) would lose a real byte. */
static __always_inline bool fin_received(struct sock *sk, enum sock_read direct)
{
	return sock_flags(sk, direct) & SOCK_FLAG(SOCK_DONE);
}

/* Whether this end's FIN is queued: the states a socket reaches only after sending it. */
static __always_inline bool fin_sent(int state)
{
	return state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING || state == TCP_LAST_ACK;
}

/* Payload bytes sent, each once: the sequence space the peer acknowledged (bytes_acked) and
 * that sent since (snd_nxt - snd_una), less a client's SYN (a server's child starts past its
 * SYN) and this end's FIN once sent (snd_nxt reached write_seq, which the FIN advanced). Not
 * bytes_sent less bytes_retrans: a segment dropped before it left the host (a netfilter rule,
 * or a full queue, in the socket's own namespace) is sent again as new data, and bytes_sent
 * counts each attempt; snd_nxt moves only when a segment went out. */
static __always_inline __u64 payload_sent(__u64 acked, __u32 snd_una, __u32 snd_nxt, __u32 write_seq, bool client,
					  int state)
{
	__u64 seq = acked + (__u32)(snd_nxt - snd_una), other = client ? 1 : 0;

	if (fin_sent(state) && snd_nxt == write_seq)
		other++;
	return seq > other ? seq - other : 0;
}

/* fill_close's state for a socket read while it moves (unlocked: a live read, the start-up
 * scan): read there, after the sequence numbers. */
#define STATE_NOW (-1)

#define TCPHDR_FIN 0x01

/* Whether the last segment in sk's receive queue carries the peer's FIN: queued before the
 * FIN's byte of sequence space is counted in bytes_received, and there until the application
 * reads it, which it cannot before tcp_fin has marked the socket (SOCK_DONE; it holds the
 * socket's lock until then). Probe reads: the segment may be freed meanwhile. */
static __always_inline bool fin_queued(struct sock *sk)
{
	struct sk_buff *skb = BPF_CORE_READ(sk, sk_receive_queue.prev);
	struct tcp_skb_cb *cb;

	if (!skb || (void *)skb == (void *)&sk->sk_receive_queue)
		return false;
	cb = (struct tcp_skb_cb *)&skb->cb;
	return BPF_CORE_READ(cb, tcp_flags) & TCPHDR_FIN;
}

/* What a connection carried, read at its close (state: the one it closed from) or while open
 * (STATE_NOW): payload bytes both ways (each once, payload_sent; bytes_received counts the
 * peer's FIN, taken out here), smoothed RTT and retransmissions. client: the end that sent the
 * SYN (enum role; a found connection's guessed one).
 * Read in the order the kernel's own updates make safe while the socket moves: bytes_acked
 * before snd_una (tcp_snd_una_update adds to the first, then moves the second); snd_nxt before
 * write_seq and the state (a FIN is queued, after the state changed, before it is sent);
 * bytes_received before the FIN's marks. Otherwise an ACK or a FIN landing between two reads
 * counted a byte too many for good (found in CI: 30,000,001 bytes for 30,000,000; the close adds
 * only what is left, never less than nothing). A read in between undercounts at worst, which
 * the next read or the close makes up. Under the socket's lock (a close) the order changes
 * nothing. */
static __always_inline void fill_close(struct event *e, struct sock *sk, enum sock_read direct, bool client, int state)
{
	struct tcp_sock *tp = direct ? tcp_sock_of(sk, direct) : (struct tcp_sock *)sk;
	bool live = state == STATE_NOW;
	__u32 una, nxt, wseq;
	__u64 acked;

	if (!tp)
		return;
	if (direct) {
		acked = tp->bytes_acked;
		barrier();
		una = tp->snd_una;
		barrier();
		nxt = tp->snd_nxt;
		barrier();
		wseq = tp->write_seq;
		barrier();
		if (live)
			state = sock_state(sk, direct);
		e->bytes_received = tp->bytes_received;
		barrier();
		e->srtt_us = tp->srtt_us >> 3;
		e->retransmits = tp->total_retrans;
	} else {
		acked = BPF_CORE_READ(tp, bytes_acked);
		una = BPF_CORE_READ(tp, snd_una);
		nxt = BPF_CORE_READ(tp, snd_nxt);
		wseq = BPF_CORE_READ(tp, write_seq);
		if (live)
			state = sock_state(sk, direct);
		e->bytes_received = BPF_CORE_READ(tp, bytes_received);
		e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
		e->retransmits = BPF_CORE_READ(tp, total_retrans);
	}
	e->bytes_sent = payload_sent(acked, una, nxt, wseq, client, state);
	if (e->bytes_received && (fin_received(sk, direct) || (live && fin_queued(sk))))
		e->bytes_received--;
}

/* The current task, in the form rd reads it: typed (tp_btf: bpf_get_current_task_btf), cast
 * (bpf_rdonly_cast, 6.2+) or a plain address for probe reads. Typed and cast, its fields are
 * plain loads, a fraction of a probe read each. */
static __always_inline struct task_struct *current_task(enum sock_read rd)
{
	if (rd == READ_TYPED)
		return bpf_get_current_task_btf();
	if (rd == READ_CAST)
		return bpf_rdonly_cast((void *)bpf_get_current_task(), bpf_core_type_id_kernel(struct task_struct));
	return (struct task_struct *)bpf_get_current_task();
}

/* The name of task's process (process.executable.name): its main thread's comm, which `ps`
 * shows, where bpf_get_current_comm gives the calling thread's (Java, tokio and Envoy name their
 * threads: "http-nio-8080-e", "tokio-runtime-w"). At connect and accept, with events only: two
 * plain loads and a 16-byte copy (task from current_task(rd), rd not READ_PROBED), or two probe
 * reads. */
static __always_inline void task_process_comm(struct task_struct *task, char comm[16], enum sock_read rd)
{
	struct task_struct *leader;

	if (rd) {
		leader = task->group_leader;
		if (leader) {
			__builtin_memcpy(comm, leader->comm, 16);
			return;
		}
	} else {
		leader = BPF_CORE_READ(task, group_leader);
		if (leader && bpf_core_read_str(comm, 16, &leader->comm) >= 0)
			return;
	}
	bpf_get_current_comm(comm, 16);
}

/* The same for the current task. */
static __always_inline void current_process_comm(char comm[16], enum sock_read rd)
{
	task_process_comm(current_task(rd), comm, rd);
}

/* Whether task (from current_task(rd)) is a kernel thread (a kworker making an MPTCP subflow's
 * connect, a kernel client such as NFS): no process of a workload, so it names none. */
static __always_inline bool kernel_thread(struct task_struct *task, enum sock_read rd)
{
	return (rd ? task->flags : BPF_CORE_READ(task, flags)) & PF_KTHREAD;
}

/* The socket behind a file descriptor of the current task, or NULL. The back-pointer check
 * (socket->file == file) rejects descriptors that are not sockets. With rd not READ_PROBED, one
 * probe read (the descriptor's slot: a typed pointer takes no variable index) and plain loads,
 * where the probed walk takes seven probe reads. The socket is returned in rd's form. */
static __always_inline struct sock *sock_from_fd(long fd, enum sock_read rd)
{
	struct task_struct *task = current_task(rd);
	struct fdtable *fdt;
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;

	if (rd) {
		fdt = task->files->fdt;
		if (fd < 0 || fd >= fdt->max_fds)
			return NULL;
		fds = fdt->fd;
		bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
		if (!file)
			return NULL;
		file = bpf_rdonly_cast(file, bpf_core_type_id_kernel(struct file));
		sock = bpf_rdonly_cast(file->private_data, bpf_core_type_id_kernel(struct socket));
		if (!sock || sock->file != file)
			return NULL;
		return bpf_rdonly_cast(sock->sk, bpf_core_type_id_kernel(struct sock));
	}
	fdt = BPF_CORE_READ(task, files, fdt);
	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	if (!file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/* A socket's drop count: sk_drops, or on kernels that give a socket per-NUMA-node counters
 * (6.17+) their sum instead, as the kernel's sk_drops_read does. tcp_listendrop counts a
 * listener's drops there, and so does every packet a pending request refuses (a retransmitted SYN, a handshake's last ACK the full queue dropped, counted
 * twice): user space takes the namespace's ListenDrops as the bound (listen_overflow_ledger.go).
 * Probe reads: the listener of an MPTCP socket is reached through a plain pointer. */
static __always_inline __u32 sock_drops(struct sock *sk)
{
	__u32 n = BPF_CORE_READ(sk, sk_drops.counter);
	struct numa_drop_counters *numa;

	if (bpf_core_field_exists(sk->sk_drop_counters)) {
		numa = BPF_CORE_READ(sk, sk_drop_counters);
		if (numa)
			n = BPF_CORE_READ(numa, drops0.counter) + BPF_CORE_READ(numa, drops1.counter);
	}
	return n;
}

/* What the listener scan reports of a listening socket (the TCP one beneath an MPTCP listener);
 * tgid, a process in its namespace, is the caller's. */
static __always_inline void fill_listen_drops(struct listen_drops *r, struct sock *sk)
{
	r->sk = (__u64)sk;
	r->netns_ino = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	r->port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	r->cgroup_id = sock_cgroup_id(sk, READ_PROBED);
	r->drops = sock_drops(sk) - r->base;
}

#endif
