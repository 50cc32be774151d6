//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"

	"github.com/podnet/podnet/internal/netnstest"
)

// A long-lived connection's connect is named db; then four newer names are resolved for
// its address (the table keeps four per address), then it closes: its close is named as its
// connect was. The memo for it first keyed connections by a start the kernel's connects never
// carry, and named no close (found by an independent check).
func TestACloseIsNamedAsItsConnectAfterFourNewerAnswers(t *testing.T) {
	logs, _, client, cdn := closeAfterFourNewerAnswers(t, 103, func(*Config) {})

	n := 0
	for _, r := range records(logs.AllLogs(), client.NetnsInode()) {
		if r.attrs["network.peer.address"] != cdn.IPv4.String() || r.attrs["podnet.connection.role"] != "client" {
			continue
		}
		t.Logf("%s server.address=%v", r.name, r.attrs["server.address"])
		assert.Equal(t, "db.podnet.test", r.attrs["server.address"], "%s: named as the connect was", r.name)
		n++
	}
	assert.Equal(t, 2, n, "a connect and a close")
}

// The same with metrics from events and server.address on the metrics: the connect is
// counted under db's series, and its close (closed count, duration, bytes) under the same one
// (it went to a series without server.address).
func TestEventsMetricsCountACloseUnderItsConnectsName(t *testing.T) {
	_, metrics, client, cdn := closeAfterFourNewerAnswers(t, 104, func(cfg *Config) {
		cfg.MetricsAggregation = aggregationEvents
		cfg.DNSNames.MetricAttribute = true
	})

	got := map[string]map[string]int64{}
	for _, md := range metrics.AllMetrics() {
		for _, rm := range md.ResourceMetrics().All() {
			ino, _ := rm.Resource().Attributes().Get("podnet.netns.inode")
			if ino.Int() != int64(client.NetnsInode()) {
				continue
			}
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					if m.Name() != "podnet.tcp.connections" && m.Name() != "podnet.tcp.connections.closed" {
						continue
					}
					for _, dp := range m.Sum().DataPoints().All() {
						if p, _ := dp.Attributes().Get("network.peer.address"); p.Str() != cdn.IPv4.String() {
							continue
						}
						name := "<none>"
						if v, ok := dp.Attributes().Get("server.address"); ok {
							name = v.Str()
						}
						if got[m.Name()] == nil {
							got[m.Name()] = map[string]int64{}
						}
						got[m.Name()][name] = dp.IntValue() // cumulative: the last emission's
					}
				}
			}
		}
	}
	t.Logf("by server.address: %v", got)
	assert.Equal(t, map[string]int64{"db.podnet.test": 1}, got["podnet.tcp.connections.closed"], "the close counted under its connect's name")
}

// closeAfterFourNewerAnswers runs a receiver (configure) in subnet while a client resolves db,
// connects to its address and holds the connection while four newer names are resolved for that
// address (the names table keeps four per address), then closes it; the receiver is stopped.
func closeAfterFourNewerAnswers(t *testing.T, subnet byte, configure func(*Config)) (*consumertest.LogsSink, *consumertest.MetricsSink, *netnstest.Pod, *netnstest.Pod) {
	t.Helper()
	netw := netnstest.NewNetwork(t, subnet)
	dnsPod, client, cdn := netw.AddPod(), netw.AddPod(), netw.AddPod()
	dns := dnsPod.StartDNSServer(t)
	dns.Set("db", netnstest.DNSRecord{Addr: cdn.IPv4, TTL: 300})
	for i := range 4 {
		dns.Set(fmt.Sprintf("alias%d", i), netnstest.DNSRecord{Addr: cdn.IPv4, TTL: 300})
	}
	serving(t, cdn)
	logs, metrics, stop := startReceiverOpts(t, componenttest.NewNopHost(), configure, func(*podnetReceiver) {})

	require.Equal(t, []netip.Addr{cdn.IPv4}, client.Resolve(t, dnsPod.IPv4, "db"))
	var conn net.Conn
	require.NoError(t, client.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(cdn.IPv4, 8080).String(), 5*time.Second)
		return err
	}))
	time.Sleep(300 * time.Millisecond) // the connect read (poll_interval 20ms) before the newer answers
	for i := range 4 {
		require.Equal(t, []netip.Addr{cdn.IPv4}, client.Resolve(t, dnsPod.IPv4, fmt.Sprintf("alias%d", i)))
	}
	require.NoError(t, conn.Close())
	settle(t, logs, 2, client)
	stop()
	return logs, metrics, client, cdn
}
