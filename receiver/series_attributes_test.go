package podnetreceiver

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// The connection metrics share their series: the metrics whose attributes are listed decide
// what the series drop, those left at their default follow, and listed ones that disagree are
// refused with what differs.
func TestSeriesAttributesMustAgree(t *testing.T) {
	cfg := NewDefaultConfig()
	keep, err := seriesAttributesOf(cfg.Metrics)
	require.NoError(t, err)
	assert.Equal(t, seriesAttrs{true, true, true, true, true, true, true, true, true, true}, keep, "by default every attribute")
	assert.Empty(t, keep.dropped())

	// One metric listed (the README's example): the others follow.
	cfg.Metrics.PodnetTCPConnections.EnabledAttributes = []metadata.PodnetTCPConnectionsMetricAttributeKey{"podnet.connection.role", "server.port", "error.type"}
	require.NoError(t, cfg.Validate())
	keep, err = seriesAttributesOf(cfg.Metrics)
	require.NoError(t, err)
	assert.Equal(t, seriesAttrs{role: true, port: true, errType: true}, keep)
	assert.Contains(t, keep.dropped(), "network.peer.address")

	// Another listed one that keeps what the first drops: refused, naming both.
	cfg.Metrics.PodnetTCPBytesSent.EnabledAttributes = []metadata.PodnetTCPBytesSentMetricAttributeKey{"podnet.connection.role", "server.port", "network.peer.address"}
	err = cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "network.peer.address (kept by podnet.tcp.bytes_sent, dropped by podnet.tcp.connections)")
	assert.NotContains(t, err.Error(), "server.port", "what they agree on is not listed")

	// Turned off, it does not count; its list is refused all the same, as ignored.
	cfg.Metrics.PodnetTCPBytesSent.Enabled = false
	err = cfg.Validate()
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "kept by podnet.tcp.bytes_sent")
	assert.Contains(t, err.Error(), "metrics.podnet.tcp.bytes_sent.attributes is set, but metrics.podnet.tcp.bytes_sent.enabled is false")

	// All listed alike; error.type, on two metrics only, dropped by both.
	cfg = NewDefaultConfig()
	setSeriesAttributes(t, cfg, "podnet.connection.role", "network.type", "server.port")
	keep, err = seriesAttributesOf(cfg.Metrics)
	require.NoError(t, err)
	assert.Equal(t, seriesAttrs{role: true, netType: true, port: true}, keep)
}

// Dropped attributes are on no data point, the optional ones (error.type, the peer's names,
// server.address, the backend) as the required ones, on the unlisted metrics as on the listed
// ones, and the series they told apart are one: every sum stays what it was with all
// attributes. (Independent checks saw error.type on points of a metric configured without it,
// then, on the metrics left unlisted, network.peer.address="invalid IP" and network.type=ipv4
// for IPv6 connections: the key's zero values.)
func TestDroppedAttributesLeaveEveryPoint(t *testing.T) {
	kept := []string{"podnet.connection.role", "server.port"}
	for _, tc := range []struct {
		name      string
		configure func(*Config)
	}{
		{"every metric listed", func(cfg *Config) { setSeriesAttributes(t, cfg, kept...) }},
		{"one metric listed, the others follow", func(cfg *Config) {
			cfg.Metrics.PodnetTCPConnections.EnabledAttributes = keys[metadata.PodnetTCPConnectionsMetricAttributeKey](kept)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := pcommon.NewTimestampFromTime(time.Now())
			all := NewDefaultConfig()
			full := newFixtureMetrics(all)
			full.add(fixtureBatch(all))
			want := full.emit(now)

			cfg := NewDefaultConfig()
			tc.configure(cfg)
			require.NoError(t, cfg.Validate())
			m := newFixtureMetrics(cfg)
			m.add(fixtureBatch(cfg))
			got := m.emit(now)

			allowed := append([]string{"podnet.tcp.close.reason"}, kept...)
			points := 0
			for _, rm := range got.ResourceMetrics().All() {
				for _, metric := range rm.ScopeMetrics().At(0).Metrics().All() {
					for _, a := range pointAttributes(metric) {
						points++
						assert.Subset(t, allowed, keysOf(a.AsRaw()), "%s: only the kept attributes", metric.Name())
					}
				}
			}
			require.Positive(t, points)
			for _, name := range []string{
				"podnet.tcp.connections", "podnet.tcp.connections.closed", "podnet.tcp.bytes_sent",
				"podnet.tcp.bytes_received", "podnet.tcp.connection.duration",
			} {
				assert.InDelta(t, sumOf(dataPoints(want, name)), sumOf(dataPoints(got, name)), 1e-9, "%s: sum over all series", name)
			}
			assert.Less(t, len(dataPoints(got, "podnet.tcp.connections")), len(dataPoints(want, "podnet.tcp.connections")), "series merged")
		})
	}
}

// setSeriesAttributes keeps only the given attributes on every connection metric, as the
// README shows (the series are shared, so they must agree).
func setSeriesAttributes(t *testing.T, cfg *Config, kept ...string) {
	t.Helper()
	m := &cfg.Metrics
	m.PodnetTCPConnections.EnabledAttributes = keys[metadata.PodnetTCPConnectionsMetricAttributeKey](kept)
	m.PodnetTCPConnectionsActive.EnabledAttributes = keys[metadata.PodnetTCPConnectionsActiveMetricAttributeKey](kept)
	m.PodnetTCPConnectionsClosed.EnabledAttributes = keys[metadata.PodnetTCPConnectionsClosedMetricAttributeKey](append(kept, "podnet.tcp.close.reason"))
	m.PodnetTCPConnectionDuration.EnabledAttributes = keys[metadata.PodnetTCPConnectionDurationMetricAttributeKey](kept)
	m.PodnetTCPBytesSent.EnabledAttributes = keys[metadata.PodnetTCPBytesSentMetricAttributeKey](kept)
	m.PodnetTCPBytesReceived.EnabledAttributes = keys[metadata.PodnetTCPBytesReceivedMetricAttributeKey](kept)
	m.PodnetTCPRetransmits.EnabledAttributes = keys[metadata.PodnetTCPRetransmitsMetricAttributeKey](kept)
	m.PodnetTCPSynRetransmits.EnabledAttributes = keys[metadata.PodnetTCPSynRetransmitsMetricAttributeKey](kept)
	require.NoError(t, cfg.Validate())
}

func keys[K ~string](names []string) []K {
	out := make([]K, len(names))
	for i, n := range names {
		out[i] = K(n)
	}
	return out
}

// podnet.tcp.listen.overflows without server.port: one point per local end, the sum of its
// listeners' overflows, though they were first seen in different scans (different starts).
func TestListenOverflowsWithoutThePortMerge(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Metrics.PodnetTCPListenOverflows.EnabledAttributes = nil
	m := newFixtureMetrics(cfg)
	res := fixtureResources(cfg)
	local := func(rk resourceKey) *localEnd { return res.get(rk) }
	t0 := pcommon.NewTimestampFromTime(time.Now())
	t1 := pcommon.NewTimestampFromTime(time.Now().Add(time.Second))
	t2 := pcommon.NewTimestampFromTime(time.Now().Add(2 * time.Second))
	rk := resourceKey{netnsIno: 4026532001, cgroupID: 9001}
	m.setListenOverflows(map[listenKey]int64{{res: rk, port: 8080}: 2}, local, t0, t1)
	m.setListenOverflows(map[listenKey]int64{{res: rk, port: 9090}: 3, {res: rk, port: 8080}: 1}, local, t1, t2)
	md := m.emit(t2)
	dps := dataPoints(md, "podnet.tcp.listen.overflows")
	require.Len(t, dps, 1)
	assert.Equal(t, int64(6), dps[0].IntValue())
	assert.Zero(t, dps[0].Attributes().Len())
}

// A listener gone longer than metric_series_idle_expiry (its series retired, no longer emitted)
// that listens again continues its series: same start, the count from where it was (found by
// an independent check with a real Prometheus: deleted, it came back as 1, 3 with a new start,
// which Prometheus read as a reset: 7.18 overflows instead of 9). At most max_metric_series
// retired listen series are kept.
func TestListenOverflowsContinueAfterTheirListenerWasGone(t *testing.T) {
	cfg := NewDefaultConfig()
	m := newFixtureMetrics(cfg)
	res := fixtureResources(cfg)
	local := func(rk resourceKey) *localEnd { return res.get(rk) }
	start := time.Now()
	at := func(d time.Duration) pcommon.Timestamp { return pcommon.NewTimestampFromTime(start.Add(d)) }
	rk := resourceKey{netnsIno: 4026532001, cgroupID: 9001}
	m.setListenOverflows(map[listenKey]int64{{res: rk, port: 8090}: 6}, local, at(0), at(time.Second))
	first := dataPoints(m.emit(at(time.Second)), "podnet.tcp.listen.overflows")
	require.Len(t, first, 1)
	gone := at(cfg.MetricSeriesIdleExpiry + 2*time.Second)
	assert.Empty(t, dataPoints(m.emit(gone), "podnet.tcp.listen.overflows"), "its listener gone: retired")
	m.setListenOverflows(map[listenKey]int64{{res: rk, port: 8090}: 3}, local, gone, gone+1)
	back := dataPoints(m.emit(gone+1), "podnet.tcp.listen.overflows")
	require.Len(t, back, 1)
	assert.Equal(t, int64(9), back[0].IntValue(), "listening again, the count continues")
	assert.Equal(t, first[0].StartTimestamp(), back[0].StartTimestamp(), "from its start")

	small := NewDefaultConfig()
	small.MaxMetricSeries = 2
	m = newFixtureMetrics(small)
	ports := map[listenKey]int64{}
	for p := range uint16(5) {
		ports[listenKey{res: rk, port: 9000 + p}] = 1
	}
	m.setListenOverflows(ports, local, at(0), at(time.Second))
	m.emit(at(small.MetricSeriesIdleExpiry + 2*time.Second))
	assert.Len(t, m.listens, 2, "at most max_metric_series retired listen series are kept")
	assert.Equal(t, 2, m.retiredListens)
}

// The kernel's keys drop a field only when nothing read from a drained key needs it: the peer
// address names the peer pod and Service (and server.address, a client's: the role too), the
// peer address needs its family, and the service graph reads the peer, the error and the role.
func TestKernelKeyDropsFollowWhatTheSeriesRead(t *testing.T) {
	const peer, port, errType = uint8(bpf.PodnetAggKeyDropAGG_KEY_DROP_PEER), uint8(bpf.PodnetAggKeyDropAGG_KEY_DROP_PORT), uint8(bpf.PodnetAggKeyDropAGG_KEY_DROP_ERROR)
	const role, family = uint8(bpf.PodnetAggKeyDropAGG_KEY_DROP_ROLE), uint8(bpf.PodnetAggKeyDropAGG_KEY_DROP_FAMILY)
	for _, tc := range []struct {
		name  string
		attrs []metadata.PodnetTCPConnectionsMetricAttributeKey
		graph bool
		want  uint8
	}{
		{"every attribute", nil, false, 0},
		{"the README's example", []metadata.PodnetTCPConnectionsMetricAttributeKey{"podnet.connection.role", "server.port", "error.type"}, false, peer | family},
		{"role alone", []metadata.PodnetTCPConnectionsMetricAttributeKey{"podnet.connection.role"}, false, peer | port | errType | family},
		{"the network type without the peer", []metadata.PodnetTCPConnectionsMetricAttributeKey{"podnet.connection.role", "network.type"}, false, peer | port | errType},
		{"the port alone", []metadata.PodnetTCPConnectionsMetricAttributeKey{"server.port"}, false, peer | errType | role | family},
		{"the peer pod's name, from the peer address", []metadata.PodnetTCPConnectionsMetricAttributeKey{"podnet.connection.role", "podnet.peer.k8s.pod.name"}, false, port | errType},
		{"server.address, named for clients", []metadata.PodnetTCPConnectionsMetricAttributeKey{"server.port", "server.address"}, false, errType},
		{"the service graph reads peer, error and role", []metadata.PodnetTCPConnectionsMetricAttributeKey{"server.port"}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewDefaultConfig()
			if tc.attrs != nil {
				cfg.Metrics.PodnetTCPConnections.EnabledAttributes = tc.attrs
			}
			if tc.graph { // it counts pods' connections: the API server names them
				cfg.Metrics.TracesServiceGraphRequestTotal.Enabled = true
				cfg.Kubernetes.AuthType, cfg.NodeName = k8smeta.AuthTypeServiceAccount, "node-1"
			}
			require.NoError(t, cfg.Validate())
			assert.Equal(t, tc.want, cfg.kernelKeyDrops())
		})
	}
}

// What names a peer beyond its metric attributes — a pod's UID, a Service's want of ready
// endpoints — never tells two series apart: a peer pod recreated under its name at its address
// (a StatefulSet's pod on a CNI that keeps its IP), or failed connects to a Service with and
// without a ready endpoint, count in one series, not in two with the same attributes and
// their own start times and values (found by an independent review: points 5 and 2, and 2 and
// 1, under one attribute set).
func TestPeerDetailsOffTheMetricsSplitNoSeries(t *testing.T) {
	k := &bpf.PodnetAggKey{NetnsIno: 4026532001, CgroupId: 9001, Family: 2, PeerAddr: [16]byte{10, 1, 0, 9}, ServerPort: 5432, Role: uint8(event.Client)}
	peerAddr, _ := event.Addr(2, k.PeerAddr)
	t.Run("a recreated peer pod, in-kernel aggregates", func(t *testing.T) {
		cfg := NewDefaultConfig()
		m := newFixtureMetrics(cfg)
		local := fixtureResources(cfg).get(resourceKey{netnsIno: 4026532001, cgroupID: 9001})
		for _, d := range []struct {
			uid   string
			conns uint64
		}{{"uid-before", 5}, {"uid-after", 2}} {
			now := pcommon.NewTimestampFromTime(time.Now())
			m.addAggregate(k, &bpf.PodnetAggValue{Connections: d.conns}, peerAddr, local,
				attribution.Peer{Namespace: "db", PodName: "pg-0", PodUID: d.uid}, peerAddr, attribution.Peer{}, "", now, now)
			m.settleActive(true, now)
			time.Sleep(2 * time.Millisecond)
		}
		assert.Equal(t, map[string][]int64{"10.1.0.9 pg-0 <nil>": {7}}, connectionPointsByPeer(m.emit(pcommon.NewTimestampFromTime(time.Now()))))
	})
	t.Run("a Service with and without ready endpoints, events", func(t *testing.T) {
		cfg := NewDefaultConfig()
		cfg.MetricsAggregation = aggregationEvents
		m := newFixtureMetrics(cfg)
		local := fixtureResources(cfg).get(resourceKey{netnsIno: 4026532001, cgroupID: 9001})
		refused := func(noReady bool) enrichedEvent {
			return enrichedEvent{
				Event: event.Event{
					Type: event.Connect, Role: event.Client, Errno: 111, NetnsIno: 4026532001, CgroupID: 9001,
					Local: netip.MustParseAddrPort("10.1.0.5:40000"), Peer: netip.MustParseAddrPort("10.96.0.10:80"),
				},
				local: local, peer: attribution.Peer{Namespace: "shop", ServiceName: "web", NoReadyEndpoints: noReady},
			}
		}
		m.add([]enrichedEvent{refused(true), refused(true)})
		time.Sleep(2 * time.Millisecond)
		m.add([]enrichedEvent{refused(false)})
		assert.Equal(t, map[string][]int64{"10.96.0.10 <nil> web": {3}}, connectionPointsByPeer(m.emit(pcommon.NewTimestampFromTime(time.Now()))))
	})
}

// connectionPointsByPeer is every podnet.tcp.connections point's value by its peer address, peer pod
// and peer Service.
func connectionPointsByPeer(md pmetric.Metrics) map[string][]int64 {
	points := map[string][]int64{}
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Name() != "podnet.tcp.connections" {
					continue
				}
				for _, dp := range m.Sum().DataPoints().All() {
					a := dp.Attributes().AsRaw()
					key := fmt.Sprint(a["network.peer.address"], " ", a["podnet.peer.k8s.pod.name"], " ", a["podnet.peer.k8s.service.name"])
					points[key] = append(points[key], dp.IntValue())
				}
			}
		}
	}
	return points
}

// A list that repeats a name drops what it leaves out as the same list written once does: it
// was taken for "left at its default" when as long as the metric's whole list, and the series
// kept every attribute the user dropped (found by an independent review, fuzzing the config:
// error.type and peer pod names on points of a metric listing role and server.port).
func TestRepeatedAttributeNamesStillDrop(t *testing.T) {
	kept := []string{"podnet.connection.role", "server.port"}
	repeated := slices.Repeat(kept, 5) // as long as podnet.tcp.connections' whole list
	cfg := NewDefaultConfig()
	cfg.Metrics.PodnetTCPConnections.EnabledAttributes = keys[metadata.PodnetTCPConnectionsMetricAttributeKey](repeated)
	require.NoError(t, cfg.Validate())
	m := newFixtureMetrics(cfg)
	m.add(fixtureBatch(cfg))
	got := m.emit(pcommon.NewTimestampFromTime(time.Now()))
	require.NotEmpty(t, dataPoints(got, "podnet.tcp.connections"))
	for _, dp := range dataPoints(got, "podnet.tcp.connections") {
		for k := range dp.Attributes().AsRaw() {
			assert.Contains(t, kept, k, "an attribute the list leaves out")
		}
	}
}
