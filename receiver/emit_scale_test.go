//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
)

// ingress is n server series of one pod (one client address each), each with an accept and a
// close: every connection metric has a point per series.
func ingress(n int) []event.Event {
	local := netip.MustParseAddrPort("10.1.1.10:443")
	evs := make([]event.Event, 0, 2*n)
	for j := range n {
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16, byte(j >> 8), byte(j)}), 50000)
		evs = append(evs,
			event.Event{Type: event.Accept, Role: event.Server, Time: t0, Start: t0, NetnsIno: 4026532100, CgroupID: 1, Local: local, Peer: peer, HandshakeMicros: 50},
			event.Event{
				Type: event.Close, CloseReason: event.CloseNormal, Role: event.Server, Time: t0 + 1e6, Start: t0, NetnsIno: 4026532100, CgroupID: 1,
				Local: local, Peer: peer, BytesSent: 100, BytesReceived: 10,
			})
	}
	return evs
}

// One local end's series, more than the builder holds at once (emitChunk), are one
// ResourceMetrics with one point per series in each metric, as with fewer.
func TestManySeriesOfOneLocalEndAreOneResource(t *testing.T) {
	const n = 3*emitChunk + 5
	cfg := NewDefaultConfig()
	m := newFixtureMetrics(cfg)
	m.add(enrichAll(newResources(cfg, attribution.None{}), ingress(n)))
	md := m.emit(pcommon.NewTimestampFromTime(time.Now()))
	require.Equal(t, 1, md.ResourceMetrics().Len(), "one local end, one Resource")
	sm := md.ResourceMetrics().At(0).ScopeMetrics()
	require.Equal(t, 1, sm.Len())
	names := map[string]int{}
	for _, metric := range sm.At(0).Metrics().All() {
		_, twice := names[metric.Name()]
		assert.False(t, twice, "%s once", metric.Name())
		switch metric.Type() {
		case pmetric.MetricTypeSum:
			names[metric.Name()] = metric.Sum().DataPoints().Len()
		case pmetric.MetricTypeGauge:
			names[metric.Name()] = metric.Gauge().DataPoints().Len()
		case pmetric.MetricTypeHistogram:
			names[metric.Name()] = metric.Histogram().DataPoints().Len()
		}
	}
	for _, name := range []string{
		"podnet.tcp.connections", "podnet.tcp.connections.closed", "podnet.tcp.connection.duration",
		"podnet.tcp.bytes_sent", "podnet.tcp.bytes_received", "podnet.tcp.handshake.duration",
	} {
		assert.Equal(t, n, names[name], name)
	}
}

// A series the reader began after the emitter took its time (its first event read after the
// emitter's now: at Shutdown, the ring's last events read after the detach the final metrics
// are stamped at) never has a start after its point, and keeps that start after.
func TestNoPointStartsAfterItsTime(t *testing.T) {
	cfg := NewDefaultConfig()
	m := newFixtureMetrics(cfg)
	now := pcommon.NewTimestampFromTime(time.Now())
	time.Sleep(time.Millisecond)
	m.add(enrichAll(newResources(cfg, attribution.None{}), ingress(1)))
	starts := func(md pmetric.Metrics) map[pcommon.Timestamp]bool {
		seen := map[pcommon.Timestamp]bool{}
		for _, rm := range md.ResourceMetrics().All() {
			for _, metric := range rm.ScopeMetrics().At(0).Metrics().All() {
				if metric.Type() == pmetric.MetricTypeSum {
					for _, dp := range metric.Sum().DataPoints().All() {
						assert.LessOrEqual(t, dp.StartTimestamp(), dp.Timestamp(), metric.Name())
						seen[dp.StartTimestamp()] = true
					}
				}
			}
		}
		return seen
	}
	assert.Equal(t, map[pcommon.Timestamp]bool{now: true}, starts(m.emit(now)))
	later := pcommon.NewTimestampFromTime(time.Now().Add(time.Second))
	assert.Equal(t, map[pcommon.Timestamp]bool{now: true}, starts(m.emit(later)), "the start it was given, kept")
}

// BenchmarkEmitOneLocalEnd is one emission of one pod's n server series (every connection
// metric), per series: the same at 4,000 as at 1,000 series (it grew with n, 46 s for
// 10,000 series: TestManySeriesOfOneLocalEndAreOneResource's emitChunk).
func BenchmarkEmitOneLocalEnd(b *testing.B) {
	for _, n := range []int{1000, 4000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			cfg := NewDefaultConfig()
			m := newFixtureMetrics(cfg)
			m.add(enrichAll(newResources(cfg, attribution.None{}), ingress(n)))
			b.ResetTimer()
			for range b.N {
				m.emit(pcommon.NewTimestampFromTime(time.Now()))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
		})
	}
}
