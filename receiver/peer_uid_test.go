package podnetreceiver

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/podnet/podnet/receiver/internal/attribution"
)

// uidlessPeers names every peer as a pod whose UID is unknown, as peer_pods endpoints does for
// an EndpointSlice whose targetRef has no uid; 10.96.0.10 is a Service.
type uidlessPeers struct{ attribution.None }

func (uidlessPeers) Peer(a netip.Addr, _ int64) (attribution.Peer, attribution.Span) {
	if a == netip.MustParseAddr("10.96.0.10") {
		return attribution.Peer{ServiceName: "web", Namespace: "shop"}, attribution.Always
	}
	return attribution.Peer{PodName: "web-0", Namespace: "shop"}, attribution.Always
}

// An unknown peer UID is left out, not written as "" (found by an independent check with
// peer_pods endpoints and a targetRef without uid); the pod's name is still there. Also for a
// Service's backend pod.
func TestUnknownPeerUIDOmitted(t *testing.T) {
	cfg := NewDefaultConfig()
	res := fixtureResources(cfg)
	res.attr = uidlessPeers{}
	c := newLogsConverter(cfg.Events, "test")
	events := enrichAll(res, fixtureEvents())
	var backends int
	for i := range events {
		e := &events[i]
		lr := plog.NewLogRecord()
		c.record(lr, e, pcommon.Timestamp(t0))
		attrs := lr.Attributes().AsRaw()
		assert.NotContains(t, attrs, "podnet.peer.k8s.pod.uid", "%v %v", e.Type, e.Peer)
		assert.Equal(t, "web-0", attrs["podnet.peer.k8s.pod.name"], "%v %v", e.Type, e.Peer)
		assert.Equal(t, lr.Attributes().Len(), attributeCount(e), "%v %v", e.Type, e.Peer)
		if e.Backend.IsValid() && attrs["podnet.peer.k8s.service.name"] == "web" {
			backends++
		}
	}
	assert.NotZero(t, backends, "a Service's backend pod among them")
}
