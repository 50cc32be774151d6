package podnetreceiver

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
)

// enrichAll attributes events with res (and its attributor) as the reader does per batch.
func enrichAll(res *resources, events []event.Event) []enrichedEvent {
	out := make([]enrichedEvent, len(events))
	for i := range events {
		out[i].Event = events[i]
	}
	newEnricher(res, res.attr, nil).enrich(out)
	return out
}

// countingAttributor counts the questions attribution is asked.
type countingAttributor struct {
	fixedPeers
	locals, peers int
}

func (c *countingAttributor) Local(uint32, uint64) attribution.Local {
	c.locals++
	return attribution.Local{PodUID: "uid"}
}

func (c *countingAttributor) Peer(a netip.Addr) attribution.Peer {
	c.peers++
	return c.fixedPeers.Peer(a)
}

// Attribution is asked once per local end and once per peer address per batch, whatever
// the batch's size, and the answers travel with the events.
func TestEnrichAsksOncePerEndPerBatch(t *testing.T) {
	cfg := NewDefaultConfig()
	attr := &countingAttributor{}
	en := newEnricher(newResources(cfg, attr), attr, nil)
	events := enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch))
	en.enrich(events)
	// shortConnections: 8 client and 4 server namespaces; 8 client and 4 server addresses.
	assert.Equal(t, 12, attr.locals)
	assert.Equal(t, 12, attr.peers)
	for _, e := range events {
		assert.Equal(t, "uid", e.local.attr.PodUID)
		assert.Equal(t, resourceKey{netnsIno: e.NetnsIno, cgroupID: e.CgroupID}, e.local.key)
	}
	en.enrich(events)
	assert.Equal(t, 24, attr.peers, "a new batch asks again: names stay current")
}

// BenchmarkEnrich is attribution's per-event cost at ingest, paid once for logs and metrics.
func BenchmarkEnrich(b *testing.B) {
	cfg := NewDefaultConfig()
	en := newEnricher(newResources(cfg, podPeers{}), podPeers{}, nil)
	events := enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch))
	perEvent(b, events, en.enrich)
}

// BenchmarkBatchPath is the whole per-event user-space cost of a batch with logs and metrics
// after decoding: attribution once, the metrics aggregation, the logs conversion.
func BenchmarkBatchPath(b *testing.B) {
	cfg := NewDefaultConfig()
	en := newEnricher(newResources(cfg, podPeers{}), podPeers{}, nil)
	c := newLogsConverter(cfg.Events, "bench")
	m := newConnectionMetrics(cfg, fixtureSettings)
	events := enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch))
	perEvent(b, events, func(events []enrichedEvent) {
		en.enrich(events)
		m.add(events)
		c.convert(events, pcommon.Timestamp(t0))
	})
}
