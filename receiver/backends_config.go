package podnetreceiver

import (
	"errors"
	"fmt"
	"path/filepath"

	"go.uber.org/zap"
)

// ServiceBackendsConfig follows connections to Services to the backend the node's NAT
// (kube-proxy's iptables or nftables DNAT, or any conntrack DNAT) sent them to: the client's
// connect and close records carry podnet.peer.backend.address/port and, with Kubernetes
// attribution, the backend pod beside the Service. It is read in the kernel, by a netfilter BPF
// program in the node's network namespace (Linux 6.4+), which needs CAP_NET_ADMIN there: run
// podnet with hostNetwork and NET_ADMIN (examples/kubernetes/service-backends.patch.yaml), or
// set node_netns and give it SYS_ADMIN to enter the node's namespace from its own.
type ServiceBackendsConfig struct {
	// Mode: auto (the default) turns it on where podnet has what it needs and otherwise logs
	// once at Start why it is off; on fails Start instead; off never loads it.
	Mode string `mapstructure:"mode"`
	// NodeNetns is the node's network namespace, where the translation happens (e.g.
	// /hostfs/proc/2/ns/net, kthreadd's, with hostPID; entering it needs CAP_SYS_ADMIN). Default: podnet's
	// own, which is the node's with hostNetwork; in a pod's own namespace (no hostNetwork) auto
	// stays off and says so, since no translation happens there.
	NodeNetns string `mapstructure:"node_netns"`
	// MetricAttribute splits connection metrics by backend: podnet.peer.backend.address and
	// the backend pod's podnet.peer.k8s.pod.name on the client's series. Off by default: it
	// multiplies a Service's client series by its backends.
	MetricAttribute bool `mapstructure:"metric_attribute"`
	// SocketLB is for clusters where kube-proxy is replaced by socket-level load balancing
	// (Cilium's kubeProxyReplacement): connect()'s destination is changed to the backend before
	// TCP sees it, so no NAT is read, and the Service is named from the address the caller
	// dialled, read inside each connect(). Needs the syscall hooks (logs with
	// process_attributes); off by default: it costs a read of the caller's memory per connect.
	SocketLB bool `mapstructure:"socket_lb"`
}

// service_backends.mode values.
const (
	backendsAuto = "auto"
	backendsOn   = "on"
	backendsOff  = "off"
)

func (c ServiceBackendsConfig) validate(processAttributes bool) error {
	switch c.Mode {
	case backendsAuto, backendsOn:
	case backendsOff:
		// Off ignores every other setting: one set is refused rather than ignored without a
		// word. Each default is the zero value, so any other value was written by the user.
		var errs []error
		for _, s := range []struct {
			name string
			set  bool
		}{{"node_netns", c.NodeNetns != ""}, {"socket_lb", c.SocketLB}, {"metric_attribute", c.MetricAttribute}} {
			if s.set {
				errs = append(errs, fmt.Errorf("service_backends.%s is set but service_backends.mode is off, which ignores it (it only applies with mode auto or on): set mode to auto or on, or remove %s", s.name, s.name))
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	default:
		return fmt.Errorf("service_backends.mode: unknown value %q; use auto, on or off", c.Mode)
	}
	if c.NodeNetns != "" && !filepath.IsAbs(c.NodeNetns) {
		// As proc_root and cgroup_root: relative to the collector's working directory, it would
		// name a different file wherever the collector is started.
		return fmt.Errorf("service_backends.node_netns: %q must be an absolute path (e.g. /hostfs/proc/2/ns/net, kthreadd's: the node's namespace)", c.NodeNetns)
	}
	if c.SocketLB && !processAttributes {
		return errors.New("service_backends.socket_lb reads the dialled address inside connect(), in the hooks that logs.process_attributes attaches; with process_attributes false it would be ignored: turn one of them on, or socket_lb off")
	}
	return nil
}

// socketLBUnused says, once at Start, that socket_lb was asked for but runs nowhere: its hooks
// are attached for a logs pipeline only (metrics alone attach no syscall hook).
func (c ServiceBackendsConfig) socketLBUnused(hasLogs bool, logger *zap.Logger) {
	if c.SocketLB && c.Mode != backendsOff && !hasLogs {
		logger.Warn("podnet: service_backends.socket_lb is set, but no logs pipeline uses this receiver: the dialled Service is read in connect() hooks that only a logs pipeline attaches, so metrics do not name it; add podnet to a logs pipeline, or set socket_lb false")
	}
}

// emitsBackends says whether anything this podnet emits can carry a backend: a client's connect
// and close records, or the connection metrics split by backend (metric_attribute). Otherwise the
// netfilter program is not loaded: every packet through the node's netfilter hooks, and every
// client handshake, would pay its run for nothing (found by an independent check: a metrics-only
// podnet at the defaults had it attached, as dns_names, in the same case, did not).
func (cfg *Config) emitsBackends(hasLogs, hasMetrics bool) bool {
	return cfg.keepsClientRecords(hasLogs) || (hasMetrics && cfg.ServiceBackends.MetricAttribute)
}

// keepsClientRecords says whether a logs pipeline gets the records that name a client's peer
// beyond its address (a backend, a DNS name): connect and close records.
func (cfg *Config) keepsClientRecords(hasLogs bool) bool {
	return hasLogs && (cfg.Events.PodnetTCPConnect.Enabled || cfg.Events.PodnetTCPClose.Enabled)
}

// ownNetns is podnet's own network namespace, where translations are read unless node_netns
// says otherwise.
const ownNetns = "/proc/self/ns/net"

// nodeNetns is the namespace to read translations in, "" when off.
func (c ServiceBackendsConfig) nodeNetns() string {
	switch {
	case c.Mode == backendsOff:
		return ""
	case c.NodeNetns != "":
		return c.NodeNetns
	}
	return ownNetns
}

// started says, once at Start, whether Service backends are read: mode on fails Start when
// they cannot be, auto logs why not and goes on without.
func (c ServiceBackendsConfig) started(netns string, err error, logger *zap.Logger) error {
	switch {
	case c.Mode == backendsOff:
		return nil
	case err == nil:
		logger.Info("podnet: connections to Services are followed to their backends", zap.String("node_netns", netns))
		return nil
	case c.Mode == backendsOn:
		return fmt.Errorf("service_backends.mode is on: %w; %s, or set service_backends.mode to auto (on where it can be) or off", err, backendsHowTo)
	}
	logger.Info("podnet: service_backends is off (records name a Service but not the backend pod it reached); "+
		"to turn it on, "+backendsHowTo+", or set service_backends.mode: off to silence this", zap.Error(err))
	return nil
}

// backendsHowTo is what Service backends need, where they cannot be read.
const backendsHowTo = "run podnet with hostNetwork and CAP_NET_ADMIN (examples/kubernetes/service-backends.patch.yaml, " +
	"examples/helm/values-service-backends.yaml) on Linux 6.4+"
