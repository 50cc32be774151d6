// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
//go:build ignore

/* DNS names (issue 18): every DNS response delivered to a socket on the node, copied to user
 * space, which parses it and remembers, per network namespace, which name each address was
 * resolved from (receiver/internal/dnsnames).
 *
 * One cgroup_skb/ingress program on the root of the cgroup v2 hierarchy: it runs for every
 * packet delivered to any socket of any network namespace (pods included), so it has to be
 * cheap for everything that is not DNS: a few loads and compares decide (IP version, L4
 * protocol, source port 53), and only DNS responses reach the copy. It never drops a packet. */
#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_endian.h"

#include "dns.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define DNS_PORT 53
#define SK_PASS 1

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keep the contract types in BTF so bpf2go can generate them. */
const struct response *unused_response __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));

/* DNS responses to user space. Written by dns_ingress (BPF_RB_NO_WAKEUP), read by
 * dnsnames.Names, which drains it every poll interval and before each batch of events is
 * named. Size: placeholder; the loader sets it (dnsnames.Options.RingSize, 1 MiB by default:
 * 800 responses of the largest copy, ~5000 typical ones of ~200 bytes, between two drains). A
 * full ring loses responses, counted in COUNTER_LOST. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} dns_responses SEC(".maps");

/* Where a response is assembled before bpf_ringbuf_output copies exactly its length to the
 * ring (a reserve is fixed-size: every small response would take the largest slot). Written
 * and read only by dns_ingress on its own CPU (cgroup_skb runs with migration disabled); never
 * deleted. One entry per CPU: socket deliveries run in softirq context (or with bottom halves
 * disabled), which does not nest on a CPU, so no run overwrites another's response. Size: one
 * response (1256 B). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct response);
} dns_scratch SEC(".maps");

/* enum counter, per CPU. Written by dns_ingress, read by user space (dnsnames.Counters),
 * never deleted. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} dns_counters SEC(".maps");

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&dns_counters, &which);

	if (c)
		*c += 1;
}

/* copy_response: the slow path, only for packets from port 53 with a payload. l4 is the
 * transport header's offset from the network header (skb->data here). */
static __noinline int copy_response(struct __sk_buff *skb, __u32 l4, __u32 proto)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct response *r;
	struct sock *sk;
	__u32 zero = 0, off, len;
	__u64 n;

	if (proto == IPPROTO_UDP) {
		off = l4 + 8;
	} else {
		void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
		struct tcphdr *th = data + (l4 & 0x3f);

		if ((void *)(th + 1) > end)
			return SK_PASS;
		off = l4 + th->doff * 4;
	}
	if (skb->len <= off)
		return SK_PASS; /* a TCP ACK or FIN without data: nothing to read */
	len = skb->len - off;
	count(COUNTER_SEEN);
	sk = kskb->sk;
	if (!sk) {
		count(COUNTER_NO_SOCKET);
		return SK_PASS;
	}
	r = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!r)
		return SK_PASS;
	r->time_ns = bpf_ktime_get_boot_ns();
	r->netns_ino = sk->__sk_common.skc_net.net->ns.inum;
	r->length = len > 0xffff ? 0xffff : len;
	r->transport = proto;
	n = len < DNS_MAX_PAYLOAD ? len : DNS_MAX_PAYLOAD;
	r->captured = n;
	/* Bounds the verifier can see after the compiler's copies: 1..DNS_MAX_PAYLOAD. */
	asm volatile("" : "+r"(n));
	n &= 0x7ff;
	if (n < 1 || n > DNS_MAX_PAYLOAD)
		return SK_PASS;
	if (bpf_skb_load_bytes(skb, off, r->payload, n))
		return SK_PASS;
	if (bpf_ringbuf_output(&dns_responses, r, offsetof(struct response, payload) + n, BPF_RB_NO_WAKEUP))
		count(COUNTER_LOST);
	return SK_PASS;
}

/* The per-packet filter: anything that is not IPv4/IPv6 UDP or TCP from port 53 returns here,
 * after at most eight loads and compares. */
SEC("cgroup_skb/ingress")
int dns_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u32 l4, proto;
	__be16 *sport;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (data + sizeof(struct iphdr) > end)
			return SK_PASS;
		proto = ((struct iphdr *)data)->protocol;
		l4 = (*(__u8 *)data & 0xf) * 4; /* the header length, IHL */
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (data + sizeof(struct ipv6hdr) > end)
			return SK_PASS;
		proto = ((struct ipv6hdr *)data)->nexthdr; /* extension headers: not DNS here */
		l4 = sizeof(struct ipv6hdr);
	} else {
		return SK_PASS;
	}
	if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
		return SK_PASS;
	sport = data + l4;
	if ((void *)(sport + 1) > end)
		return SK_PASS;
	if (*sport != bpf_htons(DNS_PORT))
		return SK_PASS;
	return copy_response(skb, l4, proto);
}
