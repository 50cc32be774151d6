package podnetreceiver

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
)

// attributeCount sizes each record's attribute array; if it drifted from what record sets,
// records would silently grow their arrays again.
func TestAttributeCountMatchesRecord(t *testing.T) {
	cfg := NewDefaultConfig()
	for _, attr := range []attribution.Attributor{attribution.None{}, fixedPeers{}, podPeers{}} {
		c := newLogsConverter(cfg.Events, "test")
		res := fixtureResources(cfg)
		res.attr = attr
		for i, e := range enrichAll(res, append(fixtureEvents(), shortConnections(4)...)) {
			if i%2 == 0 {
				e.serverName = "api.example.com" // dns_names: set by the enricher on some client records
			}
			lr := plog.NewLogRecord()
			c.record(lr, &e, pcommon.Timestamp(t0))
			assert.Equal(t, lr.Attributes().Len(), attributeCount(&e), "%v %v", e.Type, e.Peer)
		}
	}
}

// A close whose connection the kernel never timed (srtt 0: a SYN cookie's server end with
// timestamps off that sent no data) has no podnet.tcp.rtt, rather than a round trip of 0 (found
// by an independent review).
func TestCloseWithoutARoundTripSampleHasNoRTT(t *testing.T) {
	cfg := NewDefaultConfig()
	c := newLogsConverter(cfg.Events, "test")
	for _, e := range enrichAll(fixtureResources(cfg), shortConnections(4)) {
		if e.Type != event.Close {
			continue
		}
		for _, srtt := range []uint32{0, 37} {
			e.SRTTMicros = srtt
			lr := plog.NewLogRecord()
			c.record(lr, &e, pcommon.Timestamp(t0))
			rtt, ok := lr.Attributes().Get("podnet.tcp.rtt")
			assert.Equal(t, srtt != 0, ok, "srtt %d", srtt)
			if ok {
				assert.InDelta(t, 37e-6, rtt.Double(), 1e-12)
			}
			assert.Equal(t, lr.Attributes().Len(), attributeCount(&e))
		}
	}
}

// A Service's backend pod: named beside it in the Service's namespace, by its uid alone from
// another namespace (withBackend); attributeCount follows either way.
func TestBackendPodOfAnotherNamespaceIsNamedByUID(t *testing.T) {
	cfg := NewDefaultConfig()
	c := newLogsConverter(cfg.Events, "test")
	service := attribution.Peer{ServiceName: "proxy", Namespace: "edge"}
	for _, tc := range []struct {
		backendNamespace string
		want             map[string]any
	}{
		{"edge", map[string]any{"podnet.peer.k8s.namespace.name": "edge", "podnet.peer.k8s.service.name": "proxy", "podnet.peer.k8s.pod.name": "web-1", "podnet.peer.k8s.pod.uid": "uid-1"}},
		{"shop", map[string]any{"podnet.peer.k8s.namespace.name": "edge", "podnet.peer.k8s.service.name": "proxy", "podnet.peer.k8s.pod.uid": "uid-1"}},
	} {
		e := enrichAll(fixtureResources(cfg), shortConnections(1))[0]
		e.peer, e.backend = service, attribution.Peer{PodName: "web-1", PodUID: "uid-1", Namespace: tc.backendNamespace}
		lr := plog.NewLogRecord()
		c.record(lr, &e, pcommon.Timestamp(t0))
		got := map[string]any{}
		for k, v := range lr.Attributes().All() {
			if strings.HasPrefix(k, "podnet.peer.k8s.") {
				got[k] = v.AsRaw()
			}
		}
		assert.Equal(t, tc.want, got, "backend in %s", tc.backendNamespace)
		assert.Equal(t, lr.Attributes().Len(), attributeCount(&e))
	}
}
