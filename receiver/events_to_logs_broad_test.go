package podnetreceiver

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/plogtest"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/receiver/internal/event"
)

// broadEvents is every optional attribute a record can carry, and the shapes a batch takes:
// several local ends interleaved, IPv4, IPv6 and an IPv4-mapped backend, found connections,
// sampled ones, socket-level load balancing, a full-length process name and none.
func broadEvents(shift uint64) []event.Event {
	comm := func(s string) (c [16]byte) { copy(c[:], s); return c }
	const ns1, ns2, ns3 = 4026532001, 4026532002, 4026532003
	t := t0
	events := append(fixtureEvents(), shortConnections(8)...)
	events = append(events,
		event.Event{
			Type: event.Found, Role: event.Server, Time: t + 100, NetnsIno: ns2, CgroupID: 9002, Found: true, RoleGuessed: true,
			Local: netip.MustParseAddrPort("10.1.0.9:8080"), Peer: netip.MustParseAddrPort("10.1.0.77:51000"), BytesSent: 1 << 40, BytesReceived: 3,
		},
		event.Event{
			Type: event.Close, CloseReason: event.CloseResetSent, Role: event.Server, Time: t + 200, NetnsIno: ns2, CgroupID: 9002, Found: true, RoleGuessed: true,
			Local: netip.MustParseAddrPort("10.1.0.9:8080"), Peer: netip.MustParseAddrPort("10.1.0.77:51000"), BytesSent: 1<<40 + 5, BytesReceived: 9,
			CountedBytesSent: 1 << 40, Retransmits: 7, SRTTMicros: 1,
		},
		event.Event{
			Type: event.Connect, Role: event.Client, Time: t + 300, NetnsIno: ns3, CgroupID: 9003, PID: 4242, Comm: comm("sixteen-chars-xx"),
			Local: netip.MustParseAddrPort("[fd00::3]:50000"), Peer: netip.MustParseAddrPort("[fd00::9]:443"), SampleOneIn: 16, HandshakeMicros: 9,
		},
		event.Event{
			Type: event.Close, CloseReason: event.CloseTimeout, Role: event.Client, Time: t + 900, Start: t + 300, NetnsIno: ns3, CgroupID: 9003, PID: 4242,
			Comm: comm("sixteen-chars-xx"), Local: netip.MustParseAddrPort("[fd00::3]:50000"), Peer: netip.MustParseAddrPort("[fd00::9]:443"), SampleOneIn: 16,
		},
		event.Event{
			Type: event.Connect, Role: event.Client, Time: t + 400, NetnsIno: ns1, CgroupID: 9001, PID: 1234, Comm: comm("curl"), Errno: 110, SynRetransmits: 6,
			Local: netip.MustParseAddrPort("10.1.0.5:40009"), Peer: netip.MustParseAddrPort("192.0.2.1:443"), SampleOneIn: 1,
		},
		// Socket-level load balancing: the Service was dialled, the peer is its backend.
		event.Event{
			Type: event.Connect, Role: event.Client, Time: t + 500, NetnsIno: ns1, CgroupID: 9001, PID: 1234, Comm: comm("curl"),
			Local: netip.MustParseAddrPort("10.1.0.5:40010"), Peer: netip.MustParseAddrPort("10.1.0.9:8080"), Dialled: netip.MustParseAddrPort("10.96.0.10:80"),
		},
		event.Event{
			Type: event.Connect, Role: event.Client, Time: t + 600, NetnsIno: ns1, CgroupID: 9001,
			Local: netip.MustParseAddrPort("10.1.0.5:40011"), Peer: netip.MustParseAddrPort("10.96.0.10:80"),
			Backend: netip.MustParseAddrPort("[::ffff:10.1.0.9]:8080"),
		},
		event.Event{
			Type: event.Accept, Role: event.Server, Time: t + 700, Start: t + 650, NetnsIno: ns3, CgroupID: 9003, PID: 1, Comm: comm("init"),
			Local: netip.MustParseAddrPort("[fd00::3]:22"), Peer: netip.MustParseAddrPort("[fd00::9%eth0]:60000"),
		},
	)
	for i := range events {
		events[i].Time += shift
		if events[i].Start != 0 {
			events[i].Start += shift
		}
	}
	return events
}

// TestEventsToLogsBroadGolden pins every record and resource the converter builds for
// broadEvents, over two batches through one converter (its caches carry over): the golden files
// were written by today's converter, so that a faster one must build the same records.
func TestEventsToLogsBroadGolden(t *testing.T) {
	cfg := NewDefaultConfig()
	c := newLogsConverter(cfg.Events, "test")
	for batch, shift := range []uint64{0, 10_000_000} {
		events := enrichAll(fixtureResources(cfg), broadEvents(shift))
		for i := range events {
			if i%3 == 0 && events[i].peer.PodName == "" && events[i].peer.ServiceName == "" {
				events[i].serverName = fmt.Sprintf("name-%d.example", i) // as dns_names would
			}
		}
		ld, n := c.convert(events, pcommon.Timestamp(t0+50_000_000))
		require.Equal(t, len(events), n)

		path := filepath.Join("testdata", "golden", fmt.Sprintf("logs-broad-%d.yaml", batch))
		if *update {
			require.NoError(t, golden.WriteLogs(t, path, ld))
		}
		want, err := golden.ReadLogs(path)
		require.NoError(t, err)
		require.NoError(t, plogtest.CompareLogs(want, ld), "batch %d", batch)
	}
}
