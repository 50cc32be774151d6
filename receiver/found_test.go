package podnetreceiver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/event"
)

// A found connection's record says what podnet knows of it: the ends, a holder process, the
// bytes so far and a role marked guessed; its close carries the mark and no duration.
func TestFoundConnectionLogRecords(t *testing.T) {
	cfg := NewDefaultConfig()
	found, closed := foundEvents()
	c := newLogsConverter(cfg.Events, "test")
	events := enrichAll(fixtureResources(cfg), []event.Event{found, closed})
	ld, n := c.convert(events, pcommon.Timestamp(t0))
	require.Equal(t, 2, n)
	lrs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()

	f := lrs.At(0)
	assert.Equal(t, "podnet.tcp.connection.found", f.EventName())
	assert.Equal(t, plog.SeverityNumberInfo, f.SeverityNumber())
	assert.Equal(t, map[string]any{
		"network.transport": "tcp", "network.type": "ipv4",
		"network.local.address": "10.1.0.5", "network.local.port": int64(40000),
		"network.peer.address": "10.1.0.9", "network.peer.port": int64(8080),
		"podnet.connection.role": "client", "podnet.connection.role.guessed": true,
		"process.pid": int64(1234), "process.executable.name": "curl",
		"podnet.peer.k8s.namespace.name": "shop", "podnet.peer.k8s.pod.name": "web-0", "podnet.peer.k8s.pod.uid": "uid-web-0",
		"podnet.tcp.bytes_sent": int64(300), "podnet.tcp.bytes_received": int64(50),
	}, f.Attributes().AsRaw())

	cl := lrs.At(1)
	assert.Equal(t, "podnet.tcp.close", cl.EventName())
	a := cl.Attributes().AsRaw()
	assert.Equal(t, true, a["podnet.connection.role.guessed"])
	assert.NotContains(t, a, "podnet.connection.duration", "its start is unknown")
	assert.Equal(t, int64(500), a["podnet.tcp.bytes_sent"], "logs keep the totals")

	for _, e := range events {
		lr := plog.NewLogRecord()
		c.record(lr, &e, 0)
		assert.Equal(t, lr.Attributes().Len(), attributeCount(&e))
	}

	cfg.Events.PodnetTCPConnectionFound.Enabled = false
	_, n = newLogsConverter(cfg.Events, "test").convert(events, 0)
	assert.Equal(t, 1, n, "events.podnet.tcp.connection.found.enabled: false")
}

// scanRecords is n connections the kernel's start-up scan reports.
func scanRecords(n int) []bpf.PodnetEvent {
	out := make([]bpf.PodnetEvent, n)
	for i := range out {
		out[i] = bpf.PodnetEvent{
			Type: uint8(event.Found), Role: uint8(event.Server), Flags: 3, Family: 2,
			NetnsIno: 4026532002, CgroupId: 9002, LocalPort: 8080, PeerPort: uint16(40000 + i),
			LocalAddr: [16]byte{10, 1, 0, 9}, PeerAddr: [16]byte{10, 1, 0, 5}, BytesSent: 10,
		}
	}
	return out
}

// At Start the scan runs once and what it finds goes the ring events' way: attributed,
// converted, counted in the collector's receiver telemetry; not counted as opens.
func TestStartReportsFoundConnections(t *testing.T) {
	logs, metrics := new(consumertest.LogsSink), new(consumertest.MetricsSink)
	n := 2*maxBatch + 5 // several batches
	f := newFakeReceiver(t, NewDefaultConfig(), newFakeRing(), logs, metrics)
	f.kernel.found = scanRecords(n)
	f.start(t)
	require.Eventually(t, func() bool { return logs.LogRecordCount() == n }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, f.Shutdown(context.Background()))
	f.requireStopped(t)

	assert.Equal(t, 1, f.kernel.scanCount())
	assert.Equal(t, int64(n), f.sum(t, "otelcol_receiver_accepted_log_records"))
	rs := records(logs.AllLogs(), 4026532002)
	require.Len(t, rs, n)
	assert.Equal(t, "podnet.tcp.connection.found", rs[0].name)
	assert.Equal(t, int64(9002), rs[0].res["podnet.cgroup.id"])
	assert.Equal(t, true, rs[0].attrs["podnet.connection.role.guessed"])
	assert.Zero(t, metrics.DataPointCount(), "found connections are no opens; the drains count them active")
}

// In-kernel aggregation has no events, but the scan still runs: it is what makes the found
// connections' progress and closes counted.
func TestKernelAggregationStillScans(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.MetricsAggregation = aggregationKernel
	f := newFakeReceiver(t, cfg, nil, nil, new(consumertest.MetricsSink))
	f.kernel.found = scanRecords(3)
	f.start(t)
	require.Eventually(t, func() bool { return f.kernel.scanCount() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, f.Shutdown(context.Background()))
	f.requireStopped(t)
	assert.Equal(t, 1, f.kernel.scanCount())
}

// Without BPF iterators Start still succeeds: no scan, and active is not reported.
func TestStartWithoutIterators(t *testing.T) {
	metrics := new(consumertest.MetricsSink)
	cfg := NewDefaultConfig()
	cfg.ProcRoot = t.TempDir()                 // the /proc fallback finds nothing here (found_proc_test.go reads the real one)
	cfg.MetricsAggregation = aggregationEvents // metrics from the fake ring's events
	f := newFakeReceiver(t, cfg, newFakeRing(connects(1)...), new(consumertest.LogsSink), metrics)
	f.kernel.iterErr = errors.New("the kernel refused the BPF iterators")
	f.kernel.found = scanRecords(3)
	f.start(t)
	require.NoError(t, f.Shutdown(context.Background()))
	f.requireStopped(t)
	assert.Zero(t, f.kernel.scanCount())
	require.Positive(t, metrics.DataPointCount())
	for _, md := range metrics.AllMetrics() {
		assert.Empty(t, dataPoints(md, "podnet.tcp.connections.active"))
	}
}
