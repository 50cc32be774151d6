package podnetreceiver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"

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
