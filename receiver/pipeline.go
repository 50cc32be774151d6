//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receiverhelper"

	"github.com/podnet/podnet/internal/metadata"
)

// obsTransport and obsFormat label the collector's standard receiver telemetry
// (otelcol_receiver_accepted_log_records and its siblings) for podnet.
const obsTransport = "ebpf"

var obsFormat = metadata.Type.String()

// pipeline is the goroutine between the reader and the collector: it converts each batch to
// logs and consumes them. A ConsumeLogs may take long (an exporter's full queue); meanwhile the
// reader keeps draining the ring into the hand-off (and, in events mode, counting the metrics:
// they never wait behind the logs).
type pipeline struct {
	in      *handoff
	logs    consumer.Logs
	conv    *logsConverter // nil without a logs pipeline
	obs     *receiverhelper.ObsReport
	loss    *lossReporter
	warn    *warnLimiter
	refusal refusalBackoff
}

// run delivers until the reader closes the hand-off. ctx ends at Shutdown's deadline.
func (p *pipeline) run(ctx context.Context) {
	for b := range p.in.ready {
		p.deliver(ctx, b)
		p.in.release(b)
	}
}

func (p *pipeline) deliver(ctx context.Context, b *batch) {
	n := p.in.records(b.events)
	if p.in.isAbandoned() {
		return // counted by Shutdown
	}
	if ctx.Err() != nil {
		p.in.settle(n, n)
		return
	}
	var refused int64
	if p.conv != nil {
		now := time.Now()
		if err := p.refusal.holding(now); err != nil {
			// Refused a moment ago: counted as refused again without building the records.
			if records := p.conv.kept(b.events); records > 0 {
				octx := p.obs.StartLogsOp(ctx)
				p.obs.EndLogsOp(octx, obsFormat, records, err)
				refused = int64(records)
				p.warn.warn(logsRefused, err)
			}
		} else if ld, records := p.conv.convert(b.events, pcommon.NewTimestampFromTime(b.read)); records > 0 {
			octx := p.obs.StartLogsOp(ctx)
			err := p.logs.ConsumeLogs(octx, ld)
			p.obs.EndLogsOp(octx, obsFormat, records, err)
			p.refusal.answered(err, time.Now())
			if err != nil {
				refused = int64(records)
				p.warn.warn(logsRefused, err)
			}
		}
	}
	p.in.settle(n, refused)
}

const logsRefused = "podnet: the logs pipeline refused a batch; its events are counted in otelcol_podnet_events_dropped (while a memory_limiter keeps refusing, podnet offers it a batch every 50 ms to 1 s and counts the rest refused without building their records)"

// memoryRefusal is how the collector's memory_limiter refuses data: its ErrDataRefused, in a
// package internal to the collector, so matched by its text (TestMemoryLimiterRefusalIsKnown
// holds it to the real processor's).
const memoryRefusal = "data refused due to high memory usage"

// refusalBackoff paces the batches offered to a logs pipeline while a memory_limiter refuses
// them: a refused batch was built for nothing, and building them at the node's event rate made
// garbage faster than the Go GC, already held back by GOMEMLIMIT, could collect it (found by an
// independent check: the collector OOM-killed with a hung exporter at full rate while its
// memory_limiter refused). After two such refusals in a row (one alone may be a moment's) the
// batches of the next 50 ms are counted refused unbuilt; the wait doubles while the refusals go
// on, up to 1 s, and ends at the first batch taken. Any other refusal (an exporter that fails,
// a full queue) paces nothing: a refused batch costs what a taken one does, and the pipeline may
// be one of several the collector fans podnet's batches out to, each refusal failing the whole
// fan-out: held back, the batches never reached the pipelines that took them (found by an
// independent check: a healthy exporter got 435 of 1,640 records beside a dead one).
type refusalBackoff struct {
	err   error // the last refusal, reported for the batches not offered
	until time.Time
	wait  time.Duration
	inRow int // refusals of offered batches since the last batch taken
}

const (
	refusalWaitMin = 50 * time.Millisecond
	refusalWaitMax = time.Second
)

// holding returns the last refusal while batches are not offered, nil otherwise.
func (r *refusalBackoff) holding(now time.Time) error {
	if r.err != nil && now.Before(r.until) {
		return r.err
	}
	return nil
}

// answered notes the pipeline's answer to an offered batch.
func (r *refusalBackoff) answered(err error, now time.Time) {
	if err == nil || !strings.Contains(err.Error(), memoryRefusal) {
		*r = refusalBackoff{}
		return
	}
	if r.inRow++; r.inRow < 2 {
		return
	}
	r.err = err
	r.wait = min(max(2*r.wait, refusalWaitMin), refusalWaitMax)
	r.until = now.Add(r.wait)
}

// sharedMetrics is the connection metrics aggregator shared by the pipeline goroutine (which
// adds events) and the emitter (which adds kernel aggregates and emits).
type sharedMetrics struct {
	mu sync.Mutex
	m  *connectionMetrics
}

func (s *sharedMetrics) add(events []enrichedEvent) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.add(events)
}

func (s *sharedMetrics) emit(now pcommon.Timestamp) pmetric.Metrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.emit(now)
}
