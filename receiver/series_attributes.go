package podnetreceiver

import (
	"fmt"
	"slices"
	"strings"

	"github.com/podnet/podnet/internal/metadata"
)

// seriesAttrs says which of a connection series' attributes the metrics keep
// (`metrics.<name>.attributes`). The connection metrics share one series per key, so an
// attribute is dropped from the key itself: series that differ only in it are one series,
// counted together from one start. Dropping it only at emission would leave several data
// points with the same attributes and different start times, which the metrics builder does
// not merge and Prometheus keeps one of (an independent check: 3 + 5 connections read as 5).
type seriesAttrs struct {
	role, netType, peer, port, errType           bool
	peerNamespace, peerPod, peerService, backend bool
	serverAddress                                bool
}

// keepEvery keeps every attribute: the default.
var keepEvery = seriesAttrs{true, true, true, true, true, true, true, true, true, true}

// seriesAttributeNames are the attributes that make a series' key, as the metrics name them.
var seriesAttributeNames = []string{
	"podnet.connection.role", "network.type", "network.peer.address", "server.port", "error.type",
	"podnet.peer.k8s.namespace.name", "podnet.peer.k8s.pod.name", "podnet.peer.k8s.service.name",
	"podnet.peer.backend.address", "server.address",
}

// metricAttributes is one connection metric's attribute settings.
type metricAttributes struct {
	name     string
	enabled  bool
	kept     []string // metrics.<name>.attributes
	declared []string // every attribute the metric has (its default list)
	// drop takes the named attributes out of the metric's list in the config it was made of.
	drop func(dropped []string)
}

func attributeNames[T ~string](keys []T) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(k)
	}
	return out
}

// attributesOf is one metric's entry: each metric's attribute keys are a type of their own.
func attributesOf[K ~string](name string, enabled bool, list *[]K, declared []K) metricAttributes {
	return metricAttributes{name, enabled, attributeNames(*list), attributeNames(declared), func(d []string) {
		*list = keepOnly(*list, d)
	}}
}

// connectionMetricAttributes lists the metrics that share the connection series (not
// podnet.tcp.listen.overflows nor the service graph, which have series of their own), the one
// list of them.
func connectionMetricAttributes(mc *metadata.MetricsConfig) []metricAttributes {
	def := metadata.DefaultMetricsConfig()
	return []metricAttributes{
		attributesOf("podnet.tcp.connections", mc.PodnetTCPConnections.Enabled, &mc.PodnetTCPConnections.EnabledAttributes, def.PodnetTCPConnections.EnabledAttributes),
		attributesOf("podnet.tcp.connections.active", mc.PodnetTCPConnectionsActive.Enabled, &mc.PodnetTCPConnectionsActive.EnabledAttributes, def.PodnetTCPConnectionsActive.EnabledAttributes),
		attributesOf("podnet.tcp.connections.closed", mc.PodnetTCPConnectionsClosed.Enabled, &mc.PodnetTCPConnectionsClosed.EnabledAttributes, def.PodnetTCPConnectionsClosed.EnabledAttributes),
		attributesOf("podnet.tcp.connection.duration", mc.PodnetTCPConnectionDuration.Enabled, &mc.PodnetTCPConnectionDuration.EnabledAttributes, def.PodnetTCPConnectionDuration.EnabledAttributes),
		attributesOf("podnet.tcp.bytes_sent", mc.PodnetTCPBytesSent.Enabled, &mc.PodnetTCPBytesSent.EnabledAttributes, def.PodnetTCPBytesSent.EnabledAttributes),
		attributesOf("podnet.tcp.bytes_received", mc.PodnetTCPBytesReceived.Enabled, &mc.PodnetTCPBytesReceived.EnabledAttributes, def.PodnetTCPBytesReceived.EnabledAttributes),
		attributesOf("podnet.tcp.retransmits", mc.PodnetTCPRetransmits.Enabled, &mc.PodnetTCPRetransmits.EnabledAttributes, def.PodnetTCPRetransmits.EnabledAttributes),
		attributesOf("podnet.tcp.syn_retransmits", mc.PodnetTCPSynRetransmits.Enabled, &mc.PodnetTCPSynRetransmits.EnabledAttributes, def.PodnetTCPSynRetransmits.EnabledAttributes),
	}
}

// seriesAttributesOf is what the connection series keep. Metrics whose attributes are set
// (fewer than they have) decide: an attribute one of them drops is dropped from the series, so
// from every connection metric, those left at their default included (the receiver logs
// which at Start); one that another of them keeps is an error, since one series cannot both
// keep and drop it (the error says which).
func seriesAttributesOf(mc metadata.MetricsConfig) (seriesAttrs, error) {
	keep := map[string]bool{}
	var disagree []string
	metrics := connectionMetricAttributes(&mc)
	for _, attr := range seriesAttributeNames {
		var keptBy, droppedBy []string
		for _, m := range metrics {
			if !m.enabled || !slices.Contains(m.declared, attr) || allListed(m.kept, m.declared) {
				continue // off, not its attribute, or left at its default: it follows
			}
			if slices.Contains(m.kept, attr) {
				keptBy = append(keptBy, m.name)
			} else {
				droppedBy = append(droppedBy, m.name)
			}
		}
		keep[attr] = len(droppedBy) == 0
		if len(keptBy) > 0 && len(droppedBy) > 0 {
			disagree = append(disagree, fmt.Sprintf("%s (kept by %s, dropped by %s)", attr,
				strings.Join(keptBy, ", "), strings.Join(droppedBy, ", ")))
		}
	}
	a := seriesAttrs{
		role: keep["podnet.connection.role"], netType: keep["network.type"], peer: keep["network.peer.address"],
		port: keep["server.port"], errType: keep["error.type"],
		peerNamespace: keep["podnet.peer.k8s.namespace.name"], peerPod: keep["podnet.peer.k8s.pod.name"],
		peerService: keep["podnet.peer.k8s.service.name"], backend: keep["podnet.peer.backend.address"],
		serverAddress: keep["server.address"],
	}
	if len(disagree) > 0 {
		return a, fmt.Errorf("metrics.<name>.attributes: the connection metrics share their series, so the ones whose "+
			"attributes are listed must drop the same series attributes (those left unlisted follow); these differ: %s. "+
			"Drop each from all of them, or from none", strings.Join(disagree, "; "))
	}
	return a, nil
}

// dropped names the series attributes a drops, for the Start log.
func (a seriesAttrs) dropped() []string {
	var out []string
	for i, kept := range []bool{
		a.role, a.netType, a.peer, a.port, a.errType, a.peerNamespace, a.peerPod,
		a.peerService, a.backend, a.serverAddress,
	} {
		if !kept {
			out = append(out, seriesAttributeNames[i])
		}
	}
	return out
}

// withoutDropped is mc with the attributes the series drop taken out of every connection
// metric's list, the unlisted ones included: the metrics builder writes each listed
// attribute from the key, where a dropped one is a zero value ("invalid IP", "ipv4").
func (a seriesAttrs) withoutDropped(mc metadata.MetricsConfig) metadata.MetricsConfig {
	d := a.dropped()
	if len(d) == 0 {
		return mc
	}
	for _, m := range connectionMetricAttributes(&mc) {
		m.drop(d)
	}
	return mc
}

// keepOnly is keys without the dropped ones, in a new slice (the config's stays as it was).
func keepOnly[K ~string](keys []K, dropped []string) []K {
	out := make([]K, 0, len(keys))
	for _, k := range keys {
		if !slices.Contains(dropped, string(k)) {
			out = append(out, k)
		}
	}
	return out
}

// serviceGraphOn says whether the service graph's metrics are on (service_graph.go).
func (cfg *Config) serviceGraphOn() bool {
	return cfg.Metrics.TracesServiceGraphRequestTotal.Enabled || cfg.Metrics.TracesServiceGraphRequestFailedTotal.Enabled
}

// allListed says whether kept names every declared attribute (the metric's default), whatever
// it repeats.
func allListed(kept, declared []string) bool {
	for _, d := range declared {
		if !slices.Contains(kept, d) {
			return false
		}
	}
	return true
}

// splitByDropped refuses a metric_attribute that splits the series by an attribute they drop:
// the series would not say it, while the kernel's keys still split by it, so max_metric_series
// would fold connections into the overflow series below the bound on the series emitted (found
// by an independent check: 5 of 10 connections in the overflow series at max_metric_series 2,
// two series emitted).
func (cfg *Config) splitByDropped(keep seriesAttrs) []error {
	var errs []error
	for _, s := range []struct {
		setting, attribute string
		on, kept           bool
	}{
		{"service_backends.metric_attribute", "podnet.peer.backend.address", cfg.ServiceBackends.MetricAttribute, keep.backend},
		{"dns_names.metric_attribute", "server.address", cfg.DNSNames.MetricAttribute, keep.serverAddress},
	} {
		if s.on && !s.kept {
			errs = append(errs, fmt.Errorf("%s is true, but the connection metrics drop %s (metrics.<name>.attributes): their series could not say it; keep %s in the attributes, or set %s false", s.setting, s.attribute, s.attribute, s.setting))
		}
	}
	return errs
}
