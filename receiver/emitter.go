//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// aggKeyDialled marks an aggregate key whose backend is connect()'s destination (the Service).
const aggKeyDialled = uint8(bpf.PodnetAggKeyFlagAGG_KEY_DIALLED)

// aggKeyBackend marks an aggregate key split by its backend (service_backends.metric_attribute).
const aggKeyBackend = uint8(bpf.PodnetAggKeyFlagAGG_KEY_BACKEND)

// emitter is the periodic work, on its own ticker so the ring reader only reads: the kernel's
// loss counters every poll interval (eight syscalls: not once per batch), and the metrics
// every metrics_interval, draining the kernel's aggregates first (in both aggregation modes:
// they hold the open connections and their progress since the last drain, and with in-kernel
// aggregation the opens and closes too).
type emitter struct {
	kernel   *kernelSide
	metrics  *sharedMetrics // nil without a metrics pipeline
	consumer consumer.Metrics
	// aggregates attributes drained kernel aggregates; nil without metrics.
	aggregates *enricher
	obs        *receiverhelper.ObsReport
	loss       *lossReporter
	warn       *warnLimiter
	poll       time.Duration
	interval   time.Duration
	// drained is when the aggregates were last drained (first: when the programs began
	// counting): what a drain adds happened since, which is where a series it begins starts.
	drained pcommon.Timestamp
	// overflows bounds the listeners' socket drops by their namespaces' ListenDrops; nil
	// without metrics.
	overflows *overflowLedger
	// exclude leaves listeners on excluded server ports out, as their connections are.
	exclude exclusions
}

// run ticks until stop is closed, then emits the metrics a last time so short runs are
// complete. Shutdown closes stop only once the pipeline has counted every event read. ctx
// ends at Shutdown's deadline. The kernel's counters are read on a goroutine of their own: a
// metrics delivery that blocks (an exporter without a queue retrying a dead backend, a full
// blocking queue) must not freeze events_lost while the same backend makes the logs lose
// events (found by an independent check: lost stayed 0 for a minute, 4,480 at Shutdown).
func (e *emitter) run(ctx context.Context, stop <-chan struct{}) {
	countersDone := make(chan struct{})
	go func() {
		defer close(countersDone)
		e.readCountersUntil(stop)
	}()
	defer func() { <-countersDone }()
	if e.metrics == nil {
		<-stop
		return
	}
	emit := time.NewTicker(e.interval)
	defer emit.Stop()
	for {
		select {
		case <-emit.C:
			e.emit(ctx, false)
		case <-stop:
			e.emit(ctx, true)
			return
		}
	}
}

// readCountersUntil exports the kernel's loss counters at once and every poll interval until
// stop: read at once so that every counter exists from Start, at 0, whatever poll_interval
// (found by an independent check: 5 of 18 series there 2 s after Start with 30 s).
func (e *emitter) readCountersUntil(stop <-chan struct{}) {
	e.kernel.readCounters()
	counters := time.NewTicker(e.poll)
	defer counters.Stop()
	for {
		select {
		case <-counters.C:
			e.kernel.readCounters()
		case <-stop:
			return
		}
	}
}

// emit drains and delivers one interval's metrics; final is Shutdown's, which has no next
// interval to re-send what the pipeline refused.
func (e *emitter) emit(ctx context.Context, final bool) {
	clock := func() pcommon.Timestamp {
		// When the drain's interval ended (it reads this after its swap), or now when it did
		// not swap (an error, or nothing to swap).
		if end := e.kernel.src.IntervalEnded(); !end.IsZero() && pcommon.NewTimestampFromTime(end) > e.drained {
			return pcommon.NewTimestampFromTime(end)
		}
		return pcommon.NewTimestampFromTime(time.Now())
	}
	if until, detached := e.kernel.countedUntil(); detached {
		if !final {
			// Shutdown is draining the ring: its final emission holds all of it.
			return
		}
		// The points hold what was counted up to the detach, and say so. Stamped when
		// emitted, seconds later with a slow logs pipeline, they claimed a gap of connections
		// never counted (found by an independent check: a rollout's last point 2.7 s after
		// the detach).
		clock = func() pcommon.Timestamp { return pcommon.NewTimestampFromTime(until) }
	}
	// Stamped when the drain's interval ended: stamped before the drain, the points held
	// connections the kernel counted until its swap (found by an independent check: 60 of 63
	// points held up to 4 connections made up to 18 ms after their time); stamped once all was
	// read, a grace period (~30 ms) after the swap began, they lacked those made between (found
	// by the next).
	md := e.drainAggregates(clock)
	points := md.DataPointCount()
	if points == 0 {
		return
	}
	octx := e.obs.StartMetricsOp(ctx)
	err := e.consumer.ConsumeMetrics(octx, md)
	e.obs.EndMetricsOp(octx, obsFormat, points, err)
	switch {
	case err != nil && final:
		// Not rate-limited: said once, at the end, whatever was said before.
		e.warn.logger.Warn("podnet: the final metrics (since the last interval) were not delivered: the metrics pipeline refused them at shutdown", zap.Error(err))
	case err != nil:
		e.warn.warn("podnet: the metrics pipeline refused a batch (cumulative values are re-sent next interval)", err)
	}
}

// drainAggregates moves what the kernel counted since the last interval into the cumulative
// series, attributing each local end and peer once per drain, and sets every series' open
// connections from it. In events mode the drain holds only the open connections' progress,
// and closes add only the rest, so the two never count the same bytes. The interval it takes
// ends when the kernel's drain has swapped the interval maps, which is before it hands over the
// first key: clock is read then (or after, with no key), so that the interval's attribution
// window [since, now] and its points' time are when it ended. The listeners are scanned before
// the swap, for their counts to be from before it too. It returns the interval's points, taken
// under the same lock as the drain: in events mode the reader adds events under it, and one
// added between the two — made after the interval ended — was in points stamped before it
// (found in CI: a point held a connection begun 1.98 ms after its time).
func (e *emitter) drainAggregates(clock func() pcommon.Timestamp) pmetric.Metrics {
	overflows, scanned := e.scanListeners()
	var dropped int64
	var since, now pcommon.Timestamp
	taken := func() {
		if now != 0 {
			return
		}
		now = clock()
		since = e.drained
		if since == 0 || since > now {
			since = now
		}
	}
	e.aggregates.reset()
	e.metrics.mu.Lock()
	defer e.metrics.mu.Unlock()
	err := e.kernel.drainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		taken()
		if kernel.IsOverflow(k) {
			// Counted in metric_series_dropped by the kernel's AGGREGATE_FULL (loss.go).
			e.metrics.m.foldAggregate(v, since, now)
			return
		}
		peer, err := event.Addr(k.Family, k.PeerAddr)
		if err != nil {
			dropped += int64(v.Connections + v.Closed)
			return
		}
		local := e.aggregates.local(resourceKey{netnsIno: k.NetnsIno, cgroupID: k.CgroupId})
		var backend netip.Addr
		var backendID attribution.Peer
		named := peer // what the peer's names (pod, Service) come from
		if k.Flags&aggKeyBackend != 0 {
			backend = netip.AddrFrom16(k.BackendAddr).Unmap()
			if k.Flags&aggKeyDialled != 0 {
				// Socket-level load balancing: the key holds the Service dialled, the peer is
				// its backend, as on the records (event.Dialled).
				named, backend = backend, peer
			}
			backendID = e.aggregates.peerDuring(backend, int64(since), int64(now))
		}
		peerID := e.aggregates.peerDuring(named, int64(since), int64(now))
		var serverName string
		if e.metrics.m.serverNames.looksUp() && event.Role(k.Role) == event.Client {
			serverName = e.aggregates.serverNameDuring(k.NetnsIno, peer, &peerID, int64(since), int64(now))
		}
		if e.metrics.m.addAggregate(k, v, peer, local, peerID, backend, backendID, serverName, since, now) {
			dropped += int64(v.Connections + v.Closed) // folded into the overflow series
		}
	})
	taken()
	e.metrics.m.settleActive(err == nil, now)
	if err == nil {
		e.drained = now
	}
	e.loss.seriesDropped(dropped)
	if err != nil && !errors.Is(err, errKernelClosed) {
		e.warn.warn("podnet: cannot read the in-kernel aggregates", err)
	}
	if scanned {
		e.metrics.m.setListenOverflows(overflows, e.aggregates.local, since, now)
	}
	return e.metrics.m.emit(now)
}

// scanListeners reads every listener's drops (podnet.tcp.listen.overflows), once per metrics
// interval: a walk of the node's descriptors, so only when the metric is on and the kernel has
// the iterators (Start said once if it has not); scanned false when there is nothing to set.
func (e *emitter) scanListeners() (overflows map[listenKey]int64, scanned bool) {
	if !e.metrics.m.listenOverflows || e.kernel.src.IteratorsUnavailable() != nil {
		return nil, false
	}
	scan, err := e.kernel.listenDrops()
	if err != nil {
		if !errors.Is(err, errKernelClosed) {
			e.warn.warn("podnet: cannot scan listening sockets", err)
		}
		return nil, false
	}
	overflows, unread := e.overflows.take(scan)
	maps.DeleteFunc(overflows, func(k listenKey, _ int64) bool { return e.exclude.ports[k.port] })
	if len(unread) > 0 {
		// Named (found by an independent check: "1 network namespaces" told no one whose).
		e.warn.warn("podnet: listen overflows counted from socket drops (which also count packets a pending handshake refused)",
			fmt.Errorf("the ListenDrops of %d network namespaces were unreadable, none of their listeners' processes being left in them under proc_root: %v",
				len(unread), unread[:min(len(unread), 8)]))
	}
	return overflows, true
}
