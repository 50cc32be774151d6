package receiver

import (
	"net/netip"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
)

// BenchmarkEventsToLogs is the per-event cost of building plog records (target: ≤ 500 ns,
// ≤ 8 allocs per event; see bench/results/go-bench.txt).
func BenchmarkEventsToLogs(b *testing.B) {
	cfg := NewDefaultConfig()
	c := newLogsConverter(cfg.Events, newResources(cfg, attribution.None{}), attribution.None{}, "bench")
	perEvent(b, func(events []event.Event) { c.convert(events, pcommon.Timestamp(t0)) })
}

// BenchmarkEventsToLogsAttributed adds peer pod names, as Kubernetes attribution would.
func BenchmarkEventsToLogsAttributed(b *testing.B) {
	cfg := NewDefaultConfig()
	c := newLogsConverter(cfg.Events, newResources(cfg, podPeers{}), podPeers{}, "bench")
	perEvent(b, func(events []event.Event) { c.convert(events, pcommon.Timestamp(t0)) })
}

// podPeers names every peer as a pod.
type podPeers struct{ attribution.None }

func (podPeers) Peer(netip.Addr) attribution.Peer {
	return attribution.Peer{PodName: "web-0", PodUID: "uid-web-0", Namespace: "shop"}
}
