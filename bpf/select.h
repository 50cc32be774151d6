/* SPDX-License-Identifier: Apache-2.0 */
/* What nobody keeps never leaves the kernel (issue 13): `exclude` (server ports, peer ranges)
 * keeps a connection out of every sink, ring and aggregates, decided once when its entry is
 * made; event types no logs pipeline keeps never reserve ring space. */
#ifndef PODNET_SELECT_H
#define PODNET_SELECT_H

#include "podnet.h"
#include "maps.h"
#include "sock.h"

/* Set by the loader: how many exclusions are configured (0: no lookup at all), and which event
 * types go to the ring (bit 1 << enum event_type; all when metrics are counted from events). */
const volatile __u32 exclusions = 0;
const volatile __u32 ring_types = 0xff;

/* A 16-byte address as IPv6, IPv4 mapped (::ffff:a.b.c.d), so that a dual-stack end and a
 * plain IPv4 end read alike. */
static __always_inline void as_v6(__u8 *out, __u16 family, const __u8 *addr)
{
	if (family == AF_INET) {
		__builtin_memset(out, 0, 10);
		out[10] = 0xff;
		out[11] = 0xff;
		__builtin_memcpy(&out[12], addr, 4);
	} else {
		__builtin_memcpy(out, addr, 16);
	}
}

/* Whether a connection with this peer and server port is excluded. addr is network order, IPv4
 * in its first 4 bytes; k is the lookup's key, the caller's memory. */
static __always_inline bool excluded_peer_key(struct peer_prefix *k, __u16 family, const __u8 *addr, __u16 server_port)
{
	__u8 *v;

	if (!exclusions)
		return false;
	if (bpf_map_lookup_elem(&excluded_ports, &server_port))
		return true;
	k->prefixlen = 128;
	as_v6(k->addr, family, addr);
	v = bpf_map_lookup_elem(&excluded_peers, k);
	return v && *v; /* 0: the guard that keeps IPv4 out of IPv6 ranges (kernel/select.go) */
}

/* The same with the key on the stack, for programs that call no subprogram. */
static __always_inline bool excluded_peer(__u16 family, const __u8 *addr, __u16 server_port)
{
	struct peer_prefix k;

	return excluded_peer_key(&k, family, addr, server_port);
}

/* Logs sampling, set by the loader: the ring takes every abnormal connection (failed connect,
 * reset, aborted, retransmitted) and 1 in sample_one_in of the others, all events of a kept one
 * (1: every connection). */
const volatile __u32 sample_one_in = 1;

/* Adds an end (address, port) to h, FNV-1a. */
static __always_inline __u64 mix_end(__u64 h, const __u8 *a, __u16 port)
{
#pragma clang loop unroll(disable)
	for (int i = 0; i < 16; i++)
		h = (h ^ a[i]) * 1099511628211ULL;
	h = (h ^ (port & 0xff)) * 1099511628211ULL;
	return (h ^ (port >> 8)) * 1099511628211ULL;
}

/* Whether (a, ap) sorts before (b, bp). */
static __always_inline bool end_before(const __u8 *a, __u16 ap, const __u8 *b, __u16 bp)
{
#pragma clang loop unroll(disable)
	for (int i = 0; i < 16; i++) {
		if (a[i] != b[i])
			return a[i] < b[i];
	}
	return ap < bp;
}

/* Whether a connection is left out of the ring by sampling (it may still be kept at its close,
 * if abnormal). Decided from its 4-tuple with the two ends in a fixed order, so both ends of one
 * connection decide alike on any node (as long as both see the same tuple: not through a
 * Service's address translation). local and peer are 16 bytes each of the caller's memory. */
static __always_inline bool sampled_out(const struct ends *e, __u8 *local, __u8 *peer)
{
	__u64 h = 14695981039346656037ULL;

	if (sample_one_in <= 1)
		return false;
	as_v6(local, e->family, e->local_addr);
	as_v6(peer, e->family, e->peer_addr);
	if (end_before(local, e->local_port, peer, e->peer_port)) {
		h = mix_end(h, local, e->local_port);
		h = mix_end(h, peer, e->peer_port);
	} else {
		h = mix_end(h, peer, e->peer_port);
		h = mix_end(h, local, e->local_port);
	}
	/* FNV-1a alone only multiplies, and a product's low bits depend only on the factors' low
	 * bits: modulo a power of two, the decision followed a few low bits of each byte, so the
	 * even ephemeral ports of one client kept or dropped whole runs of 128 connections (found
	 * by an independent check). A finalizer (murmur3's fmix64) folds the high bits down. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h % sample_one_in != 0;
}

/* Whether the ring takes events of this type. */
static __always_inline bool ring_keeps(__u8 type)
{
	return ring_types & (1u << type);
}

#endif
