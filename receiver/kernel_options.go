//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"net/netip"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// The configuration as the kernel side takes it: only where podnet's BPF programs are built.

// kernelOptions: events are sent to the ring when a logs pipeline uses this receiver, or when
// metrics are counted from them.
func (cfg *Config) kernelOptions(aggregate, hasLogs, hasMetrics bool) kernel.Options {
	opts := kernel.Options{
		Hooks:                 cfg.Hooks,
		RingBufferSize:        uint32(cfg.RingBufferSize),
		PerCPURings:           cfg.RingBuffers == ringBuffersPerCPU,
		MaxTrackedConnections: uint32(cfg.MaxTrackedConnections),
		AggregateInKernel:     aggregate,
		Events:                hasLogs,
		MaxAggregates:         uint32(cfg.MaxMetricSeries),
		NoProcessContext:      !cfg.Logs.ProcessAttributes,
		SampleOneIn:           cfg.sampleOneIn(hasLogs),
		NoLiveReads:           !hasMetrics, // only metrics read open connections
		NoListenerScan:        !hasMetrics || !cfg.Metrics.PodnetTCPListenOverflows.Enabled,
		UnmarkedReads:         cfg.LiveReads == liveReadsWalk,
		BackendInMetrics:      cfg.ServiceBackends.MetricAttribute,
		KeyDrops:              cfg.kernelKeyDrops(),
		SocketLB:              cfg.ServiceBackends.SocketLB && cfg.ServiceBackends.Mode != backendsOff,
	}
	if cfg.emitsBackends(hasLogs, hasMetrics) {
		opts.NATNetns = cfg.ServiceBackends.nodeNetns()
	}
	if aggregate || !hasMetrics { // only logs read the ring: it takes the event types they keep
		for typ, on := range map[bpf.PodnetEventType]bool{
			bpf.PodnetEventTypeEVENT_CONNECT: cfg.Events.PodnetTCPConnect.Enabled,
			bpf.PodnetEventTypeEVENT_ACCEPT:  cfg.Events.PodnetTCPAccept.Enabled,
			bpf.PodnetEventTypeEVENT_CLOSE:   cfg.Events.PodnetTCPClose.Enabled,
		} {
			if on {
				opts.RingTypes |= 1 << typ
			}
		}
		if opts.RingTypes == 0 {
			opts.RingTypes = 1 << bpf.PodnetEventTypeEVENT_FOUND // none: 0 would mean all
		}
	}
	for _, p := range cfg.Exclude.ServerPorts {
		opts.ExcludePorts = append(opts.ExcludePorts, uint16(p))
	}
	for _, s := range cfg.Exclude.PeerCIDRs {
		if p, err := netip.ParsePrefix(s); err == nil { // validated already
			opts.ExcludePeers = append(opts.ExcludePeers, p)
		}
	}
	return opts
}

// kernelKeyDrops are the in-kernel aggregation key fields the series drop (kernel.Options
// KeyDrops), so that the kernel's table of max_metric_series keys holds the series the metrics
// emit: a field is dropped there only when nothing drained from a key reads it - the peer
// address names the peer pod, its Service and server.address (a client's: the role too), the
// peer address needs its family, and the service graph reads the peer, the error and the role.
// A field kept in the keys but not in the series would fold connections into the overflow series
// below max_metric_series (found by an independent check: role and family kept, a dual-stack
// pod's IPv6 connections folded at half the bound).
func (cfg *Config) kernelKeyDrops() uint8 {
	a, _ := seriesAttributesOf(cfg.Metrics) // Validate refused the settings that disagree
	graph := cfg.serviceGraphOn()
	var drops bpf.PodnetAggKeyDrop
	if !a.peer && !a.peerNamespace && !a.peerPod && !a.peerService && !a.serverAddress && !graph {
		drops |= bpf.PodnetAggKeyDropAGG_KEY_DROP_PEER
	}
	if !a.port {
		drops |= bpf.PodnetAggKeyDropAGG_KEY_DROP_PORT
	}
	if !a.errType && !graph {
		drops |= bpf.PodnetAggKeyDropAGG_KEY_DROP_ERROR
	}
	if !a.role && !a.serverAddress && !graph {
		drops |= bpf.PodnetAggKeyDropAGG_KEY_DROP_ROLE
	}
	if !a.netType && drops&bpf.PodnetAggKeyDropAGG_KEY_DROP_PEER != 0 {
		drops |= bpf.PodnetAggKeyDropAGG_KEY_DROP_FAMILY
	}
	return uint8(drops)
}
