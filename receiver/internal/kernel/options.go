package kernel

import "net/netip"

// HookMode names the set of kernel hooks for TCP state changes. The syscall hooks (accept,
// connect) are classic tracepoints in every mode: they are what gives process context.
// In-kernel aggregation needs no process context and attaches none of them.
type HookMode string

const (
	// HooksAuto picks the cheapest mode that loads on this kernel.
	HooksAuto HookMode = "auto"
	// HooksTPBTF uses the BTF raw tracepoint tp_btf/inet_sock_set_state (cheaper: no
	// tracepoint buffer to fill and a socket read with plain loads).
	HooksTPBTF HookMode = "tp_btf"
	// HooksTracepoint uses the classic tracepoint sock/inet_sock_set_state (any kernel ≥ 4.16).
	HooksTracepoint HookMode = "tracepoint"
)

// HookModes lists the valid settings, for config validation messages.
var HookModes = []HookMode{HooksAuto, HooksTPBTF, HooksTracepoint}

// Options are the load-time settings of the kernel side.
type Options struct {
	Hooks HookMode
	// RingBufferSize in bytes: a power of two and a multiple of the page size. With
	// PerCPURings it is the budget of all rings together (cpuRingSize).
	RingBufferSize uint32
	// PerCPURings gives every CPU its own ring: no lock shared between CPUs, events ordered
	// per CPU only.
	PerCPURings bool
	// MaxTrackedConnections sizes the per-connection LRU map.
	MaxTrackedConnections uint32
	// AggregateInKernel counts connections per metric key in a BPF map (metrics);
	// MaxAggregates bounds that map. Events are then sent only if Events says so too.
	AggregateInKernel bool
	MaxAggregates     uint32
	// Events sends events to the ring (logs) beside the in-kernel aggregation, with the
	// syscall hooks. Without AggregateInKernel events are always sent.
	Events bool
	// RingTypes are the event types the ring takes, as bits 1 << bpf.PodnetEventType (0: all):
	// the others never reserve ring space.
	RingTypes uint32
	// ExcludePorts and ExcludePeers keep connections with these server ports or peers out of
	// every sink, in the kernel (at most 256 each).
	ExcludePorts []uint16
	ExcludePeers []netip.Prefix
	// NoProcessContext attaches no syscall hook: events carry no process, passive opens are
	// reported when their handshake ends, connect() failures before SYN_SENT are not seen.
	NoProcessContext bool
	// SampleOneIn keeps in the ring every abnormal connection and 1 in SampleOneIn of the
	// others (0 or 1: every connection); the aggregates count every one.
	SampleOneIn uint32
	// NoLiveReads: nothing will read open connections (no metrics pipeline), so closes claim
	// their counts without atomics and DrainAggregates skips the progress walk.
	NoLiveReads bool
	// NoListenerScan: nothing will run the listener scan (ListenDrops: no
	// podnet.tcp.listen.overflows), so listening sockets are not kept in `listeners`, which is
	// then one entry: nothing else would empty it.
	NoListenerScan bool
	// UnmarkedReads makes the live reads walk every tracked connection even where marked reads
	// (bpf/progress.h: only the sockets that moved data are visited) would load (tests and
	// benchmarks of the walk that other kernels and `metrics_aggregation: events` get).
	UnmarkedReads bool
	// NATNetns, when set, is the network namespace (a path such as /proc/1/ns/net) whose
	// conntrack NAT translates connections to Services: client events then carry the backend
	// their connection was translated to (bpf/nat.h). Needs Linux 6.4+ and CAP_NET_ADMIN (and
	// CAP_SYS_ADMIN to enter a namespace other than podnet's own); where that fails the rest
	// loads anyway and Tracer.BackendsErr says why.
	NATNetns string
	// BackendInMetrics splits the in-kernel aggregates by backend (with NATNetns).
	BackendInMetrics bool
	// KeyDrops are the aggregation key fields every connection metric drops (bpf.PodnetAggKeyDrop
	// bits): zeroed in the kernel's keys, so that MaxAggregates bounds the series the metrics
	// have, not finer keys.
	KeyDrops uint8
	// SocketLB reads, inside each connect(), the destination the caller passed: where socket-level
	// load balancing changed it, events carry it (the Service) beside the socket's peer (the
	// backend). Only with the syscall hooks (events with process context).
	SocketLB bool
	// ProbedReads keeps the accept hook on probe reads even where bpf_rdonly_cast exists
	// (tests of the path older kernels take).
	ProbedReads bool

	// markedSet (tests only), when not 0, sizes the marked sets instead of markedSetSize.
	markedSet uint32

	// refuseCast (tests only) makes the kernel's verifier reject the bpf_rdonly_cast
	// variants, as a kernel would that lists the kfunc but refuses it to tracepoints.
	refuseCast bool
	// refuseIterators (tests only) makes the verifier reject an iterator program, as a kernel
	// without BPF iterators (before 5.11) or one refusing them would.
	refuseIterators bool

	// noURing (benchmarks only) leaves uring_complete out, as on a kernel without io_uring: the
	// baseline of what it costs.
	noURing bool
	// noTaskCalls (tests only) keeps connect() calls in the pid_tgid-keyed hash, as kernels
	// without task storage for tracing programs do (bpf/calls.h).
	noTaskCalls bool
	// noAtomics (tests only) loads the programs as for a kernel without BPF's atomic exchanges
	// (before 5.12): opens claimed with a plain read and write, no live reads.
	noAtomics bool
}

// sendsEvents says whether the programs write events to the ring (and the syscall hooks, which
// only events need, are attached).
func (o Options) sendsEvents() bool { return !o.AggregateInKernel || o.Events }

// syscallHooks says whether the syscall hooks are attached: only events carry a process.
func (o Options) syscallHooks() bool { return o.sendsEvents() && !o.NoProcessContext }

// CanonicalPrefix is a peer range as podnet matches it: masked, and an IPv4-mapped IPv6 range
// (within ::ffff:0:0/96) as the IPv4 range it is, since podnet reads IPv4-mapped peers as IPv4.
func CanonicalPrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}
