package podnetreceiver

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// rec is a log record flattened for assertions.
type rec struct {
	name     string
	severity string
	netns    int64
	attrs    map[string]any
	res      map[string]any
}

// startReceiver runs a real podnet receiver (real BPF) feeding in-memory sinks. Its stop
// function shuts it down and asserts its programs are gone.
func startReceiver(t *testing.T, mode kernel.HookMode) (*consumertest.LogsSink, *consumertest.MetricsSink, func()) {
	t.Helper()
	return startReceiverWith(t, componenttest.NewNopHost(), func(cfg *Config) { cfg.Hooks = mode })
}

// startReceiverWith is startReceiver with a host and configuration changes of the test's.
func startReceiverWith(t *testing.T, host component.Host, configure func(*Config)) (*consumertest.LogsSink, *consumertest.MetricsSink, func()) {
	t.Helper()
	return startReceiverOpts(t, host, configure, func(*podnetReceiver) {})
}

// startReceiverOpts also lets the test adjust the receiver before Start (its kernel options,
// its attribution).
func startReceiverOpts(t *testing.T, host component.Host, configure func(*Config), adjust func(*podnetReceiver)) (*consumertest.LogsSink, *consumertest.MetricsSink, func()) {
	t.Helper()
	netnstest.RequireRoot(t)
	cfg := NewDefaultConfig()
	configure(cfg)
	cfg.PollInterval = 20 * time.Millisecond
	cfg.MetricsInterval = time.Hour // the final emission at shutdown is what the test reads
	cfg.MetricSeriesIdleExpiry = time.Hour
	logs, metrics := new(consumertest.LogsSink), new(consumertest.MetricsSink)
	f := NewFactory()
	set := receivertest.NewNopSettings(metadata.Type)
	lr, err := f.CreateLogs(context.Background(), set, cfg, logs)
	require.NoError(t, err)
	mr, err := f.CreateMetrics(context.Background(), set, cfg, metrics)
	require.NoError(t, err)
	require.Same(t, lr, mr, "one receiver instance serves both pipelines")
	adjust(receiverOf(lr))
	require.NoError(t, lr.Start(context.Background(), host))
	ids := loadedPrograms(t, lr)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			require.NoError(t, lr.Shutdown(context.Background()))
			assert.Empty(t, leftLoaded(t, ids), "Shutdown must unload every podnet program")
		}
	}
	t.Cleanup(stop)
	return logs, metrics, stop
}

// inNetns reports whether a resource is the local end in one of the given namespaces.
func inNetns(res pcommon.Resource, netns []uint32) (pcommon.Value, bool) {
	ino, _ := res.Attributes().Get("podnet.netns.inode")
	for _, n := range netns {
		if ino.Int() == int64(n) {
			return ino, true
		}
	}
	return ino, false
}

// exchange makes one connection from client to each address, carrying payload, served by
// server on port 8080 of both families; every one must succeed.
func exchange(t *testing.T, client, server *netnstest.Pod, payload string, to ...netip.AddrPort) {
	t.Helper()
	srv := server.StartServer(t, "[::]:8080", len(to))
	for _, addr := range to {
		_, res := client.Dial(t, addr.String(), payload)
		require.Empty(t, res)
	}
	srv.Wait(t)
}

// dialRefused connects from client to a port of to where nothing listens (9, discard) and
// returns the dialling process's pid.
func dialRefused(t *testing.T, client *netnstest.Pod, to netip.Addr) int {
	t.Helper()
	pid, res := client.Dial(t, netip.AddrPortFrom(to, 9).String(), "x")
	require.Equal(t, "ECONNREFUSED", res)
	return pid
}

// settle waits until the sink holds at least n records of the pods' namespaces and no pod
// has a TCP socket left to close: every event the test's connections make has been made and
// delivered. It asserts rather than requires, so that a test that times out still reaches its
// own exact checks, which say what is missing.
func settle(t *testing.T, logs *consumertest.LogsSink, n int, pods ...*netnstest.Pod) {
	t.Helper()
	netns := make([]uint32, len(pods))
	for i, p := range pods {
		netns[i] = p.NetnsInode()
	}
	assert.Eventuallyf(t, func() bool {
		return len(records(logs.AllLogs(), netns...)) >= n && socketsClosed(pods...)
	}, 10*time.Second, 20*time.Millisecond, "%d records, and every TCP socket of the pods closed", n)
}

// socketsClosed reports whether every TCP socket of the pods has reached CLOSE, so the kernel
// has made every state change (and event) their connections will make.
func socketsClosed(pods ...*netnstest.Pod) bool {
	for _, p := range pods {
		if len(p.OpenTCPSockets()) > 0 {
			return false
		}
	}
	return true
}

// has reports whether rs holds a record named name with the attributes of match.
func has(rs []rec, name string, match map[string]any) bool {
	return slices.ContainsFunc(rs, func(r rec) bool { return r.matches(name, match) })
}

func (r rec) matches(name string, match map[string]any) bool {
	ok := r.name == name
	for k, v := range match {
		ok = ok && r.attrs[k] == v
	}
	return ok
}

// records returns the log records whose resource is one of the given network namespaces.
func records(logs []plog.Logs, netns ...uint32) []rec {
	var out []rec
	for _, ld := range logs {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			ino, ok := inNetns(rl.Resource(), netns)
			if !ok {
				continue
			}
			lrs := rl.ScopeLogs().At(0).LogRecords()
			for j := 0; j < lrs.Len(); j++ {
				lr := lrs.At(j)
				out = append(out, rec{
					name: lr.EventName(), severity: lr.SeverityText(), netns: ino.Int(),
					attrs: lr.Attributes().AsRaw(), res: rl.Resource().Attributes().AsRaw(),
				})
			}
		}
	}
	return out
}

func find(t *testing.T, rs []rec, name string, match map[string]any) rec {
	t.Helper()
	var found []rec
	for _, r := range rs {
		if r.matches(name, match) {
			found = append(found, r)
		}
	}
	require.Lenf(t, found, 1, "want exactly one %s with %v among %d records:\n%s", name, match, len(rs), dump(rs))
	return found[0]
}

func dump(rs []rec) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "  %s %s %v\n", r.name, r.severity, r.attrs)
	}
	return b.String()
}

// comm is what the kernel reports as the helper processes' executable name.
func comm() string {
	c := filepath.Base(os.Args[0])
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

// Every hook mode, the accept hook's probe-read variant that kernels without
// bpf_rdonly_cast (before 6.2) load, and a ring buffer per CPU.
func TestConnectAcceptCloseBetweenPods(t *testing.T) {
	for i, c := range []struct {
		name   string
		mode   kernel.HookMode
		probed bool
		rings  string
	}{
		{"tp_btf", kernel.HooksTPBTF, false, ringBuffersShared},
		{"tracepoint", kernel.HooksTracepoint, false, ringBuffersShared},
		{"probed-reads", kernel.HooksTracepoint, true, ringBuffersShared},
		{"per-cpu-rings", kernel.HooksTPBTF, false, ringBuffersPerCPU},
	} {
		t.Run(c.name, func(t *testing.T) {
			testConnectAcceptClose(t, c.mode, c.probed, c.rings, byte(10+i))
		})
	}
}

func testConnectAcceptClose(t *testing.T, mode kernel.HookMode, probed bool, rings string, subnet byte) {
	netw := netnstest.NewNetwork(t, subnet)
	client, server := netw.AddPod(), netw.AddPod()
	logs, metrics, stop := startReceiverOpts(t, componenttest.NewNopHost(),
		func(cfg *Config) { cfg.Hooks, cfg.RingBuffers = mode, rings },
		func(rcv *podnetReceiver) {
			open := rcv.open
			rcv.open = func(o kernel.Options) (source, error) {
				o.ProbedReads = probed
				return open(o)
			}
		})

	srv := server.StartServer(t, "[::]:8080", 2)
	pid4, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, 8080).String(), "hello")
	require.Empty(t, res)
	pid6, res := client.Dial(t, netip.AddrPortFrom(server.IPv6, 8080).String(), "hello6")
	require.Empty(t, res)
	srv.Wait(t)
	pidRefused := dialRefused(t, client, server.IPv4)

	settle(t, logs, 9, client, server) // closes in TIME_WAIT/FIN paths land in softirq, later
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode())
	require.Len(t, rs, 9, "4 per successful connection (connect, accept, 2 closes) x2 + a refused connect:\n%s", dump(rs))
	exe := comm()
	for _, tc := range []struct {
		pid            int
		peer           netip.Addr
		sent, received int64
		netType        string
	}{
		{pid4, server.IPv4, 6, 9, "ipv4"},
		{pid6, server.IPv6, 7, 10, "ipv6"},
	} {
		c := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.address": tc.peer.String(), "network.peer.port": int64(8080)})
		assert.Equal(t, int64(client.NetnsInode()), c.netns)
		assert.Equal(t, int64(tc.pid), c.attrs["process.pid"])
		assert.Equal(t, exe, c.attrs["process.executable.name"])
		assert.Equal(t, "client", c.attrs["podnet.connection.role"])
		assert.Equal(t, tc.netType, c.attrs["network.type"])
		assert.Equal(t, "tcp", c.attrs["network.transport"])
		assert.Equal(t, "INFO", c.severity)
		assert.NotContains(t, c.attrs, "error.type")
		localPort := c.attrs["network.local.port"]
		assert.NotZero(t, localPort)

		local := client.IPv4
		if tc.netType == "ipv6" {
			local = client.IPv6
		}
		assert.Equal(t, local.String(), c.attrs["network.local.address"])

		a := find(t, rs, "podnet.tcp.accept", map[string]any{"network.peer.address": local.String(), "network.peer.port": localPort})
		assert.Equal(t, int64(server.NetnsInode()), a.netns)
		assert.Equal(t, int64(srv.Cmd.Process.Pid), a.attrs["process.pid"])
		assert.Equal(t, "server", a.attrs["podnet.connection.role"])
		assert.Equal(t, tc.peer.String(), a.attrs["network.local.address"])
		assert.Equal(t, int64(8080), a.attrs["network.local.port"])

		cc := find(t, rs, "podnet.tcp.close", map[string]any{"network.peer.address": tc.peer.String(), "network.local.port": localPort})
		assert.Equal(t, int64(tc.pid), cc.attrs["process.pid"])
		assert.Equal(t, tc.sent, cc.attrs["podnet.tcp.bytes_sent"])
		assert.Equal(t, tc.received, cc.attrs["podnet.tcp.bytes_received"])
		assert.Greater(t, cc.attrs["podnet.connection.duration"], 0.0)
		assert.Greater(t, cc.attrs["podnet.tcp.rtt"], 0.0)
		assert.Equal(t, int64(0), cc.attrs["podnet.tcp.retransmits"])

		sc := find(t, rs, "podnet.tcp.close", map[string]any{"network.peer.address": local.String(), "network.peer.port": localPort})
		assert.Equal(t, int64(srv.Cmd.Process.Pid), sc.attrs["process.pid"], "a server close names the acceptor, not a softirq bystander")
		assert.Equal(t, "server", sc.attrs["podnet.connection.role"])
		assert.Equal(t, tc.received, sc.attrs["podnet.tcp.bytes_sent"])
		assert.Equal(t, tc.sent, sc.attrs["podnet.tcp.bytes_received"])
	}

	f := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.port": int64(9)})
	assert.Equal(t, "ECONNREFUSED", f.attrs["error.type"])
	assert.Equal(t, "WARN", f.severity)
	assert.Equal(t, int64(pidRefused), f.attrs["process.pid"])
	assert.Equal(t, server.IPv4.String(), f.attrs["network.peer.address"])

	// Metrics: exact cumulative values the traffic implies, split by role, peer and port.
	all := metrics.AllMetrics()
	for _, tc := range []struct {
		netns uint32
		name  string
		attrs map[string]any
		want  float64
	}{
		{client.NetnsInode(), "podnet.tcp.connections", clientAttrs(server.IPv4, 8080, "ipv4"), 1},
		{client.NetnsInode(), "podnet.tcp.connections", clientAttrs(server.IPv6, 8080, "ipv6"), 1},
		{client.NetnsInode(), "podnet.tcp.connections", withError(clientAttrs(server.IPv4, 9, "ipv4"), "ECONNREFUSED"), 1},
		{client.NetnsInode(), "podnet.tcp.connections.closed", clientAttrs(server.IPv4, 8080, "ipv4"), 1},
		{client.NetnsInode(), "podnet.tcp.bytes_sent", clientAttrs(server.IPv4, 8080, "ipv4"), 6},
		{client.NetnsInode(), "podnet.tcp.bytes_received", clientAttrs(server.IPv6, 8080, "ipv6"), 10},
		{server.NetnsInode(), "podnet.tcp.connections", serverAttrs(client.IPv4, 8080, "ipv4"), 1},
		{server.NetnsInode(), "podnet.tcp.connections", serverAttrs(client.IPv6, 8080, "ipv6"), 1},
		{server.NetnsInode(), "podnet.tcp.bytes_sent", serverAttrs(client.IPv4, 8080, "ipv4"), 9},
		{server.NetnsInode(), "podnet.tcp.retransmits", serverAttrs(client.IPv4, 8080, "ipv4"), 0},
	} {
		got, ok := point(t, all, tc.netns, tc.name, tc.attrs)
		assert.Truef(t, ok, "no %s point with %v", tc.name, tc.attrs)
		assert.Equalf(t, tc.want, got, "%s %v", tc.name, tc.attrs)
	}
	d, ok := point(t, all, client.NetnsInode(), "podnet.tcp.connection.duration", clientAttrs(server.IPv4, 8080, "ipv4"))
	assert.True(t, ok)
	assert.Greater(t, d, 0.0)
	_, ok = point(t, all, client.NetnsInode(), "podnet.tcp.connections.closed", withError(clientAttrs(server.IPv4, 9, "ipv4"), "ECONNREFUSED"))
	assert.False(t, ok, "a failed connect never closes an established connection")

	var tsCheck plog.LogRecord
	for _, ld := range logs.AllLogs() {
		if ld.LogRecordCount() > 0 {
			tsCheck = ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
			break
		}
	}
	assertRecentTimestamp(t, tsCheck.Timestamp())
	assert.GreaterOrEqual(t, tsCheck.ObservedTimestamp(), tsCheck.Timestamp(), "observed after it happened")
}

func assertRecentTimestamp(t *testing.T, ts pcommon.Timestamp) {
	t.Helper()
	d := time.Since(ts.AsTime())
	assert.True(t, d > 0 && d < time.Minute, "kernel time converted to wall clock: %v ago", d)
}

func clientAttrs(peer netip.Addr, port int64, netType string) map[string]any {
	return map[string]any{"podnet.connection.role": "client", "network.peer.address": peer.String(), "server.port": port, "network.type": netType}
}

func serverAttrs(peer netip.Addr, port int64, netType string) map[string]any {
	return map[string]any{"podnet.connection.role": "server", "network.peer.address": peer.String(), "server.port": port, "network.type": netType}
}

func withError(m map[string]any, errType string) map[string]any {
	m["error.type"] = errType
	return m
}
