//go:build linux

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
	assert.Nil(t, newMetricNames(cfg), "off by default")
	assert.Empty(t, newMetricNames(cfg).name(resourceKey{}, netip.Addr{}, "a.example", 0), "off: no name")
	cfg.DNSNames.MetricAttribute, cfg.DNSNames.MaxMetricNames = true, 2
	n := newMetricNames(cfg)
	pod, other := resourceKey{netnsIno: 1}, resourceKey{netnsIno: 2}
	peer := netip.MustParseAddr("192.0.2.1")
	at := func(s int) pcommon.Timestamp { return pcommon.Timestamp(int64(s) * 1e9) }

	assert.Equal(t, "a.example", n.name(pod, peer, "a.example", at(0)))
	assert.Equal(t, "b.example", n.name(other, peer, "b.example", at(0)))
	assert.Equal(t, dnsOtherName, n.name(pod, netip.MustParseAddr("192.0.2.2"), "c.example", at(0)), "a third name")
	assert.Equal(t, "a.example", n.name(pod, peer, "", at(5)), "a drain after the TTL: the name its series had")
	assert.Empty(t, n.name(pod, netip.MustParseAddr("192.0.2.3"), "", at(5)), "never named")

	n.expire(at(100), 60*time.Second)
	assert.Empty(t, n.name(pod, peer, "", at(100)), "forgotten with its series")
	assert.Equal(t, "c.example", n.name(pod, peer, "c.example", at(100)), "room again")
}
