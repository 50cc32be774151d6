/* SPDX-License-Identifier: Apache-2.0 */
/* Marks (marked reads, progress.h): a socket that moved data since the last live read is put in
 * the front (`marked_front`) or the current marked set, for that read to visit instead of every
 * tracked connection. Marked by the send and arrival hooks (podnet.bpf.c), by a read that finds
 * data still in flight (progress.h), and at a passive open's handshake end when the connection
 * moved data before it (state.h: a TCP Fast Open child). */
#ifndef PODNET_MARKS_H
#define PODNET_MARKS_H

#include "podnet.h"
#include "maps.h"

/* Set by the loader: the slots of one half of `marked_front`, a power of two, minus one. */
const volatile __u32 front_mask = 0;

/* Set by user space before each swap of the marked sets: the half of `marked_front` the hooks
 * fill (the set `marked` points at: 0 is marked_a's, 1 marked_b's). The swap's wait for running
 * programs covers this too. */
volatile __u32 mark_half = 0;

/* The low half of a socket's address, as a number: the hooks hold the address as a typed
 * pointer, on which the verifier allows no arithmetic (the hash below), but a 32-bit copy of a
 * pointer is a number to programs loaded with CAP_PERFMON. The asm makes that copy an
 * instruction of its own (clang would otherwise multiply the pointer's register in place). The
 * low half is where sockets' addresses differ. */
static __always_inline __u32 address_bits(__u64 key)
{
	__u64 lo;

	asm volatile("r0 = %[in]\n\tw0 = w0\n\t%[lo] = r0" : [lo] "=r"(lo) : [in] "r"(key) : "r0");
	return lo;
}

/* The first slot of one half of the front. */
static __always_inline __u32 front_half(__u32 half)
{
	return half ? front_mask + 1 : 0;
}

/* A socket's slot in one half of the front: a multiplicative hash of its address. */
static __always_inline __u32 front_slot(__u64 key, __u32 half)
{
	__u32 h = address_bits(key) * 0x9E3779B1U;

	h ^= h >> 15; /* addresses are aligned: the product's low bits alone would be too */
	return front_half(half) + (h & front_mask);
}

/* A socket moved data, or may still (progress_of): marked for the next live read. Its slot in
 * the front first: held by it already (most calls), or free and taken. A slot another socket
 * holds sends it to the hash set, lookup first: most calls find it marked there already, and a
 * lookup takes no lock. */
static __always_inline void mark(__u64 key)
{
	__u32 zero = 0, slot;
	__u64 *front;
	__u8 one = 1;
	void *set;

	slot = front_slot(key, mark_half);
	front = bpf_map_lookup_elem(&marked_front, &slot);
	if (front) {
		__u64 held = *(volatile __u64 *)front;

		if (held == key)
			return;
		if (!held && (held = __sync_val_compare_and_swap(front, 0, key)) == 0)
			return;
		if (held == key)
			return; /* taken by another CPU for this very socket */
	}
	set = bpf_map_lookup_elem(&marked, &zero);
	if (!set || bpf_map_lookup_elem(set, &key))
		return;
	if (bpf_map_update_elem(set, &key, &one, BPF_NOEXIST) == -E2BIG)
		count(COUNTER_MARK_FULL);
}

#endif
