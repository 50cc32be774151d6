//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"net/netip"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// metricNames bounds the DNS names (server.address) client series carry, per node: the first
// max_metric_names names seen are kept while series use them, any further one counts as
// dnsOtherName. It also remembers the name each (local end, peer address, server port) was last
// counted under, for as long as such series live: the drains of a long-lived connection's progress then
// keep its series' name after the answer's TTL ran out (the pod had no reason to resolve it
// again). A nil *metricNames is off: every name is "".
type metricNames struct {
	max      int
	admitted map[string]pcommon.Timestamp // name → when a series last used it
	last     map[namedPeer]lastName
	// fromEvents: metrics are counted from events (metrics_aggregation: events), each under its
	// own name; the drains (open connections' progress) take the name the events of their
	// (local end, peer, port) were last counted under, "" included, and look nothing up.
	fromEvents bool
	// keepPort: the series keep server.port. A name is remembered under the port the kernel's
	// keys keep (AGG_KEY_DROP_PORT; they keep the peer address while server.address is on):
	// under the event's own, an open connection's drain found no name once the series dropped
	// the port (found by an independent check: its bytes unnamed).
	keepPort bool
}

// namedPeer is what a name is remembered for. With the server port: another name of the same
// address, used on another port, took the bytes of an open connection's series (found by an
// independent check: api.example:9090's bytes under static.example, the 8080 name).
type namedPeer struct {
	res  resourceKey
	peer netip.Addr
	port uint16
}

type lastName struct {
	name string
	at   pcommon.Timestamp
}

// keepPort: the series keep server.port (connectionMetrics.keep).
func newMetricNames(cfg *Config, keepPort bool) *metricNames {
	if !cfg.DNSNames.MetricAttribute || cfg.DNSNames.Mode == dnsNamesOff {
		return nil
	}
	return &metricNames{
		max: cfg.DNSNames.MaxMetricNames, admitted: map[string]pcommon.Timestamp{}, last: map[namedPeer]lastName{},
		fromEvents: cfg.MetricsAggregation == aggregationEvents, keepPort: keepPort,
	}
}

// named is what a name of res's series to peer at port is remembered under.
func (n *metricNames) named(res resourceKey, peer netip.Addr, port uint16) namedPeer {
	if !n.keepPort {
		port = 0
	}
	return namedPeer{res, peer, port}
}

// ofEvent is server.address for a client series of res to peer counted from an event (metrics
// from events): the event's own name, "" included.
func (n *metricNames) ofEvent(res resourceKey, peer netip.Addr, port uint16, name string, now pcommon.Timestamp) string {
	if n == nil {
		return ""
	}
	return n.count(n.named(res, peer, port), name, now)
}

// ofDrain is server.address for a client series of res to peer counted from a drain: resolved
// by its lookup, or ("" when it found none, or looked nothing up) the name the series was last
// counted under; or "".
func (n *metricNames) ofDrain(res resourceKey, peer netip.Addr, port uint16, resolved string, now pcommon.Timestamp) string {
	if n == nil {
		return ""
	}
	p := n.named(res, peer, port)
	if resolved == "" {
		resolved = n.last[p].name
	}
	return n.count(p, resolved, now)
}

// count remembers name as p's last and admits it under the bound (dnsOtherName beyond it).
func (n *metricNames) count(p namedPeer, resolved string, now pcommon.Timestamp) string {
	if _, ok := n.last[p]; ok || len(n.last) < maxNamedPeers {
		n.last[p] = lastName{resolved, now}
	}
	if resolved == "" {
		return ""
	}
	name := resolved
	if _, ok := n.admitted[name]; ok || len(n.admitted) < n.max {
		n.admitted[name] = now
	} else {
		name = dnsOtherName
	}
	return name
}

// looksUp is whether a drain looks up the name of a client series' peer (in-kernel aggregation),
// rather than taking its events' (fromEvents).
func (n *metricNames) looksUp() bool { return n != nil && !n.fromEvents }

// maxNamedPeers bounds what name remembers: beyond it, new (local end, peer) pairs are named
// only while their lookups find a name.
const maxNamedPeers = 1 << 16

// expire forgets names and pairs no series used for longer than expiry (their series are gone).
func (n *metricNames) expire(now pcommon.Timestamp, expiry time.Duration) {
	if n == nil {
		return
	}
	for name, at := range n.admitted {
		if now.AsTime().Sub(at.AsTime()) > expiry {
			delete(n.admitted, name)
		}
	}
	for p, l := range n.last {
		if now.AsTime().Sub(l.at.AsTime()) > expiry {
			delete(n.last, p)
		}
	}
}
