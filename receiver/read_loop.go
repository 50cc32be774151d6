package receiver

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/event"
)

// maxBatch caps one plog/pmetric batch so a reader that never catches up still delivers, and
// bounds how long one delivery (converting, then the pipeline's consume) holds a CPU: ~1.3 ms
// at ~1.3 µs an event. Batches of 8192 were ~10 ms bursts that the workloads sharing the CPU
// waited behind: under nginx + wrk at full rate with logs, p99 rose 3.0x then and 1.9x at 1024
// (256 was no better and cost more CPU; see README, Performance).
const maxBatch = 1024

// readLoop drains the ring buffer every poll interval (or when the kernel wakes it at a
// backlog mark), decodes in place, and hands each batch to the logs converter and the metrics
// aggregator. It is one goroutine: nothing here needs a lock.
type readLoop struct {
	r        *podnetReceiver
	clock    *event.Clock
	batch    []event.Event
	logs     *logsConverter
	metrics  *connectionMetrics
	loss     lossReporter
	warn     warnLimiter
	exclude  exclusions
	peers    *peerMemo
	nextEmit time.Time
	// nextCounters is when the kernel's loss counters are next read.
	nextCounters time.Time
}

func newReadLoop(r *podnetReceiver) *readLoop {
	peers := newPeerMemo(r.attributor)
	res := newResources(r.cfg, peers)
	l := &readLoop{
		peers:   peers,
		r:       r,
		clock:   event.NewClock(),
		batch:   make([]event.Event, 0, maxBatch),
		loss:    lossReporter{tb: r.telemetry},
		warn:    warnLimiter{logger: r.set.Logger, every: time.Minute},
		exclude: newExclusions(r.cfg.Exclude),
	}
	if r.logs != nil {
		l.logs = newLogsConverter(r.cfg.Events, res, peers, r.set.BuildInfo.Version)
	}
	if r.metrics != nil {
		l.metrics = newConnectionMetrics(r.cfg, r.set, res, peers)
		l.nextEmit = time.Now().Add(r.cfg.MetricsInterval)
	}
	return l
}

// run reads until stop is cancelled. Deliveries use their own context: stop only says when
// to finish, and the last batch must still reach the pipeline.
func (l *readLoop) run(stop context.Context) {
	ctx := context.Background()
	var rec ringbuf.Record
	for {
		l.r.src.SetDeadline(time.Now().Add(l.r.cfg.PollInterval))
		err := l.fill(&rec)
		l.deliver(ctx)
		stopping := stop.Err() != nil
		l.reportKernelCounters(ctx, err != nil || stopping)
		if err != nil {
			l.r.set.Logger.Error("podnet stopped reading the ring buffer", zap.Error(err))
			componentstatus.ReportStatus(l.r.host, componentstatus.NewFatalErrorEvent(err))
			return
		}
		if stopping {
			// Shutdown: a last metrics emission so short runs are complete.
			l.emitMetrics(ctx, true)
			return
		}
		l.emitMetrics(ctx, false)
	}
}

// fill reads until the poll deadline passes, Shutdown flushes the reader, or the batch is
// full. It returns nil then and the reader's error otherwise.
func (l *readLoop) fill(rec *ringbuf.Record) error {
	var decodeErrors int64
	defer func() { l.loss.decodeErrors(decodeErrors) }()
	for len(l.batch) < maxBatch {
		err := l.r.src.ReadInto(rec)
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ringbuf.ErrFlushed) {
			return nil
		}
		if err != nil {
			return err
		}
		l.batch = l.batch[:len(l.batch)+1]
		e := &l.batch[len(l.batch)-1]
		if err := event.Decode(rec.RawSample, l.clock, e); err != nil {
			l.batch = l.batch[:len(l.batch)-1]
			decodeErrors++
		} else if l.exclude.excluded(e.Peer.Addr(), e.ServerPort()) {
			l.batch = l.batch[:len(l.batch)-1]
		}
	}
	return nil
}

func (l *readLoop) deliver(ctx context.Context) {
	defer func() {
		l.batch = l.batch[:0]
		l.peers.reset()
	}()
	l.clock.Sync()
	if len(l.batch) == 0 {
		return
	}
	l.loss.received(int64(len(l.batch)))
	if l.metrics != nil {
		l.loss.seriesDropped(l.metrics.add(l.batch))
	}
	if l.logs == nil {
		return
	}
	ld, n := l.logs.convert(l.batch, pcommon.NewTimestampFromTime(time.Now()))
	if n == 0 {
		return
	}
	if err := l.r.logs.ConsumeLogs(ctx, ld); err != nil {
		l.loss.dropped(int64(n))
		l.warn.warn("podnet: the logs pipeline refused a batch; its events are counted in otelcol_podnet_events_dropped", err)
	}
}

func (l *readLoop) emitMetrics(ctx context.Context, final bool) {
	if l.metrics == nil || (!final && time.Now().Before(l.nextEmit)) {
		return
	}
	l.nextEmit = time.Now().Add(l.r.cfg.MetricsInterval)
	now := pcommon.NewTimestampFromTime(time.Now())
	if l.r.aggregate {
		l.drainAggregates(now)
	}
	md := l.metrics.emit(now)
	if md.DataPointCount() == 0 {
		return
	}
	if err := l.r.metrics.ConsumeMetrics(ctx, md); err != nil {
		l.warn.warn("podnet: the metrics pipeline refused a batch (cumulative values are re-sent next interval)", err)
	}
}

// reportKernelCounters reads the kernel's loss counters once per poll interval, and a last
// time when the loop ends: reading them is eight syscalls, and under load a batch fills, and
// the loop turns, many times per interval.
func (l *readLoop) reportKernelCounters(ctx context.Context, last bool) {
	now := time.Now()
	if !last && now.Before(l.nextCounters) {
		return
	}
	l.nextCounters = now.Add(l.r.cfg.PollInterval)
	c, err := l.r.src.Counters()
	if err != nil {
		l.warn.warn("podnet: cannot read kernel loss counters", err)
		return
	}
	l.loss.kernel(ctx, c)
}

// drainAggregates moves what the kernel counted since the last interval into the cumulative
// series.
func (l *readLoop) drainAggregates(now pcommon.Timestamp) {
	var dropped int64
	err := l.r.src.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		if peer, err := event.Addr(k.Family, k.PeerAddr); err == nil && l.exclude.excluded(peer, k.ServerPort) {
			return
		}
		if !l.metrics.addAggregate(k, v, now) {
			dropped += int64(v.Connections + v.Closed)
		}
	})
	l.loss.seriesDropped(dropped)
	if err != nil {
		l.warn.warn("podnet: cannot read the in-kernel aggregates", err)
	}
}
