package podnetreceiver

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"

	"github.com/podnet/podnet/internal/metadatatest"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// Every log event disabled beside a metrics pipeline: nothing is loaded for the logs pipeline,
// neither a ring nor the syscall hooks (kernel tests check what Events false loads; found by an
// independent check: five syscall hooks and an 8 MiB ring attached for no record), and the
// metrics are exact.
func TestNoLogEventEnabledLoadsNothingForLogs(t *testing.T) {
	netw := netnstest.NewNetwork(t, 252)
	client, server := netw.AddPod(), netw.AddPod()
	var opened []kernel.Options
	logs, metrics, stop := startReceiverOpts(t, componenttest.NewNopHost(), func(cfg *Config) {
		e := &cfg.Events
		e.PodnetTCPConnect.Enabled, e.PodnetTCPAccept.Enabled = false, false
		e.PodnetTCPClose.Enabled, e.PodnetTCPConnectionFound.Enabled = false, false
	}, func(rcv *podnetReceiver) {
		open := rcv.open
		rcv.open = func(o kernel.Options) (source, error) {
			opened = append(opened, o)
			return open(o)
		}
	})
	exchange(t, client, server, "hello", netip.AddrPortFrom(server.IPv4, 8080))
	require.Eventually(t, func() bool { return socketsClosed(client, server) }, 10*time.Second, 20*time.Millisecond)
	stop()
	require.Len(t, opened, 1)
	assert.True(t, opened[0].AggregateInKernel, "metrics counted in the kernel")
	assert.False(t, opened[0].Events, "no events: no ring, no syscall hooks")
	assert.Zero(t, logs.LogRecordCount())
	all := metrics.AllMetrics()
	for _, end := range []struct {
		pod, peer *netnstest.Pod
		role      string
	}{{client, server, "client"}, {server, client, "server"}} {
		got, ok := point(t, all, end.pod.NetnsInode(), "podnet.tcp.connections", map[string]any{
			"podnet.connection.role": end.role, "network.type": "ipv4", "network.peer.address": end.peer.IPv4.String(),
			"server.port": int64(8080),
		})
		require.True(t, ok, "a %s series", end.role)
		assert.Equal(t, float64(1), got, "%s: the connection counted", end.role)
	}
}

// Logs sampling in a metrics-only podnet is ignored (Start says so) in the kernel too: no
// connection is counted left out of logs that do not exist (found by an independent check:
// otelcol_podnet_connections_sampled_out counted 64 ends at 1 in 4), and the metrics are exact.
func TestSamplingWithoutLogsSamplesNothing(t *testing.T) {
	netnstest.RequireRoot(t)
	netw := netnstest.NewNetwork(t, 253)
	client, server := netw.AddPod(), netw.AddPod()
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	cfg := NewDefaultConfig()
	cfg.Logs.Sampling.OneIn = 4
	cfg.PollInterval, cfg.MetricsInterval = 20*time.Millisecond, time.Hour
	sink := new(consumertest.MetricsSink)
	r, err := NewFactory().CreateMetrics(context.Background(), metadatatest.NewSettings(tt), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	const n = 40 // all 80 ends kept by 1 in 4 sampling: 4^-80
	srv := server.StartServer(t, "[::]:8080", n)
	for range n {
		_, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, 8080).String(), "x")
		require.Empty(t, res)
	}
	srv.Wait(t)
	require.Eventually(t, func() bool { return socketsClosed(client, server) }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
	// Zero whatever else the machine runs: nothing is sampled at all.
	assert.Zero(t, counterSum(t, tt, "otelcol_podnet_connections_sampled_out"))
	got, ok := point(t, sink.AllMetrics(), client.NetnsInode(), "podnet.tcp.connections", map[string]any{
		"podnet.connection.role": "client", "network.type": "ipv4", "network.peer.address": server.IPv4.String(),
		"server.port": int64(8080),
	})
	require.True(t, ok, "the client's series")
	assert.Equal(t, float64(n), got)
}
