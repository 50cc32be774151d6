/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel <-> user-space contract. bpf2go generates the Go types from this file's BTF
 * (-type event -type event_type -type role -type counter -type agg_key -type agg_value), so
 * this is the only definition.
 * Padding is explicit and -Wpadded is an error here: a hole would make the Go type
 * and the C layout disagree silently. */
#ifndef PODNET_H
#define PODNET_H

/* Holes must be explicit (the Go side is generated from this layout). */
#pragma clang diagnostic push
#pragma clang diagnostic error "-Wpadded"

enum event_type {
	EVENT_CONNECT = 1, /* active open ended: established (error 0) or failed (error = errno) */
	EVENT_ACCEPT = 2,  /* passive open accepted by a process (or, never accepted, reported at close) */
	EVENT_CLOSE = 3,   /* an established connection reached CLOSE */
	EVENT_FOUND = 4,   /* an established connection that predates podnet, found when it started (progress.h) */
};

/* Bits of event.flags. */
enum event_flag {
	EVENT_FLAG_ROLE_GUESSED = 1, /* role inferred (a listener on the local port), not seen at the open */
	EVENT_FLAG_FOUND = 2,        /* the connection predates podnet: found at start, its open and start unknown */
	EVENT_FLAG_DIALLED = 4,      /* socket-level load balancing translated connect()'s destination: backend_* hold
				      * the address the caller dialled (the Service), the peer is the backend (nat.h) */
	EVENT_FLAG_OPEN_UNSEEN = 8,  /* accept: established before podnet loaded (conn_info.open_unseen); not a new connection */
};

/* How an established connection ended (event.close_reason, the closed counts' index). */
enum close_reason {
	CLOSE_NORMAL = 1,         /* the FIN exchange: closed from FIN_WAIT2, CLOSING or LAST_ACK */
	CLOSE_RESET_RECEIVED = 2, /* the peer reset it */
	CLOSE_RESET_SENT = 3,     /* this end aborted it: the kernel resets a connection it closes from
				   * ESTABLISHED, CLOSE_WAIT or FIN_WAIT1 (SO_LINGER 0, unread data, abort) */
	CLOSE_TIMEOUT = 4,        /* retransmissions, keepalives or TCP_USER_TIMEOUT ran out */
	CLOSE_REASON_MAX = 5,
};

enum role {
	ROLE_CLIENT = 1,
	ROLE_SERVER = 2,
};

/* Indexes of the per-CPU `counters` array. */
enum counter {
	COUNTER_RESERVE_FAILED = 0, /* ring buffer full: an event was lost */
	COUNTER_CLOSE_UNTRACKED = 1, /* close of a connection opened before podnet started or evicted from `conns` */
	COUNTER_AGGREGATE_FULL = 2, /* in-kernel aggregation: events (opens, closes) that found no room for their key this interval, folded into the overflow key */
	COUNTER_SUBMITTED = 3, /* events produced for the ring: submitted == read + lost (reserve failed) + unread */
	COUNTER_RECURSION_COVERED = 4, /* state changes the kernel skipped in one program, done by the other */
	COUNTER_CLOSE_UNSEEN = 5, /* a tracked connection's close never seen: found when its socket was reused */
	COUNTER_NAT_SEEN = 6, /* new TCP connections the node's conntrack translated (nat.h) */
	COUNTER_BACKEND_LOOKUPS = 7, /* client connections whose destination some translation went to, looked up */
	COUNTER_BACKEND_FOUND = 8, /* ...and found translated: their records name the backend */
	COUNTER_MARK_FULL = 9, /* a socket that moved data found the marked set full: the next live read walks every connection (progress.h) */
	COUNTER_PROGRESS_VISITED = 10, /* open connections the live reads looked at */
	COUNTER_LISTENERS_FULL = 11, /* a socket began listening and found `listeners` full: listener scans walk every descriptor from then on */
	COUNTER_SAMPLED_OUT = 12, /* connection ends closed whose records logs sampling left out (select.h), counted at their close */
	COUNTER_ACTIVE_UNMOVED = 13, /* a folded close whose open was not folded found no room in active_moved: its -1 went to the overflow key (maps.h) */
	COUNTER_MAX = 14,
};

/* agg_key flags. */
enum agg_key_flag {
	AGG_KEY_DIALLED = 1, /* backend_addr holds connect()'s destination, as EVENT_FLAG_DIALLED: the socket's peer is the backend */
	AGG_KEY_BACKEND = 2, /* backend_addr holds the backend (or, DIALLED, the Service dialled): metrics split by backend */
};

/* Key fields every connection metric drops (`metrics.<name>.attributes`), zeroed in every
 * in-kernel aggregation key (aggregate.h agg_key_drops). */
enum agg_key_drop {
	AGG_KEY_DROP_PEER = 1,  /* network.peer.address and every name read from it */
	AGG_KEY_DROP_PORT = 2,  /* server.port */
	AGG_KEY_DROP_ERROR = 4, /* error.type */
	AGG_KEY_DROP_ROLE = 8,  /* podnet.connection.role */
	AGG_KEY_DROP_FAMILY = 16, /* network.type, with the peer address (which needs its family) */
};

/* Buckets of the handshake-duration histogram: HANDSHAKE_BOUNDS upper bounds (set by the
 * loader, aggregate.h handshake_bounds_us) and one for everything above. */
enum handshake_histogram {
	HANDSHAKE_BOUNDS = 18,
	HANDSHAKE_BUCKETS = 19,
};

/* Errno stand-in for "the application closed the socket before the handshake ended":
 * sk_err is 0 then, and ECANCELED is what the kernel itself uses for an aborted operation
 * (connect_errno in sock.h tells it apart from a connect() that found no free port). */
#define PODNET_ECANCELED 125

struct event {
	__u64 timestamp_ns;   /* CLOCK_BOOTTIME of the event */
	__u64 start_ns;       /* CLOCK_BOOTTIME the connection was established (a failed connect: its SYN sent); 0 = unknown */
	__u64 cgroup_id;      /* cgroup v2 id the socket belongs to (sk_cgrp_data) */
	__u64 bytes_sent;     /* close, found: payload bytes sent, retransmissions excluded */
	__u64 bytes_received; /* close, found: payload bytes received */
	/* close: the part of bytes_sent, bytes_received and retransmits already counted by the
	 * periodic reads of open connections (progress.h, and for a found connection its totals
	 * when found); metrics add only the rest. */
	__u64 counted_bytes_sent;
	__u64 counted_bytes_received;
	__u32 counted_retransmits;
	__u32 netns_ino;      /* inode of the socket's network namespace */
	__u32 pid;            /* tgid that connected/accepted; 0 = no process context known */
	__u32 srtt_us;        /* close: smoothed RTT in microseconds; connect (established), accept: the handshake's duration */
	__u32 retransmits;    /* close, found: tcp_sock.total_retrans; connect, accept: SYN (SYN-ACK) retransmissions */
	__s32 error;          /* connect: positive errno when the open failed, else 0 */
	__u16 family;         /* AF_INET or AF_INET6 */
	__u16 local_port;     /* host byte order */
	__u16 peer_port;      /* host byte order */
	__u8 type;            /* enum event_type */
	__u8 role;            /* enum role */
	__u8 flags;           /* enum event_flag bits */
	__u8 close_reason;    /* close: enum close_reason */
	__u16 backend_port;   /* client: the port the node's NAT translated the destination to (nat.h); 0 = none */
	__u32 sample_one_in;  /* logs sampling on: this connection's records are 1 in this many (1: abnormal, all kept); 0: off */
	__u8 local_addr[16];  /* network byte order; IPv4 in the first 4 bytes */
	__u8 peer_addr[16];
	char comm[16];        /* task comm of pid */
	__u8 backend_addr[16]; /* with backend_port: the translated destination, IPv6 (IPv4 mapped) */
};

/* A listening socket's drops (SYNs and completed handshakes it dropped: its accept queue full,
 * or no memory for a request), written by the listener scan (progress.h) for user space. */
struct listen_drops {
	__u64 sk;        /* the listener (dup'ed descriptors and forks show it more than once) */
	__u64 since;     /* when it began listening (or was found), ns: with sk, which listener */
	__u64 cgroup_id;
	__u32 netns_ino;
	__u32 drops;     /* sk_drops since it began listening (since base): its ListenDrops and more */
	__u16 port;      /* host byte order */
	__u8 closed;     /* LISTEN_CLOSED / LISTEN_REPORTED: stopped listening, its last count kept */
	__u8 _pad;
	__u32 tgid;      /* a process in its namespace: the one that listened, or held it when found */
	__u32 base;      /* sk_drops at its listen(), 0 if found by the scan: a socket listen()ed again
			  * after shutdown() (a server pausing accepts) keeps its earlier drops */
	__u32 _pad2;
};

/* A listener that stopped listening keeps its entry with its last count until one listener scan
 * has reported it (drops it made since the previous scan are counted too), then leaves. */
enum listen_closed {
	LISTEN_OPEN = 0,
	LISTEN_CLOSED = 1,   /* stopped listening since the last scan */
	LISTEN_REPORTED = 2, /* the last scan reported it: the next one drops it */
};

/* In-kernel aggregation (metrics-only pipelines): what a metric series is split by... */
struct agg_key {
	__u64 cgroup_id;
	__u32 netns_ino;
	__u16 family;
	__u16 server_port; /* the peer's port for a client, the local one for a server */
	__s32 error;       /* connects only */
	__u8 role;
	__u8 flags;         /* enum agg_key_flag */
	__u16 unused;       /* 0: keeps the key free of padding (a backend's port is on no series) */
	__u8 peer_addr[16];
	__u8 backend_addr[16];
};

/* ...and what it counts, since user space last drained the key. */
struct agg_value {
	__u64 connections; /* connects (established or failed) and accepts */
	__u64 closed;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 retransmits;
	__u64 duration_ns; /* of closed connections whose start is known */
	__u64 active;      /* open connections at the last periodic read (progress.h): a value, not a sum */
	/* Marked reads (progress.h): opens minus closes of established connections this interval;
	 * `active` is then not written, user space keeps the running sum per key. Beside the open
	 * and close counts: one cache line for what every open and close adds. */
	__s64 active_delta;
	__u64 syn_retransmits; /* of the opens: SYN (client) or SYN-ACK (server) retransmissions */
	__u64 closed_by[CLOSE_REASON_MAX]; /* closed, by enum close_reason ([0]: unknown) */
	__u64 handshake_us; /* sum of the handshake durations of the opens that have one */
	__u32 handshake_buckets[HANDSHAKE_BUCKETS]; /* their histogram (32-bit: counts of one interval) */
	__u32 _pad_hs;
};

#pragma clang diagnostic pop

#endif
