/* SPDX-License-Identifier: Apache-2.0 */
/* How long a handshake took and how many SYNs or SYN-ACKs it retransmitted, read at its end
 * (podnet.tcp.handshake.duration, podnet.tcp.syn_retransmits): from the kernel's own RTT
 * sample where it is the handshake's, else from the times the hooks noted. */
#ifndef PODNET_HANDSHAKE_H
#define PODNET_HANDSHAKE_H

#include "podnet.h"
#include "maps.h"
#include "sock.h"

/* tcp_sock.total_retrans at a handshake's end: the SYN (client) or SYN-ACK (server, which the
 * child socket inherits from its request) retransmissions, in a byte. */
static __always_inline __u8 syn_retransmits(struct sock *sk, enum sock_read rd)
{
	__u32 srtt, n;

	tcp_rtt_retrans(sk, rd, &srtt, &n);
	return n > 255 ? 255 : n;
}

/* The tuple of a socket or a request socket, as synack_first keys it: sock_common fields only,
 * which both begin with. Probe reads: only for handshakes that retransmitted a SYN-ACK. */
static __always_inline void synack_key_of(struct sock *sk, struct synack_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->netns_ino = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	/* skc_num, not sock_local_port's inet_sport: a request socket has no inet_sock. */
	k->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	read_common_ends(sk, READ_PROBED, &k->family, &k->peer_port, k->local_addr, k->peer_addr);
}

/* A SYN-ACK retransmission (tp_btf/tcp_retransmit_synack): the request's first SYN-ACK time
 * (snt_synack, set at its first SYN-ACK only) is kept for its handshake's end. Written at every
 * retransmission, the same value for one request: an entry left by an earlier request on the
 * tuple that never ended (the client gave up) is replaced, not kept (found by an independent
 * check: a 1 s handshake timed from a failed one's SYN-ACK 20 s before). */
static __always_inline void on_synack_retransmit(const struct request_sock *req)
{
	struct synack_key k;
	__u64 first = BPF_CORE_READ((struct tcp_request_sock *)req, snt_synack);

	synack_key_of((struct sock *)req, &k);
	if (first)
		bpf_map_update_elem(&synack_first, &k, &first, BPF_ANY);
}

/* How long a server's handshake took, in µs, from its first SYN-ACK (synack_first); 0 when not
 * known (no tp_btf program, or evicted). The entry is taken. */
static __always_inline __u32 synack_handshake_us(struct sock *sk)
{
	struct synack_key k;
	__u64 *first, now = bpf_ktime_get_ns() / 1000, us = 0;

	synack_key_of(sk, &k);
	first = bpf_map_lookup_elem(&synack_first, &k);
	if (!first)
		return 0;
	if (now > *first)
		us = now - *first;
	bpf_map_delete_elem(&synack_first, &k);
	return us > 0xffffffff ? 0xffffffff : us;
}

/* What a handshake's end says of it, kept in ci: the SYN (client) or SYN-ACK (server)
 * retransmissions and how long it took, in µs. A client is timed exactly from its SYN (its first
 * RTT sample; with SYNs retransmitted, from its SYN_SENT, seen in every mode). A server's SYN arrival shows
 * in no hook without kprobes: its first RTT sample (SYN-ACK to the final ACK: exact to the µs
 * when nothing was retransmitted); with retransmitted SYN-ACKs, from the first SYN-ACK where the
 * retransmission program kept it (synack_first, tp_btf), else that sample plus the timeouts the
 * retransmissions waited, as the kernel schedules them by default (the initial 1 s RTO,
 * doubling; a client's first tcp_syn_linear_timeouts SYN retries, 4 by default, all wait 1 s).
 * A server retransmits on its own timer and in answer to each SYN the client retransmits
 * (synack_retransmitted_at). One tcp_sock read. */
#define HANDSHAKE_RTO_US 1000000U

/* When a server's retrans-th SYN-ACK retransmission went out, in s after its first SYN-ACK:
 * its timer's (1 s, then doubling) and its answers to the client's retransmitted SYNs (the first
 * `linear` 1 s apart, then doubling) merged, two at one time counting two. The client's
 * tcp_syn_linear_timeouts is taken to be the server namespace's own (0 where the kernel has
 * none: SYNs doubling too, so the two come in pairs). */
static __always_inline __u32 synack_retransmitted_at(__u32 retrans, __u32 linear)
{
	__u32 timer = 1, timer_gap = 1, syn = 1, syn_gap = 1, syns = 0, at = 0;

	for (int i = 0; i < 16 && i < retrans; i++) {
		if (timer <= syn) {
			at = timer;
			timer_gap *= 2;
			timer += timer_gap;
			continue;
		}
		at = syn;
		if (++syns >= linear)
			syn_gap *= 2;
		syn += syn_gap;
	}
	return at;
}

static __always_inline __u32 syn_linear_timeouts(struct sock *sk)
{
	struct net *net = BPF_CORE_READ(sk, __sk_common.skc_net.net);

	if (!bpf_core_field_exists(net->ipv4.sysctl_tcp_syn_linear_timeouts))
		return 0;
	return BPF_CORE_READ(net, ipv4.sysctl_tcp_syn_linear_timeouts);
}

/* A server's handshake with retrans SYN-ACK retransmissions, where no hook timed its first
 * SYN-ACK: the retransmissions' waits plus the first RTT sample, unless the sample holds them
 * already. With timestamps the sample is timed from the SYN-ACK whose timestamp the final ACK
 * echoes: when it was that ACK that was lost, not a SYN-ACK, the client answered the first
 * SYN-ACK and its answer to the retransmission echoes the first one's time (found by an
 * independent check: 2 s for a 1 s handshake). A round trip as long as the waits is taken for
 * such a sample (a sixty-fourth less: the timers' lateness and the timestamps' ms ticks). */
static __always_inline __u32 synack_estimate_us(__u32 retrans, __u32 linear, __u32 sample_us)
{
	__u32 waited_us = synack_retransmitted_at(retrans, linear) * HANDSHAKE_RTO_US;

	if (sample_us >= waited_us - waited_us / 64)
		return sample_us;
	return waited_us + sample_us;
}

static __always_inline void handshake_end(struct conn_info *ci, struct sock *sk, __u64 now, bool client, enum sock_read rd)
{
	__u32 srtt, retrans, waits, us = 0, rto = HANDSHAKE_RTO_US;

	tcp_rtt_retrans(sk, rd, &srtt, &retrans);
	ci->syn_retrans = retrans > 255 ? 255 : retrans;
	/* A client's from its SYN: with no SYN retransmitted, the kernel's first RTT sample, SYN
	 * sent to SYN-ACK, exact to the µs. Not from the SYN_SENT state change, which comes before
	 * connect() looks for a free local port: milliseconds where TIME_WAIT sockets hold most of
	 * them (found by an independent check: 3.4 ms for 25 µs on the wire). With SYNs
	 * retransmitted the sample is the last one's (Karn): from SYN_SENT then, the search's
	 * milliseconds beside the retransmissions' seconds. But for TCP_FASTOPEN_CONNECT, whose SYN
	 * may leave at the first send, estimated as a server's (found by an independent check: the
	 * application's 0.5 s between connect() and its first send reported as the handshake). */
	if (client && !fast_open_connect(sk, rd)) {
		if (!retrans && srtt) {
			ci->handshake_us = srtt >> 3;
			return;
		}
		if (ci->opened_ns && now > ci->opened_ns) {
			ci->handshake_us = (now - ci->opened_ns) / 1000;
			return;
		}
	}
	if (!client && retrans) {
		ci->handshake_us = synack_handshake_us(sk);
		if (!ci->handshake_us)
			ci->handshake_us = synack_estimate_us(retrans, syn_linear_timeouts(sk), srtt >> 3);
		return;
	}
	if (!client && srtt && (cookie_echo_sample(sk, srtt) || join_echo_sample(sk, srtt))) {
		ci->handshake_us = 0; /* unknown: a SYN cookie's SYN-ACK left no time, a join's was not taken (sock.h) */
		return;
	}
	waits = retrans;
	for (int i = 0; i < 8 && i < waits; i++) {
		us += rto;
		if (i >= 3)
			rto *= 2;
	}
	ci->handshake_us = us + (srtt >> 3);
}

#endif /* PODNET_HANDSHAKE_H */
