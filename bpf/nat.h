/* SPDX-License-Identifier: Apache-2.0 */
/* Service -> backend (issue 14): the destination a connection was translated to by the node's
 * conntrack NAT (kube-proxy's iptables or nftables DNAT, or any other), for the client's records.
 *
 * The translation lives in the node's network namespace, never in the pod's: the pod's socket
 * only ever sees the Service address. A netfilter program (nat_seen, attached by the loader in
 * the node's namespace at POST_ROUTING, which both forwarded pod traffic and the node's own
 * traffic cross after DNAT, and at LOCAL_IN, which traffic DNAT'd to the node's own address
 * crosses instead) notes every new translated TCP connection, keyed by its original
 * tuple; the client's state program takes the note when its handshake ends (or fails), keeps the
 * backend with the connection for its close, and deletes the note. So a note lives only from
 * the first SYN to the end of the handshake.
 *
 * Connections to anything else pay one load of a byte: nat_seen also marks the original
 * destination (address, port) in nat_dsts, and the state program looks a connection up only
 * when its destination is marked (a hash collision costs a lookup that misses, no more). */
#ifndef PODNET_NAT_H
#define PODNET_NAT_H

#include "podnet.h"
#include "maps.h"
#include "sock.h"
#include "select.h"
#include "scratch.h"

#define NF_ACCEPT 1
#define NFCT_INFOMASK 7UL /* skb->_nfct: the conntrack entry, its low bits enum ip_conntrack_info */
#define NFCT_PTRMASK (~NFCT_INFOMASK)

/* Set by the loader when nat_seen is attached: without it nothing is ever marked, and the state
 * programs do not even contain the lookup. */
const volatile bool nat_lookup = false;

/* Destinations (address, port) some translated connection went to, as a hash-indexed set of
 * bytes: written only by nat_seen (a plain store of 1; bytes, not bits, so concurrent marks never
 * undo each other), read by the state programs, never cleared (a stale mark costs one lookup
 * that misses). Size: 32768 slots keep a collision under 1 in 30 with a thousand Service ports
 * on the node's traffic. */
#define NAT_DST_SLOT_BITS 15
#define NAT_DST_SLOTS (1 << NAT_DST_SLOT_BITS)
__u8 nat_dsts[NAT_DST_SLOTS];

/* The slot of a destination: the last 4 bytes of its address (the IPv4 address of an IPv4 or
 * IPv4-mapped one) and its port, host order, Fibonacci-hashed: the product's top bits depend on
 * every bit of the key (its low bits would depend only on the address's first octets, and put
 * all of a Service range's addresses with one port in one slot). */
static __always_inline __u32 nat_slot(__u32 addr_tail, __u16 port)
{
	return ((addr_tail ^ ((__u32)port * 40503u)) * 2654435761u) >> (32 - NAT_DST_SLOT_BITS);
}

static __always_inline bool same_addr(const __u8 *a, const __u8 *b)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (a[i] != b[i])
			return false;
	}
	return true;
}

/* The TCP header's flags byte (offset 13), as the kernel's include/net/tcp.h names its bits. */
#define TCPHDR_SYN 0x02
#define TCPHDR_ACK 0x10

/* The longest SYN without data: an IPv6 header and a TCP header with every option. */
#define SYN_MAX_LEN (40 + 60)

/* Whether the packet is a SYN without ACK (a TCP packet: conntrack's entry said so). Longer
 * packets are not looked at: they carry data, and a SYN with data (TCP Fast Open) reusing an
 * entry is left unnoted. The transport header is set on the paths nat_seen watches (forwarded
 * and local input: at IP input; the node's own: by TCP). */
static __always_inline bool pure_syn(struct sk_buff *skb)
{
	__u8 flags = 0;

	if (skb->len > SYN_MAX_LEN)
		return false;
	if (bpf_probe_read_kernel(&flags, 1, skb->head + skb->transport_header + 13))
		return false;
	return (flags & (TCPHDR_SYN | TCPHDR_ACK)) == TCPHDR_SYN;
}

/* The netfilter side: a new connection (its first packet, or a retransmission of it, in the
 * original direction) whose destination conntrack translated. Replies and packets conntrack
 * does not track return after two loads; the original direction's after three when longer
 * than a SYN (data), else after a read of the byte where a TCP header has its flags (any
 * protocol: a flow's protocol is known only from its entry, read after). Never drops:
 * netfilter programs here only watch. */
static __always_inline int nat_note(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	unsigned long nfct = skb->_nfct;
	struct nf_conntrack_tuple orig, reply;
	struct nat_key key = {};
	struct nat_backend backend = {}, *seen;
	struct nf_conn *ct;
	unsigned long status;
	__u32 tail;
	__u8 info = nfct & NFCT_INFOMASK;

	/* A SYN can reuse an entry that saw replies, so ESTABLISHED to conntrack: one whose
	 * connection ended by the backend's RST stays, with its translation, in CLOSE for 10 s, and a
	 * new connection from the same client port within them is sent where it points, with no
	 * new entry (conntrack lets the SYN through as "ignored" and resynchronises at the SYN-ACK;
	 * found by an independent review: 15 of 20 such connects named no backend). Told by the
	 * packet itself, a SYN without ACK, which no established connection sends in this direction
	 * (a non-TCP packet's byte there is no flag: the protocol is checked below). The flags
	 * before conntrack's status: the most packets stop at the length, the rest at one read. */
	if (!(nfct & NFCT_PTRMASK)) /* untracked: no entry (ctinfo 0 reads as ESTABLISHED) */
		return NF_ACCEPT;
	if (info != IP_CT_NEW && (info != IP_CT_ESTABLISHED || !pure_syn(skb)))
		return NF_ACCEPT;
	ct = (struct nf_conn *)(nfct & NFCT_PTRMASK);
	status = BPF_CORE_READ(ct, status);
	if (!(status & IPS_DST_NAT))
		return NF_ACCEPT;
	if (bpf_core_read(&orig, sizeof(orig), &ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple) ||
	    bpf_core_read(&reply, sizeof(reply), &ct->tuplehash[IP_CT_DIR_REPLY].tuple))
		return NF_ACCEPT;
	if (orig.dst.protonum != IPPROTO_TCP)
		return NF_ACCEPT;
	as_v6(key.src, orig.src.l3num, (const __u8 *)&orig.src.u3);
	as_v6(key.dst, orig.src.l3num, (const __u8 *)&orig.dst.u3);
	key.src_port = bpf_ntohs(orig.src.u.all);
	key.dst_port = bpf_ntohs(orig.dst.u.all);
	/* The backend is where replies come from. */
	as_v6(backend.addr, reply.src.l3num, (const __u8 *)&reply.src.u3);
	backend.port = bpf_ntohs(reply.src.u.all);
	backend.ct = (__u64)ct;
	/* The same connection is seen again by a retransmitted SYN, and twice where the node's own
	 * traffic goes to its own address (POST_ROUTING on the way out, LOCAL_IN on loopback's way
	 * in): its entry is confirmed by then (conntrack confirms after every other hook, when the
	 * first packet leaves), and it keeps its note, counted once, dated again: a SYN through an
	 * entry that a translated SYN no client took left waiting (a client elsewhere, a raw one)
	 * may be a client's of this node with the same tuple, whose note it is from its SYN on
	 * (found by an independent check: unnamed). An entry not yet confirmed is a new
	 * connection's, also at the memory of an earlier one's entry (conntrack reuses it): a note
	 * of an earlier connection with the same tuple is replaced, dated now, and counted. */
	seen = bpf_map_lookup_elem(&nat_backends, &key);
	if (seen && (status & IPS_CONFIRMED) && seen->ct == backend.ct && seen->port == backend.port &&
	    same_addr(seen->addr, backend.addr)) {
		seen->noted_ns = bpf_ktime_get_boot_ns();
		return NF_ACCEPT;
	}
	backend.noted_ns = bpf_ktime_get_boot_ns();
	bpf_map_update_elem(&nat_backends, &key, &backend, BPF_ANY);
	__builtin_memcpy(&tail, &key.dst[12], 4);
	nat_dsts[nat_slot(tail, key.dst_port)] = 1;
	count(COUNTER_NAT_SEEN);
	return NF_ACCEPT;
}

/* The client side, once its destination is marked: takes the note of its connection, if any.
 * Not inlined, and its memory in scratch.h: the state program's stack has no room for it. */
static __noinline void backend_of(struct conn_info *ci, struct sock *sk, enum sock_read rd)
{
	struct nat_backend *b;
	struct scratch_slot *m;
	struct scratch *s = scratch_take(&m);

	if (!s)
		return;
	count(COUNTER_BACKEND_LOOKUPS);
	sock_ends(sk, rd, &m->ends);
	as_v6(m->nat.src, m->ends.family, m->ends.local_addr);
	as_v6(m->nat.dst, m->ends.family, m->ends.peer_addr);
	m->nat.src_port = m->ends.local_port;
	m->nat.dst_port = m->ends.peer_port;
	b = bpf_map_lookup_elem(&nat_backends, &m->nat);
	/* A note made before this socket's SYN_SENT is another connection's with the same tuple: a
	 * namespace with the same addresses (overlapping pod networks), or one whose client never
	 * took it (found by an independent check: named a backend it never reached). Left for its
	 * own client. (The note of this connection's SYN is made after: its SYN leaves after
	 * SYN_SENT. A socket whose connect() began before podnet loaded has no SYN_SENT time.) */
	if (b && ci->opened_ns && b->noted_ns < ci->opened_ns)
		b = NULL;
	if (b) {
		__builtin_memcpy(ci->backend_addr, b->addr, sizeof(ci->backend_addr));
		ci->backend_port = b->port;
		bpf_map_delete_elem(&nat_backends, &m->nat);
		count(COUNTER_BACKEND_FOUND);
	}
	scratch_give(s);
}

/* A client connection's handshake ended (or failed): its backend, when its destination was
 * translated. A load of the destination and of one byte for every other connection. */
static __always_inline void find_backend(struct conn_info *ci, struct sock *sk, enum sock_read rd)
{
	struct sock_common *skc = &sk->__sk_common;
	__u32 tail;
	__u16 port;

	if (!nat_lookup)
		return;
	if (rd) {
		port = bpf_ntohs(skc->skc_dport);
		if (skc->skc_family == AF_INET)
			tail = skc->skc_daddr;
		else
			tail = skc->skc_v6_daddr.in6_u.u6_addr32[3];
	} else {
		port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET)
			tail = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		else
			tail = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32[3]);
	}
	if (nat_dsts[nat_slot(tail, port)])
		backend_of(ci, sk, rd);
}

/* Socket-level load balancing (Cilium's kube-proxy replacement: a cgroup/connect4 program
 * rewrites connect()'s destination before TCP sees it): the socket holds the backend from the
 * start and no conntrack entry is translated. The Service is then only in the sockaddr the caller
 * passed, still in its memory when the socket reaches SYN_SENT inside that connect(). Set by
 * the loader (service_backends.socket_lb, with the syscall hooks): a read of the caller's sockaddr
 * per connect. */
const volatile bool socket_lb = false;

/* Whether a 16-byte address (as_v6) is ::, or ::ffff:0.0.0.0. */
static __always_inline bool unspecified_v6(const __u8 *a)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if ((i == 10 || i == 11) ? (a[i] != 0 && a[i] != 0xff) : a[i] != 0)
			return false;
	}
	return a[10] == a[11];
}

/* Inside connect(), at SYN_SENT: when the caller dialled another destination than the socket
 * now has, keeps the dialled one in backend_* (marked dialled). Not inlined, and its memory in
 * scratch.h: the state program's stack has no room for it. */
static __noinline void dialled_of(struct conn_info *ci, struct sock *sk, const struct connect_call *call, enum sock_read rd)
{
	struct scratch_slot *m;
	struct scratch *s = scratch_take(&m);
	__u16 family, port;

	if (!s)
		return;
	if (!connect_dest_in(m->sa, call->uaddr, call->addrlen, &family, m->a, &port, NULL))
		goto out;
	as_v6(m->b, family, m->a);
	/* The unspecified address (0.0.0.0, ::, ::ffff:0.0.0.0), which the kernel itself sends to
	 * loopback: no balancer chose that (found by an independent check: reported translated). */
	if (unspecified_v6(m->b))
		goto out;
	sock_ends(sk, rd, &m->ends);
	as_v6(m->c, m->ends.family, m->ends.peer_addr);
	if (port == m->ends.peer_port && same_addr(m->b, m->c))
		goto out;
	__builtin_memcpy(ci->backend_addr, m->b, sizeof(ci->backend_addr));
	ci->backend_port = port;
	ci->dialled = 1;
out:
	scratch_give(s);
}

#endif
