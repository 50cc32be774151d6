package podnetreceiver

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/podnet/podnet/internal/metadatatest"
	"github.com/podnet/podnet/internal/netnstest"
)

// periodicInterval is the tests' metrics_interval: short, so that they see several emissions
// while a connection is open (below the 1s Validate allows users; tests build the config).
const periodicInterval = 250 * time.Millisecond

// periodic is a real receiver emitting metrics every periodicInterval, with its telemetry.
type periodic struct {
	aggregation string
	logs        *consumertest.LogsSink // nil without a logs pipeline
	metrics     *consumertest.MetricsSink
	tt          *componenttest.Telemetry
	stop        func()
}

func startPeriodic(t *testing.T, aggregation string, withLogs bool) *periodic {
	t.Helper()
	netnstest.RequireRoot(t)
	cfg := NewDefaultConfig()
	cfg.MetricsAggregation = aggregation
	cfg.PollInterval = 20 * time.Millisecond
	// The ring takes every TCP event of the machine: other packages' tests, run in parallel,
	// include load tests at the machine's full connection rate.
	cfg.RingBufferSize = 64 << 20
	cfg.MetricsInterval = periodicInterval
	cfg.MetricSeriesIdleExpiry = time.Hour
	p := &periodic{aggregation: aggregation, metrics: new(consumertest.MetricsSink), tt: componenttest.NewTelemetry()}
	t.Cleanup(func() { _ = p.tt.Shutdown(context.Background()) })
	set := metadatatest.NewSettings(p.tt)
	f := NewFactory()
	r, err := f.CreateMetrics(context.Background(), set, cfg, p.metrics)
	require.NoError(t, err)
	if withLogs {
		p.logs = new(consumertest.LogsSink)
		_, err := f.CreateLogs(context.Background(), set, cfg, p.logs)
		require.NoError(t, err)
	}
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	var once sync.Once
	p.stop = func() { once.Do(func() { require.NoError(t, r.Shutdown(context.Background())) }) }
	t.Cleanup(p.stop)
	return p
}

// inBothAggregations runs test once per metrics_aggregation mode, each on its own subnet
// (first, first+1).
func inBothAggregations(t *testing.T, first byte, test func(t *testing.T, aggregation string, subnet byte)) {
	t.Helper()
	netnstest.RequireRoot(t)
	for i, aggregation := range []string{aggregationEvents, aggregationKernel} {
		t.Run(aggregation, func(t *testing.T) { test(t, aggregation, first+byte(i)) })
	}
}

// last is a series' value at the latest emission that has it (0 and false if none has).
func (p *periodic) last(t *testing.T, netns uint32, name string, attrs map[string]any) (float64, bool) {
	t.Helper()
	return point(t, p.metrics.AllMetrics(), netns, name, attrs)
}

// telemetry is the total of one of the receiver's own counters.
func (p *periodic) telemetry(t *testing.T, name string) int64 {
	t.Helper()
	return telemetrySum(t, p.tt, name)
}

func telemetrySum(t *testing.T, tt *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tt.GetMetric(name)
	if err != nil {
		return 0
	}
	var sum int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		sum += dp.Value
	}
	return sum
}

// expectation is a metric value a series must reach.
type expectation struct {
	netns uint32
	name  string
	attrs map[string]any
	want  float64
}

// reached reports whether every expectation holds at the latest emission.
func (p *periodic) reached(t *testing.T, want []expectation) bool {
	t.Helper()
	all := p.metrics.AllMetrics()
	for _, w := range want {
		if v, ok := point(t, all, w.netns, w.name, w.attrs); !ok || v != w.want {
			return false
		}
	}
	return true
}

func (p *periodic) requireReached(t *testing.T, want []expectation, msg string, args ...any) {
	t.Helper()
	if !p.awaitReached(t, want) {
		p.failUnreached(t, want, msg, args...)
	}
}

// awaitReached waits up to 10 s for every expectation to hold at an emission.
func (p *periodic) awaitReached(t *testing.T, want []expectation) bool {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if p.reached(t, want) {
			return true
		}
	}
	return p.reached(t, want)
}

// failUnreached says what the latest emission and the kernel's counters show, and fails.
func (p *periodic) failUnreached(t *testing.T, want []expectation, msg string, args ...any) {
	t.Helper()
	t.Errorf("never reached: "+msg, args...)
	all := p.metrics.AllMetrics()
	for _, w := range want {
		v, ok := point(t, all, w.netns, w.name, w.attrs)
		t.Logf("%s %v: got %v (%v), want %v", w.name, w.attrs, v, ok, w.want)
	}
	t.Logf("metrics_aggregation %s: events lost (ring full) %d, dropped %d; closes untracked %d, unseen %d; recursion misses %d",
		p.aggregation, p.telemetry(t, "otelcol_podnet_events_lost"), p.telemetry(t, "otelcol_podnet_events_dropped"),
		p.telemetry(t, "otelcol_podnet_connections_untracked"), p.telemetry(t, "otelcol_podnet_connections_close_unseen"),
		p.telemetry(t, "otelcol_podnet_bpf_recursion_misses"))
	t.FailNow()
}

// A long-lived connection's bytes are reported while it is open, at every emission, and the
// close adds only the rest: the totals equal the bytes sent, at both ends, in both modes.
func TestLongLivedConnectionReportsBytesWhileOpen(t *testing.T) {
	inBothAggregations(t, 110, testLongLived)
}

func testLongLived(t *testing.T, aggregation string, subnet byte) {
	netw := netnstest.NewNetwork(t, subnet)
	client, server := netw.AddPod(), netw.AddPod()
	p := startPeriodic(t, aggregation, false)
	cc, sc, ln := connectPods(t, client, server)

	const steps, up, down = 4, 100_000, 30_000
	cli, srv := clientAttrs(server.IPv4, 8080, "ipv4"), serverAttrs(client.IPv4, 8080, "ipv4")
	c, s := client.NetnsInode(), server.NetnsInode()
	for i := 1; i <= steps; i++ {
		exchangeOn(t, cc, sc, up, down)
		p.requireReached(t, []expectation{
			{c, "podnet.tcp.bytes_sent", cli, float64(i * up)},
			{c, "podnet.tcp.bytes_received", cli, float64(i * down)},
			{s, "podnet.tcp.bytes_sent", srv, float64(i * down)},
			{s, "podnet.tcp.bytes_received", srv, float64(i * up)},
			{c, "podnet.tcp.connections.active", cli, 1},
			{s, "podnet.tcp.connections.active", srv, 1},
		}, "the bytes of the open connection after exchange %d", i)
		_, closed := p.last(t, c, "podnet.tcp.connections.closed", cli)
		require.False(t, closed, "still open")
	}

	require.NoError(t, cc.Close())
	require.NoError(t, sc.Close())
	require.NoError(t, ln.Close())
	require.Eventually(t, func() bool { return socketsClosed(client, server) }, 10*time.Second, 20*time.Millisecond)
	p.stop()
	for _, w := range []expectation{
		{c, "podnet.tcp.bytes_sent", cli, steps * up},
		{c, "podnet.tcp.bytes_received", cli, steps * down},
		{s, "podnet.tcp.bytes_sent", srv, steps * down},
		{s, "podnet.tcp.bytes_received", srv, steps * up},
		{c, "podnet.tcp.connections", cli, 1},
		{s, "podnet.tcp.connections", srv, 1},
		{c, "podnet.tcp.connections.closed", cli, 1},
		{s, "podnet.tcp.connections.closed", srv, 1},
		{c, "podnet.tcp.connections.active", cli, 0},
		{s, "podnet.tcp.connections.active", srv, 0},
	} {
		v, ok := p.last(t, w.netns, w.name, w.attrs)
		assert.Truef(t, ok, "no %s %v", w.name, w.attrs)
		assert.Equalf(t, w.want, v, "%s %v after the close", w.name, w.attrs)
	}
	assertNoDecreases(t, p.metrics.AllMetrics(), c, "podnet.tcp.bytes_sent", cli)
}

// connectPods makes one connection from client to server port 8080 with this process's
// sockets (in the pods' namespaces), and returns both ends and the listener.
func connectPods(t *testing.T, client, server *netnstest.Pod) (cc, sc net.Conn, ln net.Listener) {
	t.Helper()
	require.NoError(t, server.Do(func() (err error) { ln, err = net.Listen("tcp4", "0.0.0.0:8080"); return err }))
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	addr := netip.AddrPortFrom(server.IPv4, 8080).String()
	require.NoError(t, client.Do(func() (err error) { cc, err = net.Dial("tcp4", addr); return err }))
	t.Cleanup(func() { _ = cc.Close() })
	sc, ok := <-accepted
	require.True(t, ok, "accept")
	t.Cleanup(func() { _ = sc.Close() })
	return cc, sc, ln
}

// exchangeOn sends up bytes from c to s and down bytes back, each read in full.
func exchangeOn(t *testing.T, c, s net.Conn, up, down int) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { _, err := c.Write(make([]byte, up)); errc <- err }()
	_, err := io.ReadFull(s, make([]byte, up))
	require.NoError(t, err)
	require.NoError(t, <-errc)
	go func() { _, err := s.Write(make([]byte, down)); errc <- err }()
	_, err = io.ReadFull(c, make([]byte, down))
	require.NoError(t, err)
	require.NoError(t, <-errc)
}

// assertNoDecreases checks that a cumulative series never goes down from one emission to the
// next (a double count corrected later would).
func assertNoDecreases(t *testing.T, all []pmetric.Metrics, netns uint32, name string, attrs map[string]any) {
	t.Helper()
	prev := -1.0
	for _, md := range all {
		v, ok := point(t, []pmetric.Metrics{md}, netns, name, attrs)
		if !ok {
			continue
		}
		assert.GreaterOrEqualf(t, v, prev, "%s went down", name)
		prev = v
	}
}
