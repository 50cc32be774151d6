//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
)

// Metrics from events, server.address on, server.port dropped from the series: the kernel zeroes
// the port in its keys (AGG_KEY_DROP_PORT; it keeps the peer address while server.address is
// on), so an open connection's drained progress comes without it, while its connect counted the
// name under the event's own: the drain found no name, and the bytes went to a series without
// server.address (found by an independent check).
func TestDrainsAreNamedWithThePortDropped(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep []metadata.PodnetTCPConnectionsMetricAttributeKey
		drop uint8
		key  bpf.PodnetAggKey
	}{
		{
			"port dropped",
			[]metadata.PodnetTCPConnectionsMetricAttributeKey{"podnet.connection.role", "network.peer.address", "error.type", "server.address"},
			uint8(bpf.PodnetAggKeyDropAGG_KEY_DROP_PORT),
			bpf.PodnetAggKey{NetnsIno: 4026532001, CgroupId: 9001, Family: 2, PeerAddr: [16]byte{10, 1, 0, 9}, Role: uint8(event.Client)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) { drainNamedWithDrops(t, tc.keep, tc.drop, &tc.key) })
	}
}

func drainNamedWithDrops(t *testing.T, keep []metadata.PodnetTCPConnectionsMetricAttributeKey, drop uint8, k *bpf.PodnetAggKey) {
	cfg := NewDefaultConfig()
	cfg.MetricsAggregation = aggregationEvents
	cfg.DNSNames.MetricAttribute = true
	cfg.Metrics.PodnetTCPConnections.EnabledAttributes = keep
	require.NoError(t, cfg.Validate())
	require.NotZero(t, cfg.kernelKeyDrops()&drop)

	m := newFixtureMetrics(cfg)
	local := fixtureResources(cfg).get(resourceKey{netnsIno: 4026532001, cgroupID: 9001})
	peer := netip.MustParseAddrPort("10.1.0.9:5432")
	now := pcommon.NewTimestampFromTime(time.Now())
	m.add([]enrichedEvent{{
		Event: event.Event{
			Type: event.Connect, Role: event.Client, NetnsIno: 4026532001, CgroupID: 9001,
			Local: netip.MustParseAddrPort("10.1.0.5:40000"), Peer: peer,
		},
		local: local, serverName: "db.example",
	}})
	// The drain of its progress: the kernel's key, projected; events mode looks nothing up.
	drained, err := event.Addr(k.Family, k.PeerAddr)
	require.NoError(t, err)
	m.addAggregate(k, &bpf.PodnetAggValue{BytesSent: 1000}, drained, local, attribution.Peer{}, netip.Addr{}, attribution.Peer{}, "", now, now)
	got := bytesSentByName(m.emit(pcommon.NewTimestampFromTime(time.Now())))
	assert.Equal(t, map[string]int64{"db.example": 1000}, got, "the open connection's bytes under its connect's name")
}

func bytesSentByName(md pmetric.Metrics) map[string]int64 {
	out := map[string]int64{}
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, mt := range sm.Metrics().All() {
				if mt.Name() != "podnet.tcp.bytes_sent" {
					continue
				}
				for _, dp := range mt.Sum().DataPoints().All() {
					name := "<none>"
					if v, ok := dp.Attributes().Get("server.address"); ok {
						name = v.Str()
					}
					out[name] += dp.IntValue()
				}
			}
		}
	}
	return out
}
