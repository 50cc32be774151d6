/* SPDX-License-Identifier: Apache-2.0 */
/* Runs the kernel skips, and the second program that does them.
 *
 * The kernel skips a tp_btf program's run when the same program is already running on that CPU
 * (its per-program recursion guard; counted as a recursion miss). That happens when a TCP state
 * change in softirq (packet receive, timers) interrupts the state program running for one in
 * process context (connect, close). So the state program is attached twice, in this order:
 *   - state_tp_btf does every run it gets, then notes the run in `handled`;
 *   - state_tp_btf_nested runs right after it for the same state change, and does the run only
 *     when it finds no such note: the first one was skipped.
 * When the first is skipped, the second is not: the second runs only after the first has
 * returned, and softirqs do not nest, so both are never running on one CPU at once. A skip of the
 * first is therefore never a loss, and a skip of the second is of a run the first already did.
 * Only interesting() changes are noted: the others need no second chance. A skip of the second
 * leaves its note behind: the second drops those taken during its own run (forget_nested), and
 * notes are tagged (change_tag) so that one left otherwise never matches another change; when
 * every slot is taken a new note overwrites the oldest.
 *
 * Classic tracepoints cannot do this: every kprobe and classic tracepoint program shares one
 * per-CPU guard (bpf_prog_active), so the second program would be skipped with the first. */
#ifndef PODNET_RECURSION_H
#define PODNET_RECURSION_H

#include "maps.h"
#include "sock.h"

/* A state change, as both programs see it: its two states and the socket's send sequence
 * number, which a socket later allocated at the same address will not share. (A note can
 * outlive its change when the second program's run for it is skipped; matching it to another
 * socket's change would lose that change.) */
static __always_inline __u64 change_tag(struct sock *sk, int oldstate, int newstate)
{
	__u64 seq = sock_write_seq(sk, READ_TYPED);

	return (__u64)oldstate | (__u64)newstate << 8 | seq << 32;
}

/* This CPU's notes (never NULL in practice: a per-CPU array's only slot). */
static __always_inline struct handled *notes(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&handled, &zero);
}

/* The first program did this change: note it for the second, in a free slot, or over the oldest
 * note (a pending note is the newest but for those of a nested softirq, which are consumed at
 * once). */
static __always_inline void note_handled(struct handled *h, struct sock *sk, __u64 tag)
{
	__u32 oldest = 0;

#pragma unroll
	for (__u32 i = 0; i < HANDLED_SLOTS; i++) {
		if (!h->sk[i]) {
			oldest = i;
			break;
		}
		if (h->seq[i] < h->seq[oldest])
			oldest = i;
	}
	h->sk[oldest] = (__u64)sk;
	h->tag[oldest] = tag;
	h->seq[oldest] = ++h->notes;
}

/* Whether the first program did this change; its note is consumed. */
static __always_inline bool was_handled(struct handled *h, struct sock *sk, __u64 tag)
{
#pragma unroll
	for (int i = 0; i < HANDLED_SLOTS; i++) {
		if (h->sk[i] == (__u64)sk && h->tag[i] == tag) {
			h->sk[i] = 0;
			return true;
		}
	}
	return false;
}

/* Drops the notes taken since mark, at the end of the second program's run: they are of
 * changes in softirqs that interrupted it, whose second run the kernel skipped (it was busy
 * with this one), so nothing will consume them. */
static __always_inline void forget_nested(struct handled *h, __u64 mark)
{
	if (h->notes == mark)
		return;
#pragma unroll
	for (int i = 0; i < HANDLED_SLOTS; i++) {
		if (h->seq[i] > mark)
			h->sk[i] = 0;
	}
}

#endif
