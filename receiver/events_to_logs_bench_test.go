package podnetreceiver

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/xpdata/pref"

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

// BenchmarkEventsToOTLP is building the records and encoding them as an OTLP exporter does,
// then handing them back as the collector's pipeline does once its exporter returned, with and
// without the collector's pdata.useProtoPooling feature gate (alpha since v0.133: pdata's
// values come from and go back to pools instead of the Go heap). Per event; the two in one run
// are the comparison (README, "Tried and dropped").
func BenchmarkEventsToOTLP(b *testing.B) {
	for _, pooling := range []bool{false, true} {
		b.Run(fmt.Sprintf("pooling=%v", pooling), func(b *testing.B) {
			require.NoError(b, featuregate.GlobalRegistry().Set(pref.UseProtoPooling.ID(), pooling))
			b.Cleanup(func() { _ = featuregate.GlobalRegistry().Set(pref.UseProtoPooling.ID(), false) })
			cfg := NewDefaultConfig()
			c := newLogsConverter(cfg.Events, "bench")
			events := enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch))
			var m plog.ProtoMarshaler
			perEvent(b, events, func(events []enrichedEvent) {
				ld, _ := c.convert(events, pcommon.Timestamp(t0))
				pref.MarkPipelineOwnedLogs(ld)
				if _, err := m.MarshalLogs(ld); err != nil {
					b.Fatal(err)
				}
				pref.UnrefLogs(ld)
			})
		})
	}
}
