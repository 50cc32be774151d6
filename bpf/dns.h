/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel <-> user-space contract of the DNS-names program (dns.bpf.c), its own object apart
 * from podnet.bpf.c. bpf2go generates the Go types from this file's BTF (-type response
 * -type counter), so this is the only definition; -Wpadded is an error, as in podnet.h. */
#ifndef PODNET_DNS_H
#define PODNET_DNS_H

#pragma clang diagnostic push
#pragma clang diagnostic error "-Wpadded"

/* The most of a response's DNS message copied to user space: EDNS's recommended UDP payload
 * size (RFC 9715 / DNS flag day 2020), which Go's and most stub resolvers advertise. A longer
 * message (TCP, or larger EDNS buffers) is copied up to here and parsed as far as it goes. */
#define DNS_MAX_PAYLOAD 1232

/* One DNS response delivered to a socket on this node (UDP or TCP, source port 53). */
struct response {
	__u64 time_ns;   /* CLOCK_BOOTTIME when the kernel delivered it to the socket */
	__u32 netns_ino; /* network namespace of the receiving socket: the pod that asked */
	__u16 length;    /* transport payload bytes in the packet (TCP: with the 2-byte length prefix), capped at 65535 */
	__u16 captured;  /* of those, copied into payload (at most DNS_MAX_PAYLOAD) */
	__u8 transport;  /* IPPROTO_UDP (17) or IPPROTO_TCP (6) */
	__u8 _pad[7];
	__u8 payload[DNS_MAX_PAYLOAD];
};

/* Indexes of dns_counters (per-CPU, read by user space every poll interval). */
enum counter {
	COUNTER_SEEN = 0,      /* packets from port 53 with a payload, delivered to a socket */
	COUNTER_LOST = 1,      /* not copied: the ring was full (user space fell behind) */
	COUNTER_NO_SOCKET = 2, /* not copied: no socket to name the network namespace */
	COUNTERS = 3,
};

#pragma clang diagnostic pop

#endif
