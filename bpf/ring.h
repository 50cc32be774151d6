/* SPDX-License-Identifier: Apache-2.0 */
/* The ring-buffer sink: events to user space, and when to wake the reader. */
#ifndef PODNET_RING_H
#define PODNET_RING_H

#include "podnet.h"
#include "maps.h"

/* Set by the loader before load. The reader polls; it is woken only when the backlog (of the
 * ring this CPU writes) is at least this many bytes (a quarter of a ring), never per event... */
const volatile __u64 wakeup_bytes = 1 << 21;

/* ...and at most once per this many nanoseconds: a reader that is behind is awake anyway, and
 * every forced wakeup is an inter-processor interrupt (irq_work) on the submitting CPU. */
const volatile __u64 wakeup_interval_ns = 1000000;

/* When the last forced wakeup was sent (CLOCK_BOOTTIME), by any CPU. Written at most once per
 * wakeup_interval_ns, so sharing it costs nothing; a race between CPUs only sends a second
 * wakeup. */
__u64 last_wakeup_ns = 0;

/* Set by user space when it detaches (kernel/detach.go), before it closes the first link: the
 * links close one at a time over ~0.2 s, and a hook still attached would report what one
 * already detached no longer can (an independent check saw accepts of connections whose
 * handshake the detached state hook missed, 20-48 per shutdown under load). From then on
 * nothing reaches the ring or the aggregates: one cut for every hook. Not counted submitted. */
volatile __u8 stopping = 0;

/* Set by the loader: write to this CPU's ring in `cpu_events` instead of the shared `events`. */
const volatile bool per_cpu_rings = false;

/* The ring this CPU writes to; NULL only if the loader left its slot empty. A program runs on
 * one CPU from start to end (migration is disabled), so reserve and submit find the same ring. */
static __always_inline void *event_ring(void)
{
	__u32 cpu;

	if (!per_cpu_rings)
		return &events;
	cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&cpu_events, &cpu);
}

/* Ring memory for an event, or NULL (counted) when the ring is full. Every event is counted
 * submitted here, before it can be read or lost, so submitted == read + lost + unread holds
 * whenever user space looks. */
static __always_inline struct event *reserve(__u8 type, __u8 role, __u64 now)
{
	struct event *e = NULL;
	void *ring;

	if (stopping)
		return NULL;
	ring = event_ring();
	count(COUNTER_SUBMITTED);
	if (ring)
		e = bpf_ringbuf_reserve(ring, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_RESERVE_FAILED);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->timestamp_ns = now;
	e->type = type;
	e->role = role;
	return e;
}

/* Publishes an event. The reader is woken whenever the backlog is at or past the mark (not only
 * as it crosses it: concurrent submitters can jump over any window), rate-limited so that a
 * backlog that stays high costs one interrupt per interval, not one per event. */
static __always_inline void submit(struct event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP, now;
	void *ring = event_ring();

	if (ring && bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= wakeup_bytes) {
		now = bpf_ktime_get_boot_ns();
		if (now - last_wakeup_ns >= wakeup_interval_ns) {
			last_wakeup_ns = now;
			flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	bpf_ringbuf_submit(e, flags);
}

#endif
