package podnetreceiver

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/podnet/podnet/receiver/internal/event"
)

// Socket-level load balancing: the socket's peer is the backend pod, the Service is what
// connect() was asked for; the record keeps network.peer.* as the socket saw it and names
// both, as for a DNAT'd connection.
func TestDialledServiceNamesServiceAndBackend(t *testing.T) {
	cfg := NewDefaultConfig()
	e := event.Event{
		Type: event.Connect, Role: event.Client, Time: t0, NetnsIno: 4026532001, CgroupID: 9001,
		Local: netip.MustParseAddrPort("10.1.0.5:41000"), Peer: netip.MustParseAddrPort("10.1.0.9:8080"),
		Backend: netip.MustParseAddrPort("10.1.0.9:8080"), Dialled: netip.MustParseAddrPort("10.96.0.10:80"),
	}
	batch := enrichAll(fixtureResources(cfg), []event.Event{e})
	lr := plog.NewLogRecord()
	newLogsConverter(cfg.Events, "test").record(lr, &batch[0], pcommon.Timestamp(t0))
	assert.Equal(t, map[string]any{
		"network.transport": "tcp", "network.type": "ipv4",
		"network.local.address": "10.1.0.5", "network.local.port": int64(41000),
		"network.peer.address": "10.1.0.9", "network.peer.port": int64(8080),
		"podnet.connection.role":         "client",
		"podnet.peer.k8s.service.name":   "web",
		"podnet.peer.k8s.namespace.name": "shop",
		"podnet.peer.backend.address":    "10.1.0.9", "podnet.peer.backend.port": int64(8080),
		"podnet.peer.k8s.pod.name": "web-0", "podnet.peer.k8s.pod.uid": "uid-web-0",
	}, lr.Attributes().AsRaw())
	assert.Equal(t, lr.Attributes().Len(), attributeCount(&batch[0]))
}
