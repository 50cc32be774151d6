//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"net/netip"

	"go.uber.org/zap"

	"github.com/podnet/podnet/internal/metadata"
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

// withDNSNames starts dns_names unless it is off. Where the kernel refuses the program (no
// cgroup v2, a missing capability, a verifier that rejects it), it logs why, once, and podnet
// runs without: never a failed Start. It returns the names (nil when off) and how to stop them
// and then what stopAttr stops.
func (r *podnetReceiver) withDNSNames(stopAttr func(), tb *metadata.TelemetryBuilder) (serverNames, func()) {
	cfg := r.cfg.DNSNames
	if cfg.Mode == dnsNamesOff {
		return nil, stopAttr
	}
	if !r.emitsServerNames() {
		const why = "podnet: dns_names not loaded: nothing this podnet emits carries server.address " +
			"(no logs pipeline with podnet.tcp.connect or podnet.tcp.close records, and dns_names.metric_attribute is off)"
		// A bound set for a table never made is ignored: said, as the other ignored settings
		// are (found by an independent check: max_names set in a metrics-only podnet, no word).
		if cfg.MaxNames != defaultDNSMaxNames {
			r.set.Logger.Warn(why+"; its settings are ignored", zap.Strings("ignored", []string{"dns_names.max_names"}))
		} else {
			r.set.Logger.Info(why)
		}
		return nil, stopAttr
	}
	root, err := procscan.Cgroup2Root(r.cfg.ProcRoot, r.cfg.CgroupRoot)
	var names dnsSource
	if err == nil {
		rep := &dnsReporter{tb: tb, logger: r.set.Logger}
		names, err = r.openNames(dnsnames.Options{
			CgroupRoot: root, MaxNames: cfg.MaxNames, Poll: r.cfg.PollInterval, Report: rep.report,
		})
	}
	if err != nil {
		r.set.Logger.Info("podnet: dns_names is off (connections to servers outside the cluster carry no server.address); "+
			"it needs CAP_NET_ADMIN (README.md, DNS names), the host's cgroup v2 hierarchy (cgroup_root), "+
			"cgroup_skb BPF programs and room beside any other at the cgroup (the error says which it lacked); "+
			"set dns_names.mode: off to silence this", zap.Error(err))
		return nil, stopAttr
	}
	r.set.Logger.Info("podnet: connections to servers outside the cluster are named by the DNS names their pods resolved (server.address)",
		zap.String("cgroup_root", root), zap.Bool("metric_attribute", cfg.MetricAttribute))
	return names, func() {
		if err := names.Close(); err != nil {
			r.set.Logger.Warn("podnet: closing dns_names", zap.Error(err))
		}
		stopAttr()
	}
}

// dnsReporter exports the DNS counters' deltas as podnet's self-telemetry. Called from one
// goroutine at a time (dnsnames.Options.Report).
type dnsReporter struct {
	tb     *metadata.TelemetryBuilder
	logger *zap.Logger
	last   dnsnames.Counters
}

func (d *dnsReporter) report(c dnsnames.Counters) {
	ctx := context.Background()
	if c.Detached && !d.last.Detached {
		// Once: found by an independent check, names silently stopped after a `bpftool link
		// detach`. Not attached again: whoever detached it may mean it.
		d.logger.Warn("podnet: the DNS program was detached from its cgroup by something else (bpftool link detach?): " +
			"no DNS name is learnt from now on; restart the collector to attach it again")
	}
	d.tb.PodnetDNSResponses.Add(ctx, int64(c.Responses-d.last.Responses))
	dropped := func(c dnsnames.Counters) uint64 { return c.Lost + c.NoSocket + c.Malformed }
	d.tb.PodnetDNSResponsesDropped.Add(ctx, int64(dropped(c)-dropped(d.last)))
	d.tb.PodnetDNSNamesEvicted.Add(ctx, int64(c.Evicted-d.last.Evicted))
	d.last = c
}

// emitsServerNames says whether anything this instance emits can carry server.address: the
// client's connect and close records, or the connection metrics with the attribute. Otherwise
// the DNS program is not loaded: every packet on the node would pay its run for nothing.
func (r *podnetReceiver) emitsServerNames() bool {
	return r.cfg.keepsClientRecords(r.logs != nil) || (r.metrics != nil && r.cfg.DNSNames.MetricAttribute)
}
