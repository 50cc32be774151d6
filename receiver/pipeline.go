//go:build linux

package podnetreceiver

import (
	"context"
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

// pipeline is the goroutine between the reader and the collector: it counts each batch into
// the connection metrics, then converts it to logs and consumes them. A ConsumeLogs may take
// long (an exporter's full queue); meanwhile the reader keeps draining the ring into the
// hand-off.
type pipeline struct {
	in      *handoff
	logs    consumer.Logs
	conv    *logsConverter // nil without a logs pipeline
	metrics *sharedMetrics // nil without metrics counted from events
	obs     *receiverhelper.ObsReport
	loss    *lossReporter
	warn    *warnLimiter
}

// run delivers until the reader closes the hand-off. ctx ends at Shutdown's deadline.
func (p *pipeline) run(ctx context.Context) {
	for b := range p.in.ready {
		p.deliver(ctx, b)
		p.in.release(b)
	}
}

func (p *pipeline) deliver(ctx context.Context, b *batch) {
	n := int64(len(b.events))
	if p.in.isAbandoned() {
		return // counted by Shutdown
	}
	if ctx.Err() != nil {
		p.in.settle(n, n)
		return
	}
	if p.metrics != nil {
		p.loss.seriesDropped(p.metrics.add(b.events))
	}
	var refused int64
	if p.conv != nil {
		ld, records := p.conv.convert(b.events, pcommon.NewTimestampFromTime(time.Now()))
		if records > 0 {
			octx := p.obs.StartLogsOp(ctx)
			err := p.logs.ConsumeLogs(octx, ld)
			p.obs.EndLogsOp(octx, obsFormat, records, err)
			if err != nil {
				refused = int64(records)
				p.warn.warn("podnet: the logs pipeline refused a batch; its events are counted in otelcol_podnet_events_dropped", err)
			}
		}
	}
	p.in.settle(n, refused)
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
