package podnetreceiver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/podnet/podnet/receiver/internal/attribution"
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
