//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/event"
)

// running is what Start started and Shutdown stops.
type running struct {
	reader  *ringReader // nil with in-kernel aggregation
	handoff *handoff
	kernel  *kernelSide
	cancel  context.CancelFunc // ends deliveries: Shutdown's deadline passed
	// cancelLogs ends the reader's and the pipeline's deliveries first: the logs' share of
	// Shutdown's deadline passed (the final metrics keep the rest).
	cancelLogs   context.CancelFunc
	stopEmitter  chan struct{}
	readerDone   chan struct{}
	pipelineDone chan struct{}
	emitterDone  chan struct{}
	stopAttr     func()
	telemetry    *metadata.TelemetryBuilder
	loss         *lossReporter
}

// launch wires and starts the goroutines: reader → hand-off → pipeline, and the emitter.
// attached is when the programs began counting (Start may have waited since, for names), and
// listeners the listener scan taken then (nil: none), the baseline of listen.overflows.
func (r *podnetReceiver) launch(host component.Host, src source, attached time.Time, listeners []bpf.PodnetListenDrops, aggregate bool, nm naming,
	obs *receiverhelper.ObsReport, tb *metadata.TelemetryBuilder, stopAttr func(),
) *running {
	loss := &lossReporter{tb: tb}
	loss.fromZero()
	warn := &warnLimiter{logger: r.set.Logger, every: time.Minute}
	exclude := newExclusions(r.cfg.Exclude)
	ctx, cancel := context.WithCancel(context.Background()) // Shutdown calls cancel (running.cancel)
	logsCtx, cancelLogs := context.WithCancel(ctx)          //nolint:gosec // G118: Shutdown calls it (running.cancelLogs)
	run := &running{
		kernel:      &kernelSide{src: src.kernel, loss: loss, warn: warn},
		cancel:      cancel,
		cancelLogs:  cancelLogs,
		stopEmitter: make(chan struct{}),
		emitterDone: make(chan struct{}),
		stopAttr:    stopAttr,
		telemetry:   tb,
		loss:        loss,
	}
	iterErr := src.kernel.IteratorsUnavailable()
	if iterErr != nil {
		r.set.Logger.Warn("podnet: open connections cannot be read on this kernel: bytes and retransmits are counted "+
			"only at close, podnet.tcp.connections.active and podnet.tcp.listen.overflows are not reported, and connections open before podnet started "+
			"are found from /proc for logs only (their bytes and closes are not tracked; the closes count as untracked)", zap.Error(iterErr))
	}
	var metrics *sharedMetrics
	em := &emitter{
		kernel: run.kernel, consumer: r.metrics,
		obs: obs, loss: loss, warn: warn, poll: r.cfg.PollInterval, interval: r.cfg.MetricsInterval,
		drained: pcommon.NewTimestampFromTime(attached), // the programs count from then on
	}
	if r.metrics != nil {
		metrics = &sharedMetrics{m: newConnectionMetrics(r.cfg, r.set)}
		metrics.m.countsActive = iterErr == nil
		em.metrics, em.aggregates = metrics, nm.enricher(r.cfg)
		em.overflows, em.exclude = newOverflowLedger(namespaceListenDrops(r.cfg.ProcRoot)), exclude
		if listeners != nil {
			em.overflows.prime(listeners) // drops from before Start are not counted
		}
	}
	ringEvents := src.ring != nil
	r.goroutines.Go(func() {
		defer close(run.emitterDone)
		if !ringEvents {
			// No events to report the found connections in; the scan still makes their
			// progress and closes counted.
			run.kernel.findExisting(nil, r.set.Logger)
		}
		em.run(ctx, run.stopEmitter)
	})
	if !ringEvents {
		return run
	}

	run.handoff = newHandoff(loss)
	var conv *logsConverter
	if r.logs != nil {
		conv = newLogsConverter(r.cfg.Events, r.set.BuildInfo.Version)
	}
	run.handoff.records = func(events []enrichedEvent) int64 {
		if conv == nil {
			return 0
		}
		return int64(conv.kept(events))
	}
	run.reader = &ringReader{
		ring: src.ring, clock: event.NewClock(), exclude: exclude,
		enrich: nm.enricher(r.cfg),
		out:    run.handoff, loss: loss, poll: r.cfg.PollInterval,
		found: func(c *event.Clock) []event.Event {
			if iterErr != nil {
				sampled := r.cfg.sampleOneIn(r.logs != nil) > 1
				return findInProc(r.cfg.ProcRoot, r.cfg.MaxTrackedConnections, r.cfg.Logs.ProcessAttributes, sampled, r.set.Logger)
			}
			return run.kernel.findExisting(c, r.set.Logger)
		},
		failed: func(err error) {
			r.set.Logger.Error("podnet stopped reading the ring buffer", zap.Error(err))
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		},
	}
	p := &pipeline{in: run.handoff, logs: r.logs, obs: obs, loss: loss, warn: warn}
	if !aggregate {
		run.reader.metrics = metrics // counted from the events; otherwise the kernel counts them
	}
	p.conv = conv
	run.readerDone, run.pipelineDone = make(chan struct{}), make(chan struct{})
	r.goroutines.Go(func() {
		defer close(run.readerDone)
		run.reader.run(logsCtx)
	})
	r.goroutines.Go(func() {
		defer close(run.pipelineDone)
		p.run(logsCtx)
	})
	return run
}
