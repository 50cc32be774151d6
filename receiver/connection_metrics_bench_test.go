package podnetreceiver

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/receiver/internal/attribution"
)

// BenchmarkConnectionMetricsAdd is the per-event cost of the metrics-only path.
func BenchmarkConnectionMetricsAdd(b *testing.B) {
	cfg := NewDefaultConfig()
	m := newConnectionMetrics(cfg, fixtureSettings)
	events := enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch))
	perEvent(b, events, func(events []enrichedEvent) { m.add(events) })
}

// BenchmarkConnectionMetricsEmit is one metrics_interval's emission of the series the
// benchmark workload creates; it runs once per interval, not per event.
func BenchmarkConnectionMetricsEmit(b *testing.B) {
	cfg := NewDefaultConfig()
	m := newConnectionMetrics(cfg, fixtureSettings)
	m.add(enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch)))
	now := pcommon.NewTimestampFromTime(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		m.emit(now)
	}
}
