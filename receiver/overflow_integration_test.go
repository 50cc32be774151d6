package podnetreceiver

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
)

// A pod whose connections need more series than max_metric_series: in both aggregation modes
// the series beyond the bound fold into the overflow series (otel.metric.overflow=true), so the
// pod's own series plus the overflow count every connection. Other traffic on the machine may
// fold in too, hence "at least"; the kernel test of the fold (TestAggregateOverflowFoldsNewKeys)
// and the unit test (TestConnectionMetricsOverflowKeepsSumsExact) are exact.
func TestMetricSeriesOverflow(t *testing.T) {
	for _, tc := range []struct {
		aggregation string
		subnet      byte
	}{{"kernel", 172}, {"events", 173}} {
		t.Run(tc.aggregation, func(t *testing.T) {
			netnstest.RequireRoot(t)
			netw := netnstest.NewNetwork(t, tc.subnet)
			client, server := netw.AddPod(), netw.AddPod()
			const ports, perPort = 10, 2
			sink, stop := startMetricsOnlyWith(t, tc.aggregation, func(cfg *Config) { cfg.MaxMetricSeries = 3 })
			connectToPorts(t, client, server, 9200, ports, perPort)
			stop()
			all := sink.AllMetrics()
			const conns = ports * perPort
			require.Len(t, all, 1, "one emission, at shutdown")
			for _, name := range []string{"podnet.tcp.connections", "podnet.tcp.connections.closed"} {
				byNetns := totals(all, name)
				named := byNetns[int64(client.NetnsInode())] + byNetns[int64(server.NetnsInode())]
				folded, ok := point(t, all, 0, name, map[string]any{overflowAttribute: true})
				require.True(t, ok, "%s: an overflow series was emitted", name)
				t.Logf("%s: the pods' own series %v, overflow %v", name, named, folded)
				assert.LessOrEqual(t, named, float64(2*conns), name)
				assert.GreaterOrEqual(t, named+folded, float64(2*conns), "%s: every connection is counted, in a series or the overflow", name)
			}
		})
	}
}

// totals sums each metric's data points per podnet.netns.inode (0: none, as the overflow
// series') over the last emission: cumulative, so it holds everything.
func totals(all []pmetric.Metrics, name string) map[int64]float64 {
	out := map[int64]float64{}
	if len(all) == 0 {
		return out
	}
	for _, rm := range all[len(all)-1].ResourceMetrics().All() {
		ino, _ := rm.Resource().Attributes().Get("podnet.netns.inode")
		for _, m := range rm.ScopeMetrics().At(0).Metrics().All() {
			if m.Name() == name {
				for _, dp := range m.Sum().DataPoints().All() {
					out[ino.Int()] += float64(dp.IntValue())
				}
			}
		}
	}
	return out
}

// Series that drop attributes (metrics.<name>.attributes) are bounded by max_metric_series as
// the metrics have them: the kernel's keys drop the same fields, so connections that differ only
// in a dropped attribute take one key, not one each (found by an independent check: 5 series
// once the peer address was dropped, 3 of them folded into the overflow series in the kernel).
// Twenty server ports and 2 roles would be 40 keys before the drop; here 2 series, under a bound
// of 3. Everything outside the test's addresses is excluded so that no other traffic on the
// machine takes a key.
func TestDroppedAttributesDoNotFillTheKernelTable(t *testing.T) {
	netnstest.RequireRoot(t)
	netw := netnstest.NewNetwork(t, 36)
	client, server := netw.AddPod(), netw.AddPod()
	const ports = 20
	sink, stop := startMetricsOnlyWith(t, "kernel", func(cfg *Config) {
		cfg.MaxMetricSeries = 3
		cfg.Metrics.PodnetTCPConnections.EnabledAttributes = []metadata.PodnetTCPConnectionsMetricAttributeKey{"podnet.connection.role"}
		cfg.Exclude.PeerCIDRs = allBut(netip.MustParsePrefix(client.IPv4.String() + "/24"))
	})
	connectToPorts(t, client, server, 9300, ports, 1)
	stop()
	all := nothingFolded(t, sink, opensAndCloses...)
	for _, name := range opensAndCloses {
		for role, pod := range map[string]*netnstest.Pod{"client": client, "server": server} {
			got, ok := point(t, all, pod.NetnsInode(), name, map[string]any{"podnet.connection.role": role})
			require.True(t, ok, "%s: a %s series", name, role)
			assert.Equal(t, float64(ports), got, "%s %s: every connection in its one series", name, role)
		}
	}
}

// The kernel's keys drop the role and the address family with the series too (found by an
// independent check: with both kept, a dual-stack pod's IPv6 connections folded into the
// overflow series at half of max_metric_series). A pod that connects to itself over IPv4 and
// IPv6 is three keys with them kept (a client end of each family; the server ends, of the
// dual-stack listener's family), one series when only server.port is kept.
func TestDroppedRoleAndFamilyDoNotFillTheKernelTable(t *testing.T) {
	netnstest.RequireRoot(t)
	pod := netnstest.NewNetwork(t, 251).AddPod()
	const conns, port = 5, 9400
	sink, stop := startMetricsOnlyWith(t, "kernel", func(cfg *Config) {
		cfg.MaxMetricSeries = 1
		cfg.Metrics.PodnetTCPConnections.EnabledAttributes = []metadata.PodnetTCPConnectionsMetricAttributeKey{"server.port"}
		cfg.Exclude.PeerCIDRs = allBut(netip.PrefixFrom(pod.IPv4, 32), netip.PrefixFrom(pod.IPv6, 128))
	})
	srv := pod.StartServer(t, fmt.Sprintf("[::]:%d", port), 2*conns)
	for _, a := range []netip.Addr{pod.IPv4, pod.IPv6} {
		for range conns {
			_, res := pod.Dial(t, netip.AddrPortFrom(a, port).String(), "x")
			require.Empty(t, res)
		}
	}
	srv.Wait(t)
	require.Eventually(t, func() bool { return socketsClosed(pod) }, 10*time.Second, 20*time.Millisecond,
		"every TCP socket of the pod closed")
	stop()
	all := nothingFolded(t, sink, opensAndCloses...)
	for _, name := range opensAndCloses {
		got, ok := point(t, all, pod.NetnsInode(), name, map[string]any{"server.port": int64(port)})
		require.True(t, ok, "%s: the pod's series", name)
		assert.Equal(t, float64(4*conns), got, "%s: both ends of every connection, both families, in one series", name)
	}
}

// opensAndCloses are the metrics that count each connection's open and close.
var opensAndCloses = []string{"podnet.tcp.connections", "podnet.tcp.connections.closed"}

// nothingFolded is sink's emissions, checked to be there and to hold no overflow series of names.
func nothingFolded(t *testing.T, sink *consumertest.MetricsSink, names ...string) []pmetric.Metrics {
	t.Helper()
	all := sink.AllMetrics()
	require.NotEmpty(t, all)
	for _, name := range names {
		_, folded := point(t, all, 0, name, map[string]any{overflowAttribute: true})
		assert.False(t, folded, "%s: nothing folded into the overflow series", name)
	}
	return all
}

// allBut is every address range but ps: the exclusions that leave a test only its own
// traffic. A family none of ps is in is excluded whole (every IPv6 peer, for an IPv4 prefix).
func allBut(ps ...netip.Prefix) []string {
	var out []string
	for _, all := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
		i := slices.IndexFunc(ps, func(p netip.Prefix) bool { return p.Addr().Is4() == all.Addr().Is4() })
		if i < 0 {
			out = append(out, all.String())
			continue
		}
		p := ps[i].Masked()
		a := p.Addr().AsSlice()
		for bits := 1; bits <= p.Bits(); bits++ {
			// The range that agrees with p on its first bits-1 bits and differs in bit bits-1.
			b := slices.Clone(a)
			b[(bits-1)/8] ^= 0x80 >> ((bits - 1) % 8)
			addr, _ := netip.AddrFromSlice(b)
			out = append(out, netip.PrefixFrom(addr, bits).Masked().String())
		}
	}
	return out
}

// connectToPorts makes perPort connections from client to each of ports server ports from
// first on, and waits until every TCP socket of the two pods has closed.
func connectToPorts(t *testing.T, client, server *netnstest.Pod, first, ports, perPort int) {
	t.Helper()
	for p := range ports {
		port := first + p
		srv := server.StartServer(t, fmt.Sprintf("[::]:%d", port), perPort)
		for range perPort {
			_, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, uint16(port)).String(), "x")
			require.Empty(t, res)
		}
		srv.Wait(t)
	}
	require.Eventually(t, func() bool { return socketsClosed(client, server) }, 10*time.Second, 20*time.Millisecond,
		"every TCP socket of the pods closed")
}
