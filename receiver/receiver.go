package receiver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	otelreceiver "go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// source is the kernel side as the read loop sees it: a ring-buffer reader plus loss counters.
// *kernel.Tracer implements it; tests of the loop can use a fake.
type source interface {
	SetDeadline(time.Time)
	ReadInto(*ringbuf.Record) error
	Flush() error
	Counters() (kernel.Counters, error)
	DrainAggregates(func(*bpf.PodnetAggKey, *bpf.PodnetAggValue)) error
	Close() error
}

// podnetReceiver is one kernel attachment serving a logs and/or a metrics pipeline.
type podnetReceiver struct {
	cfg     *Config
	set     otelreceiver.Settings
	logs    consumer.Logs    // nil when no logs pipeline uses podnet
	metrics consumer.Metrics // nil when no metrics pipeline uses podnet

	// open loads the kernel side; a field so tests can substitute it.
	open       func(kernel.Options) (source, error)
	attributor attribution.Attributor
	stopAttr   func()

	telemetry *metadata.TelemetryBuilder
	aggregate bool // metrics are counted in the kernel; no events
	host      component.Host
	src       source
	cancel    context.CancelFunc
	done      sync.WaitGroup
}

func newReceiver(cfg *Config, set otelreceiver.Settings) *podnetReceiver {
	return &podnetReceiver{
		cfg:        cfg,
		set:        set,
		open:       openTracer(set.Logger),
		attributor: attribution.None{},
		stopAttr:   func() {},
	}
}

func openTracer(logger *zap.Logger) func(kernel.Options) (source, error) {
	return func(opts kernel.Options) (source, error) {
		t, err := kernel.Open(opts)
		if err != nil {
			return nil, err
		}
		logger.Info("podnet attached to the kernel",
			zap.String("hooks", string(t.Mode())),
			zap.Errors("skipped_hooks", t.Skipped()),
			zap.Bool("aggregate_in_kernel", opts.AggregateInKernel),
			zap.Bool("accept_reads_cast", t.CastReads()),
			zap.Any("program_ids", t.ProgramIDs()),
			zap.Uint32("ring_buffer_size", opts.RingBufferSize))
		return t, nil
	}
}

// Start loads and attaches the kernel programs, then starts the read loop. Errors say what
// is missing (capability, BTF, tracepoint) and leave nothing attached.
func (r *podnetReceiver) Start(_ context.Context, host component.Host) error {
	aggregate, err := r.cfg.aggregateInKernel(r.logs != nil, r.metrics != nil)
	if err != nil {
		return err
	}
	tb, err := metadata.NewTelemetryBuilder(r.set.TelemetrySettings)
	if err != nil {
		return err
	}
	if err := r.startAttribution(host); err != nil {
		tb.Shutdown()
		return fmt.Errorf("podnet: %w", err)
	}
	src, err := r.open(r.cfg.kernelOptions(aggregate))
	if err != nil {
		r.stopAttr()
		tb.Shutdown()
		return fmt.Errorf("podnet: %w", err)
	}
	r.telemetry, r.host, r.src, r.aggregate = tb, host, src, aggregate

	loop := newReadLoop(r)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		loop.run(ctx)
	}()
	return nil
}

// Shutdown stops the read loop, then detaches and unloads everything.
// Safe to call without Start.
func (r *podnetReceiver) Shutdown(context.Context) error {
	if r.src == nil {
		return nil
	}
	// The loop drains what the kernel already wrote, delivers it and exits; only then are the
	// programs detached, so a short run loses nothing that happened before Shutdown.
	r.cancel()
	flushErr := r.src.Flush()
	r.done.Wait()
	err := r.src.Close()
	r.stopAttr()
	r.telemetry.Shutdown()
	r.src = nil
	return errors.Join(flushErr, err)
}
