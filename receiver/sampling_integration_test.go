package podnetreceiver

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/podnet/podnet/internal/netnstest"
)

// Sampled logs beside exact metrics, differentially: one receiver samples its logs 1 in 3,
// another keeps every record, both see the same traffic. Metrics are identical; the sampled
// logs hold whole connections (connect, accept, both closes) carrying the rate, and every
// failed connect; what they left out is counted (otelcol_podnet_connections_sampled_out).
func TestSampledLogsKeepWholeConnectionsAndMetricsStayExact(t *testing.T) {
	netw := netnstest.NewNetwork(t, 115)
	client, server := netw.AddPod(), netw.AddPod()
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	sampledLogs, sampledMetrics, stopSampled := startReceiverOpts(t, componenttest.NewNopHost(),
		func(cfg *Config) { cfg.Logs.Sampling.OneIn = 3 },
		func(r *podnetReceiver) { r.set.TelemetrySettings = tt.NewTelemetrySettings() })
	allLogs, allMetrics, stopAll := startReceiverWith(t, componenttest.NewNopHost(), func(*Config) {})

	const n, refused = 90, 10
	addr := netip.AddrPortFrom(server.IPv4, 8080)
	var ln net.Listener
	require.NoError(t, server.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }))
	require.NoError(t, client.Do(func() error {
		for range n {
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				return err
			}
			s, err := ln.Accept()
			if err != nil {
				return err
			}
			_ = c.Close()
			_ = s.Close()
		}
		for range refused {
			if c, err := net.Dial("tcp", netip.AddrPortFrom(server.IPv4, 9).String()); err == nil {
				_ = c.Close()
			}
		}
		return nil
	}))
	_ = ln.Close()
	require.Eventually(t, func() bool { return socketsClosed(client, server) }, 10*time.Second, 20*time.Millisecond)
	stopSampled()
	stopAll()

	fromSampled, _ := splitDurations(flatten(sampledMetrics.AllMetrics(), client.NetnsInode(), server.NetnsInode()))
	fromAll, _ := splitDurations(flatten(allMetrics.AllMetrics(), client.NetnsInode(), server.NetnsInode()))
	require.NotEmpty(t, fromAll)
	assert.Equal(t, fromAll, fromSampled, "metrics do not depend on the logs' sampling")

	// By connection: the client end's local port, the server end's peer port.
	type conn struct {
		names map[string]int
		rates map[int64]int
	}
	group := func(rs []rec, sampled bool) (map[int64]*conn, int) {
		conns, failed := map[int64]*conn{}, 0
		for _, r := range rs {
			if r.attrs["error.type"] != nil {
				failed++
				if sampled {
					assert.Equal(t, int64(1), r.attrs["podnet.sampling.one_in"], "a failed connect is 1 in 1")
				}
				continue
			}
			port := r.attrs["network.local.port"].(int64)
			if r.attrs["podnet.connection.role"] == "server" {
				port = r.attrs["network.peer.port"].(int64)
			}
			c := conns[port]
			if c == nil {
				c = &conn{names: map[string]int{}, rates: map[int64]int{}}
				conns[port] = c
			}
			c.names[r.name]++
			if v, ok := r.attrs["podnet.sampling.one_in"]; ok {
				c.rates[v.(int64)]++
			}
		}
		return conns, failed
	}
	whole := map[string]int{"podnet.tcp.connect": 1, "podnet.tcp.accept": 1, "podnet.tcp.close": 2}
	all, allFailed := group(records(allLogs.AllLogs(), client.NetnsInode(), server.NetnsInode()), false)
	assert.Len(t, all, n)
	assert.Equal(t, refused, allFailed)
	for port, c := range all {
		assert.Equal(t, whole, c.names, "port %d", port)
		assert.Empty(t, c.rates, "port %d: no rate without sampling", port)
	}
	kept, keptFailed := group(records(sampledLogs.AllLogs(), client.NetnsInode(), server.NetnsInode()), true)
	assert.Equal(t, refused, keptFailed, "every failed connect is kept")
	for port, c := range kept {
		assert.Equal(t, whole, c.names, "port %d: a kept connection is whole", port)
		assert.Equal(t, map[int64]int{3: 4}, c.rates, "port %d: every record says 1 in 3", port)
	}
	t.Logf("kept %d of %d connections at 1 in 3", len(kept), n)
	assert.InDelta(t, n/3, len(kept), n/3/2+1, "about a third kept: "+strconv.Itoa(len(kept)))
	// Host traffic of other tests is sampled too, so the counter holds at least these ends.
	assert.GreaterOrEqual(t, counterSum(t, tt, "otelcol_podnet_connections_sampled_out"), int64(2*(n-len(kept))),
		"both ends of every connection left out are counted")
}

// With process attributes off, records carry no process (the syscall hooks are not attached:
// kernel tests check that through the kernel) and every event still arrives.
func TestProcessAttributesOff(t *testing.T) {
	netw := netnstest.NewNetwork(t, 116)
	client, server := netw.AddPod(), netw.AddPod()
	logs, _, stop := startReceiverWith(t, componenttest.NewNopHost(), func(cfg *Config) { cfg.Logs.ProcessAttributes = false })
	exchange(t, client, server, "hello", netip.AddrPortFrom(server.IPv4, 8080))
	require.Eventually(t, func() bool { return socketsClosed(client, server) }, 10*time.Second, 20*time.Millisecond)
	stop()
	names := map[string]int{}
	for _, r := range records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode()) {
		names[r.name]++
		assert.NotContains(t, r.attrs, "process.pid")
		assert.NotContains(t, r.attrs, "process.executable.name")
	}
	assert.Equal(t, map[string]int{"podnet.tcp.connect": 1, "podnet.tcp.accept": 1, "podnet.tcp.close": 2}, names)
}
