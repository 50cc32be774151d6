//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"go.uber.org/zap"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// ringSource is the ring-buffer reader role: all the read loop sees of the kernel.
// *ringbuf.Reader implements it; read-loop tests use a fake.
type ringSource interface {
	SetDeadline(time.Time)
	ReadInto(*ringbuf.Record) error
	// Flush wakes a blocked ReadInto, which returns what the ring holds, then ErrFlushed.
	Flush() error
	BufferSize() int
}

// kernelSource is the periodic role: loss counters, the kernel's aggregates, the start-up
// scan, and detaching. *kernel.Tracer implements it.
type kernelSource interface {
	Counters() (kernel.Counters, error)
	DrainAggregates(func(*bpf.PodnetAggKey, *bpf.PodnetAggValue)) error
	// IntervalEnded is when the last drain's interval ended (zero: unknown); callable from
	// DrainAggregates' fn.
	IntervalEnded() time.Time
	// FindExisting runs the start-up scan: fn gets each connection that predates podnet.
	FindExisting(fn func(*bpf.PodnetEvent)) (int, error)
	// IteratorsUnavailable says why open connections are neither read nor found; nil when
	// they are.
	IteratorsUnavailable() error
	// ListenDrops runs the listener scan: every listening socket with its drops.
	ListenDrops(fn func(*bpf.PodnetListenDrops)) error
	// BackendsErr says why Service backends are not read although asked for; nil when they
	// are or were not asked for.
	BackendsErr() error
	// CountingSince is when the programs began counting connections (zero: unknown).
	CountingSince() time.Time
	// CountedUntil is when Detach stopped the programs' counting, its first step (zero
	// before a Detach that succeeded).
	CountedUntil() time.Time
	// Detach stops the programs for good (none still running when it returns); the ring,
	// counters and aggregates stay readable until Close.
	Detach() error
	Close() error
}

// source is what Start opens: the kernel side in its two roles.
type source struct {
	ring   ringSource // nil with in-kernel aggregation: no events, so no reader at all
	kernel kernelSource
}

func openTracer(logger *zap.Logger) func(kernel.Options) (source, error) {
	return func(opts kernel.Options) (source, error) {
		t, err := kernel.Open(opts)
		if err != nil {
			return source{}, err
		}
		rings, ringBytes := t.Rings()
		logger.Info("podnet attached to the kernel",
			zap.String("hooks", string(t.Mode())),
			zap.Errors("skipped_hooks", t.Skipped()),
			zap.Bool("aggregate_in_kernel", opts.AggregateInKernel),
			zap.Bool("accept_reads_cast", t.CastReads()),
			zap.Any("program_ids", t.ProgramIDs()),
			zap.Uint32("ring_buffer_size", opts.RingBufferSize),
			zap.Int("ring_buffers", rings),
			zap.Int("ring_buffer_bytes_each", ringBytes),
			zap.String("live_reads", liveReads(opts, t)))
		if t.Mode() == kernel.HooksTracepoint && opts.Hooks != kernel.HooksTracepoint {
			// Once, at start: a degraded mode chosen for the user deserves more than an info line.
			logger.Warn("podnet: tp_btf hooks did not load, so classic tracepoints are used: they lose every state change "+
				"the kernel skips for recursion (otelcol_podnet_bpf_recursion_misses) and some close reasons and errnos; "+
				"skipped_hooks above says why", zap.Errors("skipped_hooks", t.Skipped()))
		}
		if !t.CgroupIDs() {
			// Once, at start: the kernel does not change while podnet runs.
			logger.Warn("podnet: this kernel's sockets do not name their cgroup (no sock_cgroup_data in its BTF): " +
				"connections of hostNetwork pods, which share the node's network namespace, are attributed to their pod only " +
				"through the connecting or accepting process (and not at all with metrics_aggregation: kernel)")
		}
		s := source{kernel: t}
		// Assigned only when set: a nil reader in the interface would not compare equal to nil.
		if rd := t.Events(); rd != nil {
			s.ring = rd
		}
		return s, nil
	}
}

// liveReads says how the periodic reads of open connections find them (bpf/progress.h), for
// the start log: "marked" (only sockets that moved data), "walk" (every tracked connection), or
// "off" (no metrics pipeline reads them).
func liveReads(opts kernel.Options, t *kernel.Tracer) string {
	switch {
	case opts.NoLiveReads || t.IteratorsUnavailable() != nil:
		return "off"
	case t.MarkedReads():
		return "marked"
	}
	return "walk"
}
