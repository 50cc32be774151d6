//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/dnsnames"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// podnetReceiver is one kernel attachment serving a logs and/or a metrics pipeline.
type podnetReceiver struct {
	cfg     *Config
	set     receiver.Settings
	logs    consumer.Logs    // nil when no logs pipeline uses podnet
	metrics consumer.Metrics // nil when no metrics pipeline uses podnet

	// open loads the kernel side and startAttribution starts what names workloads (a scan
	// of the node's /proc, the Kubernetes API); fields so unit tests substitute fakes and
	// need neither root nor the node.
	open             func(kernel.Options) (source, error)
	startAttribution func(component.Host, *metadata.TelemetryBuilder) (startedAttribution, error)
	openNames        func(dnsnames.Options) (dnsSource, error)
	// kubeSyncTimeout bounds that wait; 0 is k8smeta's default (tests shorten it).
	kubeSyncTimeout time.Duration

	src kernelSource // the kernel side while started
	run *running
	// goroutines counts every goroutine Start started, including one a blocked consumer
	// keeps past Shutdown's deadline (tests wait on it).
	goroutines sync.WaitGroup
}

func newReceiver(cfg *Config, set receiver.Settings) *podnetReceiver {
	r := &podnetReceiver{cfg: cfg, set: set, open: openTracer(set.Logger), openNames: openDNSNames}
	r.startAttribution = r.startNodeAttribution
	return r
}

// Start starts attribution (the Kubernetes informers list in the background), loads and
// attaches the kernel programs, waits (bounded by the sync timeout) for the Kubernetes
// metadata's first listing, then starts the reader, the pipeline and the emitter. Errors say
// what is missing (capability, BTF, tracepoint) and leave nothing attached or running; so does
// a ctx that ends during the wait (the collector gave up on starting).
func (r *podnetReceiver) Start(ctx context.Context, host component.Host) error {
	// A logs pipeline that no event type reaches gets nothing, so nothing is loaded for it: no
	// ring, no syscall hooks, which tax every syscall on the node (found by an independent check:
	// five hooks and an 8 MiB ring attached for no record). Metrics are counted as ever.
	logsIdle := r.logs != nil && r.metrics != nil && !r.cfg.logsKeepAny()
	if logsIdle {
		r.logs = nil
		r.set.Logger.Warn("podnet: every log event is disabled (events.<name>.enabled: false): the logs pipeline gets no record from podnet, and nothing is loaded for it (no ring, no syscall hooks); metrics are counted as ever. Enable an event, or remove podnet from the logs pipeline")
	}
	aggregate := r.cfg.aggregateInKernel(r.metrics != nil)
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: r.set.ID, Transport: obsTransport, ReceiverCreateSettings: r.set,
	})
	if err != nil {
		return err
	}
	tb, err := metadata.NewTelemetryBuilder(labelledTelemetry(r.set.TelemetrySettings, r.set.ID))
	if err != nil {
		return err
	}
	// What Start has started so far, undone in reverse order when a later step fails.
	undo := []func(){tb.Shutdown}
	fail := func(err error) error {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return fmt.Errorf("podnet: %w", err)
	}
	started, err := r.startAttribution(host, tb)
	if err != nil {
		if more := kernel.MissingCapabilities(); more != "" {
			return fail(fmt.Errorf("%w; %s", err, more))
		}
		return fail(err)
	}
	attr, stopAttr := started.attr, started.stop
	undo = append(undo, func() { stopAttr() }) // the latest: withDNSNames wraps it
	opts := r.cfg.kernelOptions(aggregate, r.logs != nil, r.metrics != nil)
	// Checked before loading: a netfilter program in a pod's namespace would see no translation.
	backendsAsked := opts.NATNetns != ""
	var notNode error
	if backendsAsked {
		if notNode = r.cfg.ServiceBackends.notInNodeNetns(r.cfg.ProcRoot); notNode != nil {
			opts.NATNetns = ""
		}
	}
	opening := time.Now()
	src, err := r.open(opts)
	if err != nil {
		return fail(err)
	}
	// Series start when the programs began counting, not before loading them (up to a second
	// earlier on a busy node: found by an independent check, 0.5 s counted nowhere yet inside
	// the first points' window).
	attached := src.kernel.CountingSince()
	if attached.IsZero() {
		attached = opening
	}
	undo = append(undo, func() { _ = src.kernel.Close() })
	listeners := r.listenBaseline(src.kernel) // now, not after the wait for names below
	backendsErr := src.kernel.BackendsErr()
	if notNode != nil {
		backendsErr = notNode
	}
	if !backendsAsked && r.cfg.ServiceBackends.Mode != backendsOff {
		r.set.Logger.Info("podnet: service_backends not loaded: nothing this podnet emits carries a backend " +
			"(no logs pipeline with podnet.tcp.connect or podnet.tcp.close records, and service_backends.metric_attribute is off)")
	} else if err := r.cfg.ServiceBackends.started(r.cfg.ServiceBackends.nodeNetns(), backendsErr, r.set.Logger); err != nil {
		return fail(err)
	}
	r.cfg.ServiceBackends.socketLBUnused(r.logs != nil, r.set.Logger)
	r.cfg.Logs.unused(r.logs != nil || logsIdle, r.metrics != nil && !aggregate, r.cfg.Events, r.cfg.ringSettings(), r.set.Logger)
	r.cfg.metricsUnused(r.metrics != nil, r.set.Logger)
	if r.logs != nil && r.metrics == nil && !r.cfg.logsKeepAny() {
		r.set.Logger.Warn("podnet emits nothing: every log event is disabled (events.<name>.enabled: false) and no metrics pipeline uses it; enable an event or remove podnet from the logs pipeline")
	}
	names, stopAttr := r.withDNSNames(stopAttr, tb)
	if started.awaitNames != nil {
		// The programs are attached: what happens meanwhile waits in the ring buffer and the
		// in-kernel aggregates (ring overflow is counted lost as ever) for the reader, started
		// once the first records can be named.
		if err := started.awaitNames(ctx); err != nil {
			return fail(fmt.Errorf("start cancelled while waiting for the Kubernetes API server's first listing: %w", err))
		}
	}
	r.src = src.kernel
	r.run = r.launch(host, src, attached, listeners, aggregate, naming{attr, names, opts.RingCarries(bpf.PodnetEventTypeEVENT_CONNECT) && opts.RingCarries(bpf.PodnetEventTypeEVENT_CLOSE)}, obs, tb, stopAttr)
	return nil
}

// Shutdown detaches the programs, drains the ring until it is empty and delivers what it
// read, then unloads everything. When ctx's deadline (or shutdown_timeout, whichever is first:
// the collector passes no deadline) passes first, deliveries are cancelled, whatever was read
// but not delivered is counted in otelcol_podnet_events_dropped, and Shutdown returns even if
// a consumer never does. Safe to call without Start.
func (r *podnetReceiver) Shutdown(ctx context.Context) error {
	run := r.run
	if run == nil {
		return nil
	}
	r.run, r.src = nil, nil
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ShutdownTimeout)
	defer cancel()
	defer context.AfterFunc(ctx, run.cancel)()
	// With metrics, the logs get three quarters of the time left: the final metrics, exact and
	// (in-kernel) independent of the logs, must not wait behind a logs exporter that does not
	// answer.
	deadline, _ := ctx.Deadline()
	logsShare := time.Until(deadline)
	if r.metrics != nil {
		logsShare = logsShare * 3 / 4
	}
	logsCtx, cancelLogs := context.WithDeadline(ctx, time.Now().Add(logsShare))
	defer cancelLogs()
	defer context.AfterFunc(logsCtx, run.cancelLogs)()
	// Detach first: the programs stop for good, so the ring and the aggregates then hold
	// every event they will ever write, and the drains below end with nothing left behind
	// however busy the node is (draining while attached never ends empty under traffic: what
	// arrived between the last read and the detach would be counted submitted, never read).
	errs := []error{run.kernel.detach()}
	if run.reader != nil {
		// The reader drains until the ring is empty; it ends soon after the deadline at the
		// latest (it then counts the rest without decoding).
		errs = append(errs, run.reader.stop())
		<-run.readerDone
		if !waitFor(logsCtx, run.pipelineDone) {
			run.handoff.abandon()
		}
	}
	close(run.stopEmitter)
	if !waitFor(ctx, run.emitterDone) {
		// Its consumer did not answer by the deadline: its context ends now; the maps are not
		// closed under a drain, and the metrics it was delivering are said to be late.
		run.cancel()
		grace, cancelGrace := context.WithTimeout(context.Background(), emitterGrace)
		defer cancelGrace()
		if !waitFor(grace, run.emitterDone) {
			r.set.Logger.Warn("podnet: the final metrics were not delivered by shutdown_timeout: the metrics pipeline did not answer")
		}
	}
	errs = append(errs, run.kernel.close())
	if run.reader != nil {
		run.loss.logSummary(r.set.Logger)
	}
	run.cancel()
	run.stopAttr()
	run.telemetry.Shutdown()
	return errors.Join(errs...)
}

// emitterGrace is how long Shutdown waits past its deadline for a metrics consumer to answer its
// cancelled context, so that the maps are not closed under the last drain.
const emitterGrace = 500 * time.Millisecond

// waitFor reports whether done closed before ctx ended.
func waitFor(ctx context.Context, done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	case <-ctx.Done():
		select {
		case <-done: // both ready: done counts
			return true
		default:
			return false
		}
	}
}
