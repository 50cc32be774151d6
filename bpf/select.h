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

/* Whether a connection with this peer and server port is excluded. addr is network order, IPv4
 * in its first 4 bytes. */
static __always_inline bool excluded_peer(__u16 family, const __u8 *addr, __u16 server_port)
{
	struct peer_prefix k = { .prefixlen = 128 };

	if (!exclusions)
		return false;
	if (bpf_map_lookup_elem(&excluded_ports, &server_port))
		return true;
	if (family == AF_INET) {
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		__builtin_memcpy(&k.addr[12], addr, 4);
	} else {
		__builtin_memcpy(k.addr, addr, 16);
	}
	return bpf_map_lookup_elem(&excluded_peers, &k) != NULL;
}

/* The same, for a socket whose peer is set (from SYN_SENT on). */
static __always_inline bool excluded_sock(struct sock *sk, __u8 role, enum sock_read rd)
{
	struct event e = {};

	if (!exclusions)
		return false;
	fill_sock(&e, sk, rd);
	return excluded_peer(e.family, e.peer_addr, role == ROLE_SERVER ? e.local_port : e.peer_port);
}

/* Whether the ring takes events of this type. */
static __always_inline bool ring_keeps(__u8 type)
{
	return ring_types & (1u << type);
}

#endif
