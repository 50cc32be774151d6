package podnetreceiver

import (
	"fmt"
	"net/netip"
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

// BenchmarkConnectionMetricsAddServiceGraph is BenchmarkConnectionMetricsAdd with pods named
// at both ends, without and with the opt-in service graph: its cost per event is the
// difference of the two (compare within one run).
func BenchmarkConnectionMetricsAddServiceGraph(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			cfg := NewDefaultConfig()
			cfg.Metrics.TracesServiceGraphRequestTotal.Enabled = on
			cfg.Metrics.TracesServiceGraphRequestFailedTotal.Enabled = on
			m := newConnectionMetrics(cfg, fixtureSettings)
			events := enrichAll(newResources(cfg, podsEverywhere{}), shortConnections(benchBatch))
			perEvent(b, events, func(events []enrichedEvent) { m.add(events) })
		})
	}
}

// podsEverywhere names every local end and every peer as a pod of a Deployment.
type podsEverywhere struct{ attribution.None }

func (podsEverywhere) Local(netns uint32, _ uint64) attribution.Local {
	return attribution.Local{PodName: fmt.Sprintf("web-6d4cf56db6-%05d", netns%100000), Namespace: "shop", Workload: "web"}
}

func (podsEverywhere) Peer(a netip.Addr, _ int64) (attribution.Peer, attribution.Span) {
	return attribution.Peer{PodName: "api-7f8b9c6d5-" + a.String(), Namespace: "shop", Workload: "api"}, attribution.Always
}
