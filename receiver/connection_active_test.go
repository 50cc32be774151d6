package podnetreceiver

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/event"
)

// drainer is the emitter's drain on a fake kernel: what each emission does before it emits.
type drainer struct {
	em     *emitter
	kernel *fakeKernel
}

func newDrainer(t *testing.T, cfg *Config) *drainer {
	t.Helper()
	fk := &fakeKernel{}
	m := &sharedMetrics{m: newFixtureMetrics(cfg)}
	warn := &warnLimiter{logger: zap.NewNop(), every: time.Minute}
	tb, err := metadata.NewTelemetryBuilder(componenttest.NewNopTelemetrySettings())
	require.NoError(t, err)
	loss := &lossReporter{tb: tb} // a fold counts series dropped
	return &drainer{kernel: fk, em: &emitter{
		kernel:     &kernelSide{src: fk, loss: loss, warn: warn},
		metrics:    m,
		aggregates: newEnricher(fixtureResources(cfg), fixedPeers{}, nil),
		loss:       loss,
		warn:       warn,
		overflows:  newOverflowLedger(namespaceListenDrops("/proc")),
	}}
}

// drain makes the kernel hold aggs and drains them at now; it returns the emission.
func (d *drainer) drain(now time.Time, aggs map[bpf.PodnetAggKey]bpf.PodnetAggValue) pmetric.Metrics {
	d.kernel.aggregates = aggs
	ts := pcommon.NewTimestampFromTime(now)
	return d.em.drainAggregates(func() pcommon.Timestamp { return ts })
}

// webKey is the fixture client's series towards web-0 (10.1.0.9:8080), as the kernel keys it.
func webKey() bpf.PodnetAggKey {
	return bpf.PodnetAggKey{NetnsIno: 4026532001, CgroupId: 9001, Family: 2, PeerAddr: [16]byte{10, 1, 0, 9}, ServerPort: 8080, Role: uint8(event.Client)}
}

// webMapped is the same series through an IPv6 socket with an IPv4-mapped peer.
func webMapped() bpf.PodnetAggKey {
	k := webKey()
	k.Family = 10
	k.PeerAddr = [16]byte{10: 0xff, 11: 0xff, 12: 10, 13: 1, 14: 0, 15: 9}
	return k
}

var webAttrs = map[string]any{
	"podnet.connection.role": "client", "network.type": "ipv4", "network.peer.address": "10.1.0.9",
	"server.port": int64(8080), "podnet.peer.k8s.namespace.name": "shop", "podnet.peer.k8s.pod.name": "web-0",
}

func value(t *testing.T, md pmetric.Metrics, name string) (float64, bool) {
	t.Helper()
	return point(t, []pmetric.Metrics{md}, 4026532001, name, webAttrs)
}

// active is a value set from each drain, not a sum across drains; a series absent from a
// drain has none open, and reports 0 so a backend sees the drop.
func TestActiveIsTheLatestDrain(t *testing.T) {
	d := newDrainer(t, NewDefaultConfig())
	now := time.Now()
	for _, step := range []struct {
		aggs map[bpf.PodnetAggKey]bpf.PodnetAggValue
		want float64
	}{
		{map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Active: 3}}, 3},
		{map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Active: 1}}, 1},
		{map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Active: 2}, webMapped(): {Active: 5}}, 7},
		{nil, 0},
	} {
		now = now.Add(time.Second)
		v, ok := value(t, d.drain(now, step.aggs), "podnet.tcp.connections.active")
		require.True(t, ok)
		assert.Equal(t, step.want, v)
	}
}

// A series with open connections never expires, however long since its last open or close;
// once its count drops to 0 it is kept an expiry from then, so the 0 is emitted, then goes.
func TestActiveSeriesDoNotExpire(t *testing.T) {
	cfg := NewDefaultConfig()
	d := newDrainer(t, cfg)
	now := time.Now()
	d.drain(now, map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Active: 1}})
	idle := cfg.MetricSeriesIdleExpiry + time.Minute

	now = now.Add(idle)
	v, ok := value(t, d.em.metrics.emit(pcommon.NewTimestampFromTime(now)), "podnet.tcp.connections.active")
	require.True(t, ok, "open connections keep their series")
	assert.Equal(t, 1.0, v)

	v, ok = value(t, d.drain(now, nil), "podnet.tcp.connections.active")
	require.True(t, ok, "the drop to 0 is emitted")
	assert.Zero(t, v)

	md := d.em.metrics.emit(pcommon.NewTimestampFromTime(now.Add(idle)))
	assert.Zero(t, md.DataPointCount(), "idle with nothing open: forgotten")
}

// A drain that failed may have missed keys: it leaves every count as it was rather than
// showing open connections as closed.
func TestFailedDrainKeepsActive(t *testing.T) {
	d := newDrainer(t, NewDefaultConfig())
	now := time.Now()
	d.drain(now, map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Active: 4}})
	d.kernel.drainErr = errors.New("reading open connections: boom")
	v, _ := value(t, d.drain(now.Add(time.Second), nil), "podnet.tcp.connections.active")
	assert.Equal(t, 4.0, v)
}

// Without BPF iterators the kernel never counts open connections: unknown, not 0.
func TestActiveNotReportedWithoutIterators(t *testing.T) {
	d := newDrainer(t, NewDefaultConfig())
	d.em.metrics.m.countsActive = false
	md := d.drain(time.Now(), map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Connections: 1}})
	_, ok := value(t, md, "podnet.tcp.connections.active")
	assert.False(t, ok)
	v, ok := value(t, md, "podnet.tcp.connections")
	require.True(t, ok)
	assert.Equal(t, 1.0, v)
}

// A failed connect's series (error.type) was never open: it has no active point, which would
// otherwise collide with the established series' (active has no error.type).
func TestActiveNotOnFailedConnects(t *testing.T) {
	cfg := NewDefaultConfig()
	m := newFixtureMetrics(cfg)
	m.add(fixtureBatch(cfg))
	md := m.emit(pcommon.NewTimestampFromTime(time.Now()))
	for _, dp := range dataPoints(md, "podnet.tcp.connections.active") {
		assert.NotEqual(t, int64(9), dp.Attributes().AsRaw()["server.port"], "the refused connect's port")
		assert.NotEqual(t, "empty", dp.Attributes().AsRaw()["podnet.peer.k8s.service.name"], "the rejected connect's Service")
	}
	assert.Len(t, dataPoints(md, "podnet.tcp.connections.active"), 3, "the client's and the server's established series, and the client's to a Service")
}

// In events mode the drains count open connections' progress and a close adds only the rest:
// the sums equal the kernel's totals, whatever happened between reads.
func TestCloseAddsOnlyWhatDrainsDidNotCount(t *testing.T) {
	cfg := NewDefaultConfig()
	d := newDrainer(t, cfg)
	now := time.Now()
	d.drain(now, map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Active: 1, BytesSent: 400, BytesReceived: 100, Retransmits: 1}})
	d.drain(now.Add(time.Second), map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Active: 1, BytesSent: 200, Retransmits: 2}})

	closed := fixtureEvents()[2] // the client's close towards web-0
	closed.BytesSent, closed.BytesReceived, closed.Retransmits = 1000, 100, 3
	closed.CountedBytesSent, closed.CountedBytesReceived, closed.CountedRetransmits = 600, 100, 3
	d.em.metrics.add(enrichAll(fixtureResources(cfg), []event.Event{closed}))
	md := d.drain(now.Add(2*time.Second), nil)

	for name, want := range map[string]float64{
		"podnet.tcp.bytes_sent": 1000, "podnet.tcp.bytes_received": 100, "podnet.tcp.retransmits": 3,
		"podnet.tcp.connections.closed": 1, "podnet.tcp.connections.active": 0,
	} {
		v, ok := value(t, md, name)
		require.True(t, ok, name)
		assert.Equal(t, want, v, name)
	}
}

// Bytes of open connections are reported before any of them closes.
func TestBytesOfOpenConnectionsAreReported(t *testing.T) {
	d := newDrainer(t, NewDefaultConfig())
	md := d.drain(time.Now(), map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Active: 1, BytesSent: 100_000}})
	v, ok := value(t, md, "podnet.tcp.bytes_sent")
	require.True(t, ok)
	assert.Equal(t, 100_000.0, v)
	_, ok = value(t, md, "podnet.tcp.connections.closed")
	assert.False(t, ok, "nothing closed yet")
}

// A connection found at start was not opened under podnet: it adds nothing to
// podnet.tcp.connections. Its close counts as closed, with no duration (start unknown).
func TestFoundConnectionsAreNotOpens(t *testing.T) {
	cfg := NewDefaultConfig()
	m := newFixtureMetrics(cfg)
	found, closed := foundEvents()
	assert.Zero(t, m.add(enrichAll(fixtureResources(cfg), []event.Event{found})))
	assert.Empty(t, m.series, "a found event makes no series by itself")

	m.add(enrichAll(fixtureResources(cfg), []event.Event{closed}))
	md := m.emit(pcommon.NewTimestampFromTime(time.Now()))
	_, ok := value(t, md, "podnet.tcp.connections")
	assert.False(t, ok)
	for name, want := range map[string]float64{
		"podnet.tcp.connections.closed": 1, "podnet.tcp.connection.duration": 0,
		"podnet.tcp.bytes_sent": 500 - 300, "podnet.tcp.bytes_received": 70 - 50,
	} {
		v, ok := value(t, md, name)
		require.True(t, ok, name)
		assert.Equal(t, want, v, name)
	}
}

// foundEvents is a connection of the fixture client to web-0 found at start (totals so far),
// and its close (the part counted when found and by the drains since).
func foundEvents() (found, closed event.Event) {
	found = fixtureEvents()[2]
	found.Type, found.Start, found.SRTTMicros = event.Found, 0, 0
	found.Found, found.RoleGuessed = true, true
	found.BytesSent, found.BytesReceived, found.Retransmits = 300, 50, 0
	closed = found
	closed.Type, closed.Time, closed.CloseReason = event.Close, found.Time+5_000_000_000, event.CloseNormal
	closed.BytesSent, closed.BytesReceived, closed.SRTTMicros = 500, 70, 150
	closed.CountedBytesSent, closed.CountedBytesReceived = 300, 50
	return found, closed
}

// Past max_metric_series, an open connection counted active in the overflow series moves to a
// series of its own at the first drain after a retired series leaves room: the kernel keeps
// its key, so each drain places its open count anew. Its open stays counted where it was
// (the overflow's podnet.tcp.connections), and active summed over all series stays exact
// throughout (found by an independent check with a real Prometheus, where the README said the
// count stayed in the overflow series until the connection closed).
func TestOverflowActiveMovesOutOnceThereIsRoom(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.MaxMetricSeries = 1
	d := newDrainer(t, cfg)
	other := webKey()
	other.ServerPort = 8081
	otherAttrs := map[string]any{}
	for k, v := range webAttrs {
		otherAttrs[k] = v
	}
	otherAttrs["server.port"] = int64(8081)
	overflow := map[string]any{overflowAttribute: true}
	read := func(md pmetric.Metrics, netns uint32, name string, attrs map[string]any) float64 {
		v, _ := point(t, []pmetric.Metrics{md}, netns, name, attrs)
		return v
	}

	now := time.Now()
	// One drain each, so that which key takes the one series does not depend on the order a
	// drain visits them in.
	d.drain(now, map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Connections: 1, Active: 1}})
	now = now.Add(time.Second)
	md := d.drain(now, map[bpf.PodnetAggKey]bpf.PodnetAggValue{
		webKey(): {Active: 1},
		other:    {Connections: 2, Active: 2},
	})
	assert.Equal(t, 1.0, read(md, 4026532001, "podnet.tcp.connections.active", webAttrs), "the first series has room")
	assert.Equal(t, 2.0, read(md, 0, "podnet.tcp.connections.active", overflow), "the second is folded")

	now = now.Add(time.Second)
	d.drain(now, map[bpf.PodnetAggKey]bpf.PodnetAggValue{webKey(): {Closed: 1}, other: {Active: 2}})
	now = now.Add(cfg.MetricSeriesIdleExpiry + time.Minute)
	d.em.metrics.emit(pcommon.NewTimestampFromTime(now)) // the first series, idle and closed, retires

	md = d.drain(now.Add(time.Second), map[bpf.PodnetAggKey]bpf.PodnetAggValue{other: {Active: 2}})
	assert.Equal(t, 2.0, read(md, 4026532001, "podnet.tcp.connections.active", otherAttrs), "moved to its own series")
	assert.Zero(t, read(md, 0, "podnet.tcp.connections.active", overflow), "and out of the overflow")
	assert.Equal(t, 2.0, read(md, 0, "podnet.tcp.connections", overflow), "its opens stay counted where they were")
	assert.Zero(t, read(md, 4026532001, "podnet.tcp.connections", otherAttrs))
}
