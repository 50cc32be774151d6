package podnetreceiver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/receiver/internal/event"
)

// Handshakes go into their series' histogram by the kernel's bounds, failed connects into none;
// handshake_histogram: false emits no histogram at all.
func TestHandshakeHistogram(t *testing.T) {
	open := func(typ event.Type, role event.Role, us uint32, errno int32) event.Event {
		return event.Event{
			Type: typ, Role: role, Time: t0, NetnsIno: 4026532001, CgroupID: 9001, Errno: errno,
			Local: netip.MustParseAddrPort("10.1.0.5:41000"), Peer: netip.MustParseAddrPort("10.1.0.9:8080"), HandshakeMicros: us,
		}
	}
	events := []event.Event{
		open(event.Connect, event.Client, 40, 0),
		open(event.Connect, event.Client, 1_020_000, 0),   // a SYN retransmitted once
		open(event.Connect, event.Client, 3_000_000, 111), // failed: not a handshake
	}
	for _, on := range []bool{true, false} {
		cfg := NewDefaultConfig()
		cfg.HandshakeHistogram = on
		m := newFixtureMetrics(cfg)
		assert.Zero(t, m.add(enrichAll(fixtureResources(cfg), events)))
		md := m.emit(pcommon.NewTimestampFromTime(time.Now()))
		var hists []pmetric.HistogramDataPoint
		for _, rm := range md.ResourceMetrics().All() {
			for _, sm := range rm.ScopeMetrics().All() {
				for _, metric := range sm.Metrics().All() {
					if metric.Name() == "podnet.tcp.handshake.duration" {
						for _, dp := range metric.Histogram().DataPoints().All() {
							hists = append(hists, dp)
						}
					}
				}
			}
		}
		if !on {
			assert.Empty(t, hists, "handshake_histogram: false")
			continue
		}
		require.Len(t, hists, 1, "the established series only")
		dp := hists[0]
		assert.Equal(t, uint64(2), dp.Count())
		assert.InDelta(t, 1.02004, dp.Sum(), 1e-9)
		assert.Equal(t, handshakeBoundsSeconds, dp.ExplicitBounds().AsRaw())
		counts := dp.BucketCounts().AsRaw()
		require.Len(t, counts, len(handshakeBoundsSeconds)+1)
		assert.Equal(t, uint64(1), counts[1], "40 µs: above 25, up to 50")
		assert.Equal(t, uint64(1), counts[15], "1.02 s: above 1, up to 2.5")
	}
}

// A series' handshake points carry what its other points do, server.address included: two
// series of one peer told apart by their DNS names made two histogram points with the same
// attributes (found by an independent check, metrics from events).
func TestHandshakeHistogramCarriesTheSeriesName(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.DNSNames.MetricAttribute, cfg.MetricsAggregation = true, aggregationEvents
	m := newFixtureMetrics(cfg)
	connect := event.Event{
		Type: event.Connect, Role: event.Client, Time: t0, NetnsIno: 4026532001, CgroupID: 9001,
		Local: netip.MustParseAddrPort("10.1.0.5:41000"), Peer: netip.MustParseAddrPort("192.0.2.9:443"), HandshakeMicros: 40,
	}
	events := enrichAll(fixtureResources(cfg), []event.Event{connect, connect})
	events[0].serverName = "api.example" // resolved before the first connect; the second came after its TTL
	assert.Zero(t, m.add(events))
	md := m.emit(pcommon.NewTimestampFromTime(time.Now()))
	var names []any
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, metric := range sm.Metrics().All() {
				if metric.Name() == "podnet.tcp.handshake.duration" {
					for _, dp := range metric.Histogram().DataPoints().All() {
						names = append(names, dp.Attributes().AsRaw()["server.address"])
					}
				}
			}
		}
	}
	assert.ElementsMatch(t, []any{"api.example", nil}, names, "one point per series, each with its own name")
}
