//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestMetricNamesBoundAndKeepTheirName(t *testing.T) {
	cfg := NewDefaultConfig()
	assert.Nil(t, newMetricNames(cfg, true), "off by default")
	assert.Empty(t, newMetricNames(cfg, true).ofDrain(resourceKey{}, netip.Addr{}, 443, "a.example", 0), "off: no name")
	cfg.DNSNames.MetricAttribute, cfg.DNSNames.MaxMetricNames = true, 2
	n := newMetricNames(cfg, true)
	pod, other := resourceKey{netnsIno: 1}, resourceKey{netnsIno: 2}
	peer := netip.MustParseAddr("192.0.2.1")
	at := func(s int) pcommon.Timestamp { return pcommon.Timestamp(int64(s) * 1e9) }

	assert.Equal(t, "a.example", n.ofDrain(pod, peer, 443, "a.example", at(0)))
	assert.Equal(t, "b.example", n.ofDrain(other, peer, 443, "b.example", at(0)))
	assert.Equal(t, dnsOtherName, n.ofDrain(pod, netip.MustParseAddr("192.0.2.2"), 443, "c.example", at(0)), "a third name")
	assert.Equal(t, "a.example", n.ofDrain(pod, peer, 443, "", at(5)), "a drain after the TTL: the name its series had")
	assert.Empty(t, n.ofDrain(pod, netip.MustParseAddr("192.0.2.3"), 443, "", at(5)), "never named")

	n.expire(at(100), 60*time.Second)
	assert.Empty(t, n.ofDrain(pod, peer, 443, "", at(100)), "forgotten with its series")
	assert.Equal(t, "c.example", n.ofDrain(pod, peer, 443, "c.example", at(100)), "room again")
}

// Metrics from events: each event counts under its own name, "" included (a connection after
// the TTL ran out is not named after the address's earlier one); a drain of an open connection's
// progress takes the name its events were last counted under.
func TestMetricNamesFromEventsAreTheEventsOwn(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.DNSNames.MetricAttribute, cfg.MetricsAggregation = true, aggregationEvents
	n := newMetricNames(cfg, true)
	assert.False(t, n.looksUp(), "drains look nothing up")
	pod, peer := resourceKey{netnsIno: 1}, netip.MustParseAddr("192.0.2.1")
	at := func(s int) pcommon.Timestamp { return pcommon.Timestamp(int64(s) * 1e9) }

	assert.Equal(t, "a.example", n.ofEvent(pod, peer, 443, "a.example", at(0)))
	assert.Equal(t, "a.example", n.ofDrain(pod, peer, 443, "", at(1)), "a drain: its events' name")
	assert.Empty(t, n.ofEvent(pod, peer, 443, "", at(5)), "an event after the TTL: its own name, none")
	assert.Empty(t, n.ofDrain(pod, peer, 443, "", at(6)), "a drain after it: its events' name, none")

	// Another name of the address on another port does not take this port's drains (found by
	// an independent check: an open connection's bytes counted under the other port's name).
	assert.Equal(t, "api.example", n.ofEvent(pod, peer, 9090, "api.example", at(7)))
	assert.Equal(t, "static.example", n.ofEvent(pod, peer, 8080, "static.example", at(8)))
	assert.Equal(t, "api.example", n.ofDrain(pod, peer, 9090, "", at(9)), "port 9090's drain: its events' name")

	cfg.MetricsAggregation = aggregationKernel
	assert.True(t, newMetricNames(cfg, true).looksUp(), "in-kernel aggregation: drains look the name up")
}
