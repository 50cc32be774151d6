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
		for _, e := range enrichAll(res, append(fixtureEvents(), shortConnections(4)...)) {
			lr := plog.NewLogRecord()
			c.record(lr, &e, pcommon.Timestamp(t0))
			assert.Equal(t, lr.Attributes().Len(), attributeCount(&e), "%v %v", e.Type, e.Peer)
		}
	}
}
