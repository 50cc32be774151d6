package podnetreceiver

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/event"
)

// Connections to one Service that reached two backends: one client series by default, one per
// backend (named by its pod) with service_backends.metric_attribute.
func TestBackendSplitsMetricsOnlyWhenAskedFor(t *testing.T) {
	connect := func(port uint16, backend string) event.Event {
		return event.Event{
			Type: event.Connect, Role: event.Client, Time: t0, NetnsIno: 4026532001, CgroupID: 9001,
			Local: netip.AddrPortFrom(netip.MustParseAddr("10.1.0.5"), port), Peer: netip.MustParseAddrPort("10.96.0.10:80"),
			Backend: netip.MustParseAddrPort(backend),
		}
	}
	events := []event.Event{connect(41000, "10.1.0.9:8080"), connect(41001, "10.1.0.9:8080"), connect(41002, "10.1.0.7:8080")}
	for _, on := range []bool{false, true} {
		cfg := NewDefaultConfig()
		cfg.ServiceBackends.MetricAttribute = on
		m := newFixtureMetrics(cfg)
		assert.Zero(t, m.add(enrichAll(fixtureResources(cfg), events)))
		byBackend := map[string]int64{}
		for _, dp := range dataPoints(m.emit(pcommon.NewTimestampFromTime(time.Now())), "podnet.tcp.connections") {
			svc, _ := dp.Attributes().Get("podnet.peer.k8s.service.name")
			assert.Equal(t, "web", svc.Str())
			b, hasBackend := dp.Attributes().Get("podnet.peer.backend.address")
			pod, hasPod := dp.Attributes().Get("podnet.peer.k8s.pod.name")
			assert.Equal(t, on, hasBackend, "metric_attribute %v", on)
			assert.Equal(t, on && b.Str() == "10.1.0.9", hasPod, "the backend pod, where attribution knows it")
			if hasPod {
				assert.Equal(t, "web-0", pod.Str())
			}
			byBackend[b.Str()] += dp.IntValue()
		}
		if on {
			assert.Equal(t, map[string]int64{"10.1.0.9": 2, "10.1.0.7": 1}, byBackend)
		} else {
			assert.Equal(t, map[string]int64{"": 3}, byBackend)
		}
	}
}

// In-kernel aggregates of connections that socket-level load balancing sent from a Service to
// a backend: the key holds the Service dialled in backend_* (marked dialled) and the backend as
// the peer. The series say what the records say: the peer and backend address are the backend
// (its pod named), the Service named from what was dialled (found by an independent check: the
// backend attribute held the Service's address).
func TestDialledAggregatesNameTheServiceAndTheBackend(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.MetricsAggregation = aggregationKernel
	cfg.MetricsInterval = 20 * time.Millisecond
	cfg.ServiceBackends.MetricAttribute = true
	metrics := new(consumertest.MetricsSink)
	f := newFakeReceiver(t, cfg, nil, nil, metrics)
	k := bpf.PodnetAggKey{
		NetnsIno: 4026532001, CgroupId: 9001, Family: 2, PeerAddr: [16]byte{10, 1, 0, 9}, ServerPort: 8080, Role: uint8(event.Client),
		Flags:       uint8(bpf.PodnetAggKeyFlagAGG_KEY_DIALLED | bpf.PodnetAggKeyFlagAGG_KEY_BACKEND),
		BackendAddr: netip.MustParseAddr("::ffff:10.96.0.10").As16(),
	}
	f.kernel.aggregates = map[bpf.PodnetAggKey]bpf.PodnetAggValue{k: {Connections: 3}}
	f.start(t)
	require.Eventually(t, func() bool { return len(metrics.AllMetrics()) > 0 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, f.Shutdown(context.Background()))
	v, ok := point(t, metrics.AllMetrics(), 4026532001, "podnet.tcp.connections", map[string]any{
		"network.peer.address": "10.1.0.9", "podnet.peer.backend.address": "10.1.0.9", "server.port": int64(8080),
		"podnet.peer.k8s.service.name": "web", "podnet.peer.k8s.pod.name": "web-0", "podnet.peer.k8s.namespace.name": "shop",
		"podnet.connection.role": "client", "network.type": "ipv4",
	})
	require.True(t, ok, "a series naming the Service and its backend pod")
	assert.Equal(t, 3.0, v)
}
