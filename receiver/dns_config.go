package podnetreceiver

import (
	"errors"
	"fmt"
)

// DNSNamesConfig names the servers outside the cluster that pods connect to by the DNS name
// the pod resolved (semconv server.address), observed in the kernel as DNS responses arrive
// (a cgroup_skb program on the root cgroup v2). Encrypted DNS (DoT, DoH) is invisible to it.
type DNSNamesConfig struct {
	// Mode: auto (the default) turns it on where the kernel lets podnet attach the program and
	// otherwise logs once at Start why not; off loads nothing. There is no "on": a node where it
	// cannot run still gets every other record and metric.
	Mode string `mapstructure:"mode"`
	// MaxNames bounds the table of (network namespace, address) → name; when it is full of
	// unexpired names, one is evicted (otelcol_podnet_dns_names_evicted).
	MaxNames int `mapstructure:"max_names"`
	// MetricAttribute adds server.address to the client's connection metrics. Off by default:
	// it splits series by name.
	MetricAttribute bool `mapstructure:"metric_attribute"`
	// MaxMetricNames bounds how many names the metrics carry at once on this node; connections
	// to further names are counted with server.address "_OTHER" (semconv's value for a value
	// outside the known set) until a name is unused for metric_series_idle_expiry.
	MaxMetricNames int `mapstructure:"max_metric_names"`
}

// dns_names.mode values.
const (
	dnsNamesAuto = "auto"
	dnsNamesOff  = "off"
)

const (
	defaultDNSMaxNames       = 65536
	defaultDNSMaxMetricNames = 1000
	// maxDNSNamesLimit: ~250 B of Go memory per entry (its key, two names and map slot), 250 MiB at
	// the limit; more would only hold stale names.
	maxDNSNamesLimit = 1 << 20
	// dnsOtherName is server.address on metrics for names beyond max_metric_names.
	dnsOtherName = "_OTHER"
)

func defaultDNSNamesConfig() DNSNamesConfig {
	return DNSNamesConfig{Mode: dnsNamesAuto, MaxNames: defaultDNSMaxNames, MaxMetricNames: defaultDNSMaxMetricNames}
}

func (c DNSNamesConfig) validate() error {
	var errs []error
	switch c.Mode {
	case dnsNamesAuto:
	case dnsNamesOff:
		// Off ignores every other setting: one set is refused rather than ignored without a
		// word. The config is decoded onto the defaults, so a number is taken as set when it
		// differs from its default; the default written out explicitly changes nothing and
		// is accepted.
		for _, s := range []struct {
			name string
			set  bool
		}{
			{"max_names", c.MaxNames != defaultDNSMaxNames},
			{"metric_attribute", c.MetricAttribute},
			{"max_metric_names", c.MaxMetricNames != defaultDNSMaxMetricNames},
		} {
			if s.set {
				errs = append(errs, fmt.Errorf("dns_names.%s is set but dns_names.mode is off, which ignores it (it only applies with mode auto): set mode to auto, or remove %s", s.name, s.name))
			}
		}
		return errors.Join(errs...)
	default:
		return fmt.Errorf("dns_names.mode: unknown value %q; use auto or off", c.Mode)
	}
	if c.MaxNames < 1 || c.MaxNames > maxDNSNamesLimit {
		errs = append(errs, fmt.Errorf("dns_names.max_names: %d must be between 1 and %d", c.MaxNames, maxDNSNamesLimit))
	}
	switch n := c.MaxMetricNames; {
	case n < 1:
		errs = append(errs, fmt.Errorf("dns_names.max_metric_names: %d must be at least 1 (names on metrics at once, the rest counted as %s; default %d)", n, dnsOtherName, defaultDNSMaxMetricNames))
	case n > maxDNSNamesLimit:
		errs = append(errs, fmt.Errorf("dns_names.max_metric_names: %d must be at most %d; lower it (names beyond it are counted as %s)", n, maxDNSNamesLimit, dnsOtherName))
	case n != defaultDNSMaxMetricNames && !c.MetricAttribute:
		// Compared with the default for the same reason as under mode off.
		errs = append(errs, errors.New("dns_names.max_metric_names is set but dns_names.metric_attribute is false, which leaves names off metrics (it only applies with metric_attribute true): set metric_attribute true, or remove max_metric_names"))
	}
	return errors.Join(errs...)
}
