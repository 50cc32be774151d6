/* SPDX-License-Identifier: Apache-2.0 */
/* Working memory of the state and accept programs outside the stack: the event the aggregates
 * count (to_metrics), and the subprograms' (classify_sock, backend_of, dialled_of).
 *
 * The verifier limits a program and the subprograms it calls to 512 bytes of stack together.
 * Kernels that give tracing programs private stacks (6.13+, on some builds) count each
 * subprogram alone; all others add them up, and the state programs use most of their 512 bytes
 * themselves. Their largest local (an event, 160 bytes) and their subprograms' tuples and map
 * keys are therefore kept here. Found when a kernel update refused sampling and `exclude`.
 *
 * A run can be interrupted on its CPU by a run in softirq (a state change on packet receive),
 * and that one in turn by hardirq or NMI context: one slot per nesting level, taken by `depth`.
 * A run restores depth before it returns, so an interrupted run resumes with its slot intact;
 * an interruption between the read and the write of depth leaves depth as the interrupted run
 * wrote it, since the interrupting run restored what it read. */
#ifndef PODNET_SCRATCH_H
#define PODNET_SCRATCH_H

#include "podnet.h"
#include "maps.h"
#include "sock.h"

/* Process, softirq, hardirq, NMI: no context nests into itself on one CPU. */
#define SCRATCH_LEVELS 4

struct scratch_slot {
	struct event event; /* the outcome the aggregates key and count (state.h fill_local) */
	struct ends ends;
	__u8 pad[2];
	struct peer_prefix prefix; /* excluded_peer's key */
	struct nat_key nat;        /* backend_of's key */
	__u8 a[16];                /* IPv6 forms of addresses (as_v6) */
	__u8 b[16];
	__u8 c[16];
	__u8 sa[32]; /* a sockaddr read from user memory (connect_dest_in: SOCKADDR_READ bytes) */
};

struct scratch {
	__u32 depth; /* slots in use on this CPU */
	struct scratch_slot slots[SCRATCH_LEVELS];
};

/* Size: one element per CPU (SCRATCH_LEVELS slots of ~300 bytes). Written and read only within
 * a program's run on its own CPU (migration is disabled while a BPF program runs). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

/* A key in read-only memory, so that looking up the scratch takes no stack. */
static const __u32 scratch_key = 0;

/* This CPU's scratch with a slot taken (*slot), or NULL: every slot taken. No nesting of
 * contexts reaches that (one slot per kind of context, and no run takes two), so it is not
 * counted; the callers would decide nothing (nothing excluded, sampled out or translated) and
 * to_metrics would count nothing. */
static __always_inline struct scratch *scratch_take(struct scratch_slot **slot)
{
	struct scratch *s = bpf_map_lookup_elem(&scratch, &scratch_key);
	__u32 level;

	if (!s)
		return NULL;
	level = s->depth;
	if (level >= SCRATCH_LEVELS)
		return NULL;
	s->depth = level + 1;
	*slot = &s->slots[level];
	return s;
}

/* Gives the slot scratch_take took back. */
static __always_inline void scratch_give(struct scratch *s)
{
	s->depth = s->depth - 1;
}

#endif
