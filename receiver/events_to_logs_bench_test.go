package podnetreceiver

import (
	"net/netip"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/receiver/internal/attribution"
)

// The conversion benchmarks take events attributed already (BenchmarkEnrich is that part,
// paid once per event for logs and metrics together).

// BenchmarkEventsToLogs is the per-event cost of building plog records (target: ≤ 500 ns,
// ≤ 8 allocs per event; see bench/results/go-bench.txt).
func BenchmarkEventsToLogs(b *testing.B) {
	cfg := NewDefaultConfig()
	c := newLogsConverter(cfg.Events, "bench")
	events := enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch))
	perEvent(b, events, func(events []enrichedEvent) { c.convert(events, pcommon.Timestamp(t0)) })
}

// BenchmarkEventsToLogsAttributed adds peer pod names, as Kubernetes attribution would.
func BenchmarkEventsToLogsAttributed(b *testing.B) {
	cfg := NewDefaultConfig()
	c := newLogsConverter(cfg.Events, "bench")
	events := enrichAll(newResources(cfg, podPeers{}), shortConnections(benchBatch))
	perEvent(b, events, func(events []enrichedEvent) { c.convert(events, pcommon.Timestamp(t0)) })
}

// podPeers names every peer as a pod.
type podPeers struct{ attribution.None }

func (podPeers) Peer(netip.Addr, int64) (attribution.Peer, attribution.Span) {
	return attribution.Peer{PodName: "web-0", PodUID: "uid-web-0", Namespace: "shop"}, attribution.Always
}
