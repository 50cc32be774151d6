package podnetreceiver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

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
