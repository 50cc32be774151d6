//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
)

// Attributes dropped with metrics.<name>.attributes merge the series they told apart, also
// when those began in different intervals (different start times): one data point per
// remaining attribute set, counting them all. Found by an independent check: IPv4 then IPv6
// connections to one port, network.type and the peer dropped, came out as two points with the
// same attributes (3 and 5), of which Prometheus kept one.
func TestDroppedAttributesMergeSeriesOfDifferentStarts(t *testing.T) {
	for _, tc := range []struct {
		aggregation string
		subnet      byte
		// onlyConnections lists the attributes on podnet.tcp.connections alone, as the README
		// shows: the other metrics follow it.
		onlyConnections bool
	}{{"kernel", 165, false}, {"events", 166, true}} {
		t.Run(tc.aggregation, func(t *testing.T) {
			netnstest.RequireRoot(t)
			netw := netnstest.NewNetwork(t, tc.subnet)
			client, server := netw.AddPod(), netw.AddPod()
			cfg := NewDefaultConfig()
			cfg.MetricsAggregation = tc.aggregation
			cfg.PollInterval = 20 * time.Millisecond
			cfg.MetricsInterval = time.Second
			kept := []string{"podnet.connection.role", "server.port"}
			if tc.onlyConnections {
				cfg.Metrics.PodnetTCPConnections.EnabledAttributes = keys[metadata.PodnetTCPConnectionsMetricAttributeKey](kept)
			} else {
				setSeriesAttributes(t, cfg, kept...)
			}
			sink := new(consumertest.MetricsSink)
			r, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
			require.NoError(t, err)
			require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))

			const port, v4, v6 = 9300, 3, 5
			srv := server.StartServer(t, fmt.Sprintf("[::]:%d", port), v4+v6)
			for range v4 {
				_, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, port).String(), "x")
				require.Empty(t, res)
			}
			// Past an emission, so the IPv6 series begins in another interval.
			n := len(sink.AllMetrics())
			require.Eventually(t, func() bool { return len(sink.AllMetrics()) >= n+2 }, 10*time.Second, 20*time.Millisecond)
			for range v6 {
				_, res := client.Dial(t, netip.AddrPortFrom(server.IPv6, port).String(), "x")
				require.Empty(t, res)
			}
			srv.Wait(t)
			require.Eventually(t, func() bool { return socketsClosed(client, server) }, 10*time.Second, 20*time.Millisecond)
			require.NoError(t, r.Shutdown(context.Background()))

			last := sink.AllMetrics()[len(sink.AllMetrics())-1]
			for _, name := range []string{"podnet.tcp.connections", "podnet.tcp.bytes_sent", "podnet.tcp.connection.duration"} {
				for _, netns := range []uint32{client.NetnsInode(), server.NetnsInode()} {
					dps := pointsOf(last, netns, name)
					require.Len(t, dps, 1, "%s: one point for the one attribute set left", name)
					assert.Subset(t, kept, keysOf(dps[0].Attributes().AsRaw()), "%s: only the kept attributes", name)
					if name == "podnet.tcp.connections" {
						assert.Equal(t, int64(v4+v6), dps[0].IntValue(), "%s: every connection in it", name)
					}
				}
			}
		})
	}
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// pointsOf is every data point of a sum metric in one emission, under the given namespace.
func pointsOf(md pmetric.Metrics, netns uint32, name string) []pmetric.NumberDataPoint {
	var out []pmetric.NumberDataPoint
	for _, rm := range md.ResourceMetrics().All() {
		if ino, _ := rm.Resource().Attributes().Get("podnet.netns.inode"); ino.Int() != int64(netns) {
			continue
		}
		for _, m := range rm.ScopeMetrics().At(0).Metrics().All() {
			if m.Name() == name {
				for _, dp := range m.Sum().DataPoints().All() {
					out = append(out, dp)
				}
			}
		}
	}
	return out
}
