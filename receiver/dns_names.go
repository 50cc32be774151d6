//go:build linux

package podnetreceiver

import (
	"context"
	"net/netip"

	"go.uber.org/zap"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/dnsnames"
	"github.com/podnet/podnet/receiver/internal/procscan"
)

// serverNames names the peers of client connections by the DNS name their pod resolved
// (*dnsnames.Names). Times are Unix nanoseconds.
type serverNames interface {
	// Refresh takes in every response the kernel has seen so far: called before a batch of
	// events (or a drain of the aggregates) is named.
	Refresh()
	// Lookup: the name valid at `at`; LookupDuring: valid at some time in [from, to].
	Lookup(netns uint32, addr netip.Addr, at int64) string
	LookupDuring(netns uint32, addr netip.Addr, from, to int64) string
}

// dnsSource is the DNS side as Start opens it.
type dnsSource interface {
	serverNames
	Close() error
}

func openDNSNames(opts dnsnames.Options) (dnsSource, error) {
	n, err := dnsnames.Open(opts)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// namedAttributor carries the DNS names beside the attributor Start hands to launch, so that
// every enricher made from it (of events, of drained aggregates) names servers too.
type namedAttributor struct {
	attribution.Attributor
	names serverNames
}

// serverNamesOf is the DNS names an attributor carries; nil when dns_names is off.
func serverNamesOf(attr attribution.Attributor) serverNames {
	if na, ok := attr.(namedAttributor); ok {
		return na.names
	}
	return nil
}

// withDNSNames starts dns_names unless it is off. Where the kernel refuses the program (no
// cgroup v2, a missing capability, a verifier that rejects it), it logs why, once, and podnet
// runs without: never a failed Start. It returns the attributor to use and how to stop both.
func (r *podnetReceiver) withDNSNames(attr attribution.Attributor, stopAttr func(), tb *metadata.TelemetryBuilder) (attribution.Attributor, func()) {
	cfg := r.cfg.DNSNames
	if cfg.Mode == dnsNamesOff {
		return attr, stopAttr
	}
	root, err := procscan.Cgroup2Root(r.cfg.ProcRoot, r.cfg.CgroupRoot)
	var names dnsSource
	if err == nil {
		rep := &dnsReporter{tb: tb}
		names, err = r.openNames(dnsnames.Options{
			CgroupRoot: root, MaxNames: cfg.MaxNames, Poll: r.cfg.PollInterval, Report: rep.report,
		})
	}
	if err != nil {
		r.set.Logger.Info("podnet: dns_names is off (connections to servers outside the cluster carry no server.address); "+
			"it needs CAP_NET_ADMIN (README.md, DNS names), the host's cgroup v2 hierarchy (cgroup_root) "+
			"and cgroup_skb BPF programs; set dns_names.mode: off to silence this", zap.Error(err))
		return attr, stopAttr
	}
	r.set.Logger.Info("podnet: connections to servers outside the cluster are named by the DNS names their pods resolved (server.address)",
		zap.String("cgroup_root", root), zap.Bool("metric_attribute", cfg.MetricAttribute))
	return namedAttributor{Attributor: attr, names: names}, func() {
		if err := names.Close(); err != nil {
			r.set.Logger.Warn("podnet: closing dns_names", zap.Error(err))
		}
		stopAttr()
	}
}

// dnsReporter exports the DNS counters' deltas as podnet's self-telemetry. Called from one
// goroutine at a time (dnsnames.Options.Report).
type dnsReporter struct {
	tb   *metadata.TelemetryBuilder
	last dnsnames.Counters
}

func (d *dnsReporter) report(c dnsnames.Counters) {
	ctx := context.Background()
	d.tb.PodnetDNSResponses.Add(ctx, int64(c.Responses-d.last.Responses))
	dropped := func(c dnsnames.Counters) uint64 { return c.Lost + c.NoSocket + c.Malformed }
	d.tb.PodnetDNSResponsesDropped.Add(ctx, int64(dropped(c)-dropped(d.last)))
	d.tb.PodnetDNSNamesEvicted.Add(ctx, int64(c.Evicted-d.last.Evicted))
	d.last = c
}
