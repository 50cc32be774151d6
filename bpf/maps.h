/* SPDX-License-Identifier: Apache-2.0 */
/* Every map podnet uses, with who writes, deletes and reads it, and why it has that size. */
#ifndef PODNET_MAPS_H
#define PODNET_MAPS_H

#include "podnet.h"

/* Holes must be explicit (the Go side is generated from this layout). */
#pragma clang diagnostic push
#pragma clang diagnostic error "-Wpadded"

/* Events to user space (ring.h). Written by every program, read by the receiver's ring reader.
 * Size: placeholder; the loader sets it from `ring_buffer_size` (default 8 MiB, about a third of
 * a second of this machine's peak of ~47k connections/s x 4 events x 128 bytes). One page when
 * aggregating in the kernel: the programs still name it, nothing writes or reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 23);
} events SEC(".maps");

/* Events to user space with `ring_buffers: per_cpu` (ring.h): one ring per CPU, so no two CPUs
 * ever take the same ring's lock. Each CPU writes only the ring at its own index, the receiver's
 * reader polls them all. Sizes: placeholders; the loader sets this array to one slot per
 * possible CPU and each ring to `ring_buffer_size` / CPUs (a power of two, at least 64 KiB),
 * then fills every slot before attaching. One slot, never filled, with the shared ring. */
struct cpu_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct cpu_ring);
} cpu_events SEC(".maps");

/* What podnet knows about a connection between its open and its close. */
struct conn_info {
	__u64 start_ns;  /* CLOCK_BOOTTIME when established; 0 while connecting or unknown */
	__u64 cgroup_id; /* the process's cgroup, only where the socket's own is unreadable (sock.h) */
	/* Server, sending events with an accept() hook: the socket's address (its key) until its
	 * open is reported, by accept() or by its close, whichever claims it first (state.h
	 * close_claims_open, accept_claims_open): the other reports nothing. Claimed by an
	 * exchange, as accept() and a reset can run at once on two CPUs; of a value only this
	 * socket's entry holds, as the entry accept() found may be freed and another connection's
	 * by the time it claims. 0 once its open is reported, or when nothing waits for an
	 * accept() hook. */
	__u64 unaccepted;
	__u32 pid;       /* tgid of the connecting/accepting process; 0 = unknown */
	__u8 role;       /* enum role */
	__u8 _spare;
	__u8 closed_from; /* set at its close, for its close's event: the state it closed from (fill_close) */
	__u8 open_counted; /* marked reads: its open was counted open, in the key open_* rebuild (aggregate.h) */
	char comm[16];
	__u32 est_seq;   /* write_seq when established: tells this connection from a later one at the same address */
	__u32 found_fd;  /* the descriptor the scan found it through (with pid: which visit) */
	/* What the periodic reads counted so far (progress.h); COUNTED_CLOSED once closed. 64-bit
	 * all: the programs are built for BPF v1, which has no 32-bit atomic exchange. */
	__u64 counted_sent;
	__u64 counted_received;
	__u64 counted_retrans;
	__u8 found;      /* predates podnet: the start-up scan (progress.h) that found it, 0 if none; its start is unknown */
	__u8 excluded;   /* left out of every sink by `exclude` (select.h), decided when tracked */
	__u8 sampled_out; /* logs sampling (select.h): the ring gets its events only if it ends abnormally */
	__u8 abnormal;   /* set at its close: failed, reset, aborted or retransmitted (kept whatever the sampling) */
	__u16 backend_port; /* client: where the node's NAT sent it (nat.h), with backend_addr; 0 = not translated */
	__u8 connect_err; /* client: the error the socket reported while connecting (errno), 0 = none */
	__u8 dialled;     /* client: backend_* hold connect()'s destination, which socket-level load balancing changed (nat.h) */
	__u8 backend_addr[16];
	__u8 syn_retrans; /* SYN (client) or SYN-ACK (server) retransmissions when the handshake ended */
	__u8 reset_received; /* the peer reset it (tcp_receive_reset) */
	__u8 close_reason;   /* enum close_reason, decided at its close (for the close's event) */
	__u8 active_folded;  /* marked reads: its open was counted open in the overflow key (aggregate.h) */
	__u32 handshake_us;  /* how long the handshake took (state.h handshake_us) */
	/* CLOCK_BOOTTIME its open was seen where its start may not be: a client's SYN_SENT (process
	 * context only: its handshake's duration), a server's accept() (the time of its accept
	 * record, also when sampling holds the record back to its close). 0 = neither. */
	__u64 opened_ns;
	/* Marked reads: the parts of the metric key its open was counted open in that only the
	 * socket holds, for a close the kernel never showed podnet (unseen, state.h): found when
	 * the socket's memory holds a new connection, the open is still taken out of that key
	 * (aggregate.h agg_close_unseen), so `active` does not keep it. */
	__u64 open_cgroup_id;
	__u32 open_netns_ino;
	__u16 open_server_port;
	__u8 open_family; /* AF_INET or AF_INET6: a byte holds either */
	/* Found at start (progress.h find_connection): its record was written. A process whose main
	 * thread exited shows each of its threads to the scan with the same descriptors (the
	 * kernel's iterator skips only threads sharing the main thread's table): one record, not
	 * one per thread. Before it is written, a visit again (a full read buffer retries) writes it. */
	__u8 found_reported;
	__u8 open_peer_addr[16];
	/* Server: established before podnet loaded (it waited in its listener's accept queue) and
	 * tracked from its accept(): like a found connection, its open is not a connection podnet
	 * saw, so its accept event says so (EVENT_FLAG_OPEN_UNSEEN) for `events` metrics. */
	__u8 open_unseen;
	__u8 _pad[7];
};

/* conn_info.counted_* once the close has claimed them (state.h): no periodic read counts more. */
#define COUNTED_CLOSED (~0ULL)

/* Per-connection state, keyed by socket address; state.h is the one place that decides what
 * goes in. Inserted at SYN_SENT (a client, in every mode: its handshake is dated there) and, for
 * a server, at SYN_RECV->ESTABLISHED or, sending events, at accept(), whichever comes first (a
 * TCP Fast Open socket can be accepted before its handshake ends); the other one updates the
 * entry in place. Also inserted by a simultaneous open reaching SYN_RECV with no entry, and by a
 * connecting socket's error report. Inserts use BPF_NOEXIST, so an entry the other hook stored
 * is never overwritten. Deleted at ->CLOSE.
 * LRU so that sockets whose close was never seen cannot fill it. Size: set from
 * `max_tracked_connections` (default 65536 concurrent connections per node); an eviction shows up
 * as COUNTER_CLOSE_UNTRACKED. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_info);
} conns SEC(".maps");

/* A connect() in flight on one thread: only the arguments. Looking at the socket costs ~10
 * probe reads, so it is left to the rare call that fails before SYN_SENT. */
struct connect_call {
	__u64 uaddr;    /* the user's sockaddr pointer, still valid at syscall exit */
	__s32 fd;
	__u32 addrlen;
	__u8 async;     /* the socket reached SYN_SENT: the outcome is reported by the state hook */
	__u8 collected; /* the call only collected an earlier attempt's failure (on_failure_collected) */
	__u8 active;    /* connect_tasks: the thread is inside this connect() (its slot outlives the call) */
	__u8 _pad[5];
};

/* A passive open whose SYN-ACK was retransmitted: when its first SYN-ACK went out (the SYN's
 * arrival, to the µs), so that its handshake is timed (handshake.h handshake_end) rather than
 * estimated from the retransmission count. Keyed by the tuple in its namespace: the request
 * socket the tp_btf/tcp_retransmit_synack program sees becomes another socket (the child) with
 * the same tuple. Written on SYN-ACK retransmissions only (each replacing what an earlier
 * request of the tuple that never completed left), read and deleted when such a handshake ends. Size: handshakes retransmitting SYN-ACKs at once on a node; LRU, so requests
 * that never complete (a SYN flood) cannot fill it: an evicted one's handshake is estimated. */
struct synack_key {
	__u32 netns_ino;
	__u16 family;
	__u16 local_port; /* host byte order */
	__u16 peer_port;
	__u16 _pad;
	__u8 local_addr[16]; /* network byte order; IPv4 in the first 4 bytes */
	__u8 peer_addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct synack_key);
	__type(value, __u64); /* tcp_request_sock.snt_synack: µs of CLOCK_MONOTONIC */
} synack_first SEC(".maps");

/* Keyed by pid_tgid: inserted at sys_enter_connect (any socket type: telling TCP apart would
 * cost the socket lookup this map exists to avoid), marked async at SYN_SENT (same thread),
 * marked collected by the error report of a connect() that only collects an earlier failure,
 * read and deleted at sys_exit_connect, which reports TCP failures that never reached SYN_SENT
 * (no route, no free port). Used where the kernel has no task storage for tracing programs
 * (connect_tasks; calls.h chooses). Size: one entry per thread inside connect(); LRU so a thread
 * that never returns cannot leak an entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct connect_call);
} connect_calls SEC(".maps");

/* The same, in the calling thread's own storage (calls.h), where the kernel lets tracing
 * programs have it (5.12+ here; the loader probes, and otherwise makes this a one-entry
 * placeholder and uses connect_calls). A connect() costs no map insert and delete (README,
 * Kernel requirements, 5.12+): its thread's slot is found from the task, written at sys_enter_connect,
 * marked inactive at sys_exit_connect. Size: one slot per thread that has called connect()
 * while podnet ran, freed by the kernel with its thread (a task storage map has no max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct connect_call);
} connect_tasks SEC(".maps");

/* One interval's in-kernel aggregation (aggregate.h), used instead of `events` when only a
 * metrics pipeline consumes podnet. Written by the state programs (atomic adds: every CPU counts
 * the same keys). Never read while written: user space keeps two of these, and each drain points
 * the programs at the empty one (agg_slot), waits until no program can still hold the old one (a
 * map-in-map update does: synchronize_rcu), then reads, sums and deletes its entries at leisure.
 * Size: set from `max_metric_series` (the keys active within one interval), plus one for the
 * overflow key (aggregate.h) that new keys fold into when the rest is full, counted in
 * COUNTER_AGGREGATE_FULL. A plain hash, not LRU: an eviction would lose counts silently. */
struct agg_interval {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10000);
	__type(key, struct agg_key);
	__type(value, struct agg_value);
};

/* The two interval maps, one per slot; the programs count into the one `agg_slot` (aggregate.h)
 * names, which user space flips at each drain. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct agg_interval);
} aggregates SEC(".maps");

/* Marked reads: the -1 of a close whose connection was counted open in its own key in an
 * earlier interval, when the current interval map lacks that key and is full (aggregate.h
 * agg_close_active). The overflow entry, where the rest of the close is counted, is the wrong
 * place for it: the key's open count is a running sum kept by user space, and would stay up for
 * ever (found by an independent check: `active` stuck at 86 with nothing open). User space
 * takes these out of the keys' sums at each drain. Two sets, switched with the intervals.
 * Size: max_tracked_connections (the loader's): each key in it is, practically, that of a
 * tracked connection closed since the last drain. Elements not preallocated (the path is rare:
 * more keys than max_metric_series in an interval); the hash buckets are, 16 B each per set.
 * Where the kernel has no memory for an element, or the set is full, the -1 goes to the
 * overflow entry, as before these sets existed, and is counted (COUNTER_ACTIVE_UNMOVED: the
 * receiver warns that those keys' open counts stay up). */
struct active_moved_set {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 10000);
	__type(key, struct agg_key);
	__type(value, __s64);
};

struct active_moved_set active_moved_a SEC(".maps");
struct active_moved_set active_moved_b SEC(".maps");

/* The two sets, active_moved_a in slot 0 and _b in slot 1: closes put their -1 in the one
 * `agg_slot` names, with the interval maps' (found by an independent check: switched on its own
 * after the interval's stamp and wait, a set took closes made after the stamp out of its point). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct active_moved_set);
} active_moved SEC(".maps");

/* Marked sockets (progress.h, issue 12): those that sent or received data since the live-progress
 * read last took their set, so that the read visits them instead of every tracked connection.
 * Two sets, alternated like the aggregation intervals: the hooks mark the one `marked` points
 * at, the read takes the other after user space has swapped them (the swap waits until no
 * program still holds the old one). Keyed by socket address, value unused. Size: sockets that
 * move data within one metrics interval, 8192 (the loader lowers it to max_tracked_connections,
 * and to 1 when reads are not marked); a read walks the whole set, so the size is the read's
 * floor (BenchmarkProgressReadPer10kSockets). A socket that finds its set full is counted (COUNTER_MARK_FULL) and the next
 * read walks every tracked connection, as unmarked reads do. */
struct marked_set {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u8);
};

struct marked_set marked_a SEC(".maps");
struct marked_set marked_b SEC(".maps");

/* The set the hooks mark: one slot, pointed at marked_a or marked_b by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct marked_set);
} marked SEC(".maps");

/* The front of the two marked sets (progress.h): a direct-mapped array of socket addresses, one
 * half per set, each slot chosen by a hash of the address, 0 when free. A mark is one load where
 * its socket holds the slot already, one compare-and-swap where the slot is free; only a socket
 * whose slot another one holds goes on to its hash set (a hash lookup per mark, an insert per
 * socket: what BenchmarkMarkPerSyscall measures without the front). Written by the hooks (the half `mark_half` names) and cleared by
 * the read of the other half. Size: twice the marked sets' slots (8192 each, a power of two;
 * the loader sets it with the sets); 128 KiB. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * 8192);
	__type(key, __u32);
	__type(value, __u64);
} marked_front SEC(".maps");

/* Listening TCP sockets, keyed by socket address: inserted when a socket starts listening (the
 * state hook) or is found listening by the start-up scan, deleted when it stops. The listener
 * scan of each metrics interval (progress.h) walks these and refreshes each value, instead of
 * every descriptor of every process (whose count grows with open connections, not listeners).
 * Size: 16384 listeners per node; one that finds it full is counted (COUNTER_LISTENERS_FULL),
 * and user space then scans every descriptor, as kernels without this map do. One entry, unused,
 * where nothing runs the scan (keep_listeners off). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct listen_drops);
} listeners SEC(".maps");

/* Sockets whose connect the state program reported failed at SYN_SENT -> CLOSE before any SYN
 * left, outside a connect() system call: an io_uring connect that found no free local port or
 * tuple (EADDRNOTAVAIL). Its completion (uring_completed) sees the destination port 0 that a
 * connect failing before SYN_SENT leaves too, and must not report it again (found by an
 * independent review: each such failure reported twice). Written by on_close, read and deleted
 * by uring_completed. Size: such failures whose completion has not run yet, on one node; LRU,
 * as an entry whose completion never comes (a connect() not from io_uring) must age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} failed_unsent SEC(".maps");
/* Loss and throughput counters (enum counter). Incremented by programs, read by the receiver
 * each poll interval. Per-CPU so counting never contends. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* State changes the first tp_btf state program did, per CPU, for the second one (recursion.h).
 * Written by state_tp_btf after each interesting change, read and cleared by
 * state_tp_btf_nested right after. Size: a note lives only while the same tracepoint call runs
 * the second program, during which interrupts nest at most one level (a softirq's changes note
 * and clear their own in turn); four slots leave room for notes a skipped second run left
 * (recursion.h clears them). */
#define HANDLED_SLOTS 4
struct handled {
	__u64 sk[HANDLED_SLOTS];  /* the socket's address; 0 = free slot */
	__u64 tag[HANDLED_SLOTS]; /* change_tag(): the states and the socket's sequence number */
	__u64 seq[HANDLED_SLOTS]; /* when noted: the value of `notes` after noting */
	__u64 notes;              /* notes taken on this CPU */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct handled);
} handled SEC(".maps");

/* Listening TCP ports per network namespace, filled by the first pass of the start-up scan
 * (progress.h) and read by its second, to tell accepted connections from client ones. Written
 * and read only by that scan, cleared by the loader after it. Size: listeners on one node
 * (a few per pod: 16384 covers 1000+ pods); a listener that does not fit leaves its accepted
 * connections guessed client unless their port was bound (SOCK_BINDPORT_LOCK), still marked
 * guessed. */
struct listen_port {
	__u32 netns_ino;
	__u16 port;
	__u8 _pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listen_port);
	__type(value, __u8);
} listen_ports SEC(".maps");

/* `exclude.server_ports`: written by the loader before attaching, read by select.h. Size: a
 * list users write by hand; the config accepts at most 256. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u8);
} excluded_ports SEC(".maps");

/* `exclude.peer_cidrs`, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d, prefix + 96) so one trie
 * covers both families. Written by the loader before attaching. Size: as excluded_ports, and one
 * more for the loader's guard entry (select.go ipv4Guard), which an IPv6 range around :: needs
 * (found by an independent check: 256 ranges, ::/0 among them, passed validation and failed
 * Start with ENOSPC). */
struct peer_prefix {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 257);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct peer_prefix);
	__type(value, __u8);
} excluded_peers SEC(".maps");

/* Translated connections in their handshake (nat.h), by original tuple: both addresses IPv6
 * (IPv4 mapped), ports host order. */
struct nat_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 src_port;
	__u16 dst_port;
};

struct nat_backend {
	__u8 addr[16]; /* IPv6, IPv4 mapped */
	__u16 port;
	__u8 _pad[6];
	__u64 ct; /* the conntrack entry's address: the same connection seen again is no new one */
	__u64 noted_ns; /* CLOCK_BOOTTIME when noted, or when a SYN last went through its confirmed entry (nat.h): a note older than a socket's SYN_SENT is not its own */
};

/* Written by nat_seen when the node's conntrack translates a new TCP connection, read and
 * deleted by the client's state program when its handshake ends or fails: an entry lives for
 * one handshake. Size: handshakes through NAT in flight on the node at once; LRU because
 * connections whose client is not on this node (forwarded through its NAT from elsewhere) are
 * noted and never taken, and must age out. A note evicted before its client took it leaves that
 * connection without backend attributes (COUNTER_BACKEND_LOOKUPS - COUNTER_BACKEND_FOUND). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct nat_key);
	__type(value, struct nat_backend);
} nat_backends SEC(".maps");

#pragma clang diagnostic pop

/* Atomic although the slot is this CPU's: a program interrupted between the load and the store
 * of a plain increment by a softirq whose program counts the same slot loses one (measured: a
 * run whose ring records outnumbered `submitted` by one). Uncontended, the locked add costs a
 * few ns. */
static __always_inline void count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &counter);
	if (v)
		__sync_fetch_and_add(v, 1);
}

#endif
