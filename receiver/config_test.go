package podnetreceiver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/filter"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("..", "testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub("podnet")
	require.NoError(t, err)
	cfg := NewDefaultConfig()
	require.NoError(t, sub.Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))

	assert.Equal(t, kernel.HooksTracepoint, cfg.Hooks)
	assert.Equal(t, 16<<20, cfg.RingBufferSize)
	assert.Equal(t, "per_cpu", cfg.RingBuffers)
	assert.Equal(t, "walk", cfg.LiveReads)
	assert.Equal(t, 131072, cfg.MaxTrackedConnections)
	assert.Equal(t, 50*time.Millisecond, cfg.PollInterval)
	assert.Equal(t, 20*time.Second, cfg.ShutdownTimeout)
	assert.Equal(t, "events", cfg.MetricsAggregation)
	assert.Equal(t, 30*time.Second, cfg.MetricsInterval)
	assert.Equal(t, 5000, cfg.MaxMetricSeries)
	assert.Equal(t, time.Hour, cfg.MetricSeriesIdleExpiry)
	assert.Equal(t, "node-a", cfg.NodeName)
	assert.Equal(t, k8smeta.APIConfig{AuthType: k8smeta.AuthTypeServiceAccount, PeerPods: k8smeta.PeerPodsEndpoints}, cfg.Kubernetes)
	assert.Equal(t, ExcludeConfig{ServerPorts: []int{10250}, PeerCIDRs: []string{"127.0.0.0/8", "::1/128"}}, cfg.Exclude)
	assert.False(t, cfg.Events.PodnetTCPAccept.Enabled)
	assert.True(t, cfg.Events.PodnetTCPConnect.Enabled)
	assert.Equal(t, []metadata.PodnetTCPConnectionsMetricAttributeKey{"podnet.connection.role", "server.port", "error.type", "server.address"},
		cfg.Metrics.PodnetTCPConnections.EnabledAttributes)
	assert.False(t, cfg.ResourceAttributes.PodnetCgroupID.Enabled)
	assert.Equal(t, DNSNamesConfig{Mode: dnsNamesAuto, MaxNames: 4096, MetricAttribute: true, MaxMetricNames: 50}, cfg.DNSNames)
}

func TestValidateNamesTheFieldAndTheFix(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"unknown hook mode", func(c *Config) { c.Hooks = "kprobe2" }, `hooks: unknown mode "kprobe2"`},
		{"ring not power of two", func(c *Config) { c.RingBufferSize = 3 << 20 }, "ring_buffer_size: 3145728 is not a power of two"},
		{"ring below a page", func(c *Config) { c.RingBufferSize = 1024 }, "ring_buffer_size: 1024"},
		{"ring_buffers unknown", func(c *Config) { c.RingBuffers = "percpu" }, `ring_buffers: unknown value "percpu"; use "shared"`},
		{"live_reads unknown", func(c *Config) { c.LiveReads = "marked" }, `live_reads: unknown value "marked"; use "auto"`},
		{"ring negative", func(c *Config) { c.RingBufferSize = -1 }, "ring_buffer_size: -1"},
		{"no connection table", func(c *Config) { c.MaxTrackedConnections = 0 }, "max_tracked_connections: 0 must be between"},
		{"negative poll", func(c *Config) { c.PollInterval = -time.Second }, "poll_interval: -1s must be between 1ms and 1m"},
		{"no shutdown time", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown_timeout: 0s must be between 1ms and 5m"},
		{"unknown aggregation", func(c *Config) { c.MetricsAggregation = "bpf" }, `metrics_aggregation: unknown value "bpf"`},
		{"metrics too often", func(c *Config) { c.MetricsInterval = time.Millisecond }, "metrics_interval: 1ms must be between 1s and 1h"},
		{"metrics too rarely", func(c *Config) { c.MetricsInterval = 100000 * time.Hour }, "metrics_interval: 100000h0m0s must be between 1s and 1h"},
		{"metrics interval without a unit", func(c *Config) { c.MetricsInterval = 10 }, "metrics_interval: 10ns must be between 1s and 1h (a number without a unit is nanoseconds: write it with one, e.g. 10s)"},
		{"empty hook mode", func(c *Config) { c.Hooks = "" }, `hooks: unknown mode ""`},
		{"relative proc root", func(c *Config) { c.ProcRoot = "proc" }, `proc_root: "proc" must be an absolute path`},
		{"relative cgroup root", func(c *Config) { c.CgroupRoot = "sys/fs/cgroup" }, `cgroup_root: "sys/fs/cgroup" must be an absolute path`},
		{"IPv4-mapped range with IPv6 bits", func(c *Config) { c.Exclude.PeerCIDRs = []string{"::ffff:10.0.0.0/8"} }, `exclude.peer_cidrs[0]: "::ffff:10.0.0.0/8" is an IPv4-mapped address whose /8 counts IPv6 bits (the range ::/8, not IPv4 addresses): write 10.0.0.0/8 for the IPv4 range, or ::ffff:10.0.0.0/104 in its mapped form`},
		{"IPv4-mapped range with more IPv6 bits than IPv4 has", func(c *Config) { c.Exclude.PeerCIDRs = []string{"::ffff:10.0.0.0/90"} }, `exclude.peer_cidrs[0]: "::ffff:10.0.0.0/90" is an IPv4-mapped address whose /90 counts IPv6 bits (the range ::ffc0:0:0/90, not IPv4 addresses): write the IPv4 range as 10.0.0.0/N, or ::ffff:10.0.0.0/(96+N) in its mapped form`},
		{"peer range with host bits", func(c *Config) { c.Exclude.PeerCIDRs = []string{"10.1.2.3/8"} }, `exclude.peer_cidrs[0]: "10.1.2.3/8" has address bits beyond its /8: write 10.0.0.0/8 for the range, or 10.1.2.3/32 for the one address`},
		{"relative node netns", func(c *Config) { c.ServiceBackends.NodeNetns = "proc/1/ns/net" }, `service_backends.node_netns: "proc/1/ns/net" must be an absolute path`},
		{"no series", func(c *Config) { c.MaxMetricSeries = 0 }, "max_metric_series: 0 must be at least 1"},
		{"negative series", func(c *Config) { c.MaxMetricSeries = -1 }, "max_metric_series: -1 must be at least 1"},
		{"more series than the kernel map holds", func(c *Config) { c.MaxMetricSeries = 1<<20 + 1 }, "max_metric_series: 1048577 must be at most 1048576"},
		{"kubernetes without node", func(c *Config) { c.Kubernetes.AuthType = "serviceAccount"; c.NodeName = "" }, "node_name: must be set when kubernetes.auth_type is not none"},
		{"no proc root", func(c *Config) { c.ProcRoot = "" }, `proc_root: "" must be an absolute path`},
		{"unknown peer_pods", func(c *Config) { c.Kubernetes.PeerPods = "services" }, `peer_pods "services": want "all"`},
		{"attribution refresh", func(c *Config) { c.AttributionRefresh = time.Millisecond }, "attribution_refresh_interval: 1ms must be at least 1s"},
		{"excluded port out of range", func(c *Config) { c.Exclude.ServerPorts = []int{80, 70000} }, "exclude.server_ports[1]: 70000 is not a port (1-65535)"},
		{"excluded CIDR malformed", func(c *Config) { c.Exclude.PeerCIDRs = []string{"10.0.0.0/8", "10.0.0.1"} }, `exclude.peer_cidrs[1]: "10.0.0.1" is not a CIDR`},
		{"expiry below interval", func(c *Config) { c.MetricSeriesIdleExpiry = time.Second }, "metric_series_idle_expiry: 1s must be at least metrics_interval (10s): raise it, or lower metrics_interval"},
		{"unknown dns_names mode", func(c *Config) { c.DNSNames.Mode = "on" }, `dns_names.mode: unknown value "on"; use auto or off`},
		{"no DNS names", func(c *Config) { c.DNSNames.MaxNames = 0 }, "dns_names.max_names: 0 must be between 1 and 1048576"},
		{"no metric names", func(c *Config) { c.DNSNames.MaxMetricNames = 0 }, "dns_names.max_metric_names: 0 must be at least 1"},
		{"too many metric names", func(c *Config) { c.DNSNames.MaxMetricNames = 1<<20 + 1 }, "dns_names.max_metric_names: 1048577 must be at most 1048576"},
		// Settings that would be ignored without a word (found by an independent check).
		{"dns metric attribute with dns_names off", func(c *Config) { c.DNSNames.Mode, c.DNSNames.MetricAttribute = "off", true }, "dns_names.metric_attribute is set but dns_names.mode is off"},
		{"socket_lb with service_backends off", func(c *Config) { c.ServiceBackends.Mode, c.ServiceBackends.SocketLB = "off", true }, "service_backends.socket_lb is set but service_backends.mode is off"},
		{"backend metric attribute with service_backends off", func(c *Config) { c.ServiceBackends.Mode, c.ServiceBackends.MetricAttribute = "off", true }, "service_backends.metric_attribute is set but service_backends.mode is off"},
		{"node_netns with service_backends off", func(c *Config) { c.ServiceBackends.Mode, c.ServiceBackends.NodeNetns = "off", "/run/netns/node" }, "service_backends.node_netns is set but service_backends.mode is off"},
		{"max_names with dns_names off", func(c *Config) { c.DNSNames.Mode, c.DNSNames.MaxNames = "off", 5 }, "dns_names.max_names is set but dns_names.mode is off"},
		{"max_metric_names with dns_names off", func(c *Config) { c.DNSNames.Mode, c.DNSNames.MaxMetricNames = "off", 5 }, "dns_names.max_metric_names is set but dns_names.mode is off"},
		{"max_metric_names without metric_attribute", func(c *Config) { c.DNSNames.MaxMetricNames = 5 }, "dns_names.max_metric_names is set but dns_names.metric_attribute is false"},
		{"socket_lb without process attributes", func(c *Config) { c.ServiceBackends.SocketLB, c.Logs.ProcessAttributes = true, false }, "with process_attributes false it would be ignored"},
		// mdatagen's settings podnet does not honour (found by an independent check).
		{"aggregation strategy other than sum", func(c *Config) {
			c.Metrics.PodnetTCPConnectionsClosed.AggregationStrategy = metadata.AggregationStrategyMax
		}, `metrics.podnet.tcp.connections.closed.aggregation_strategy: "max" is not supported`},
		{"resource attribute filter of metrics", func(c *Config) {
			c.ResourceAttributes.HostName.MetricsExclude = []filter.Config{{Regex: ".*"}}
		}, "resource_attributes.host.name.metrics_exclude: filtering by resource attribute values is not supported by podnet; use the filter processor"},
		{"resource attribute filter of events", func(c *Config) {
			c.ResourceAttributes.K8sPodName.EventsInclude = []filter.Config{{Strict: "web-0"}}
		}, "resource_attributes.k8s.pod.name.events_include: filtering"},
		// A metric attribute the series drop (found by an independent check: kernel keys split
		// by the backend, the series did not say it, max_metric_series folded connections early).
		{"backend metric attribute dropped from the series", func(c *Config) {
			c.ServiceBackends.MetricAttribute = true
			c.Metrics.PodnetTCPConnections.EnabledAttributes = slices.DeleteFunc(slices.Clone(c.Metrics.PodnetTCPConnections.EnabledAttributes),
				func(k metadata.PodnetTCPConnectionsMetricAttributeKey) bool {
					return k == "podnet.peer.backend.address"
				})
		}, "service_backends.metric_attribute is true, but the connection metrics drop podnet.peer.backend.address"},
		{"dns metric attribute dropped from the series", func(c *Config) {
			c.DNSNames.MetricAttribute = true
			c.Metrics.PodnetTCPConnections.EnabledAttributes = slices.DeleteFunc(slices.Clone(c.Metrics.PodnetTCPConnections.EnabledAttributes),
				func(k metadata.PodnetTCPConnectionsMetricAttributeKey) bool { return k == "server.address" })
		}, "dns_names.metric_attribute is true, but the connection metrics drop server.address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewDefaultConfig()
			tc.mutate(cfg)
			// As the collector does it: the config and its nested sections.
			assert.ErrorContains(t, confmap.Validate(cfg), tc.want)
		})
	}
	assert.NoError(t, confmap.Validate(NewDefaultConfig()))
	bogus := NewDefaultConfig()
	bogus.Kubernetes.AuthType = "bogus"
	err := confmap.Validate(bogus)
	assert.ErrorContains(t, err, "auth_type")
	assert.NotContains(t, fmt.Sprint(err), "node_name", "an unknown auth_type is told its own error alone")
	largest := NewDefaultConfig()
	largest.MaxMetricSeries = maxMetricSeriesLimit
	assert.NoError(t, confmap.Validate(largest), "the bound itself is valid")
}

// A value below a bound is told the bound, not to lower it (found by an independent check).
func TestTooSmallIsNotToldToLower(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"max_metric_series 0":          func(c *Config) { c.MaxMetricSeries = 0 },
		"max_metric_series -1":         func(c *Config) { c.MaxMetricSeries = -1 },
		"dns_names.max_metric_names 0": func(c *Config) { c.DNSNames.MetricAttribute, c.DNSNames.MaxMetricNames = true, 0 },
	} {
		cfg := NewDefaultConfig()
		mutate(cfg)
		err := confmap.Validate(cfg)
		require.Error(t, err, name)
		assert.NotContains(t, err.Error(), "lower it", name)
	}
}

// A setting of a feature that is off would be ignored without a word: it is refused, as the
// user writes it (decoded onto the defaults, as the collector does). The defaults themselves,
// and a default written out explicitly, are accepted: decoding cannot tell them apart.
func TestSettingsOfAFeatureOffAreRefused(t *testing.T) {
	for _, tc := range []struct {
		raw  map[string]any
		want string // "" when accepted
	}{
		{map[string]any{"service_backends": map[string]any{"mode": "off", "node_netns": "/hostfs/proc/1/ns/net"}}, "service_backends.node_netns is set but service_backends.mode is off"},
		{map[string]any{"dns_names": map[string]any{"mode": "off", "max_names": 5}}, "dns_names.max_names is set but dns_names.mode is off"},
		{map[string]any{"dns_names": map[string]any{"mode": "off", "max_metric_names": 5}}, "dns_names.max_metric_names is set but dns_names.mode is off"},
		{map[string]any{"dns_names": map[string]any{"max_metric_names": 5}}, "dns_names.max_metric_names is set but dns_names.metric_attribute is false"},
		{map[string]any{"dns_names": map[string]any{"max_metric_names": 5, "metric_attribute": true}}, ""},
		{map[string]any{"dns_names": map[string]any{"mode": "off"}}, ""},
		{map[string]any{"service_backends": map[string]any{"mode": "off"}}, ""},
		{map[string]any{"dns_names": map[string]any{"mode": "off", "max_names": defaultDNSMaxNames, "max_metric_names": defaultDNSMaxMetricNames}}, ""},
	} {
		cfg := NewDefaultConfig()
		require.NoError(t, confmap.NewFromStringMap(tc.raw).Unmarshal(cfg))
		if tc.want == "" {
			assert.NoError(t, confmap.Validate(cfg), "%v", tc.raw)
			continue
		}
		err := confmap.Validate(cfg)
		assert.ErrorContains(t, err, tc.want, "%v", tc.raw)
		assert.ErrorContains(t, err, "only applies", "%v: says when it would apply", tc.raw)
	}
}

// Metrics never depend on logs (issue 13): they are counted in the kernel whenever a metrics
// pipeline uses the receiver, unless `events` is chosen; events reach the ring only when logs
// need them or metrics are counted from them.
func TestMetricsAggregationFollowsThePipelines(t *testing.T) {
	cfg := NewDefaultConfig()
	for _, tc := range []struct {
		mode           string
		logs, metrics  bool
		kernel, events bool
	}{
		{aggregationAuto, false, true, true, false},
		{aggregationAuto, true, true, true, true},
		{aggregationAuto, true, false, false, true},
		{aggregationEvents, false, true, false, true},
		{aggregationEvents, true, true, false, true},
		{aggregationKernel, false, true, true, false},
		{aggregationKernel, true, true, true, true},
	} {
		cfg.MetricsAggregation = tc.mode
		aggregate := cfg.aggregateInKernel(tc.metrics)
		assert.Equalf(t, tc.kernel, aggregate, "%+v: counted in the kernel", tc)
		opts := cfg.kernelOptions(aggregate, tc.logs, tc.metrics)
		assert.Equalf(t, tc.events, !opts.AggregateInKernel || opts.Events, "%+v: events sent", tc)
		assert.Equalf(t, !tc.metrics, opts.NoLiveReads, "%+v: open connections read only for metrics", tc)
		assert.Equalf(t, !tc.metrics, opts.NoListenerScan, "%+v: listeners kept only for metrics", tc)
	}
}

// Listeners are kept in the kernel only for the listener scan of podnet.tcp.listen.overflows:
// nothing else empties that map (found by an independent review: a logs-only podnet filled it).
func TestListenersAreKeptOnlyForListenOverflows(t *testing.T) {
	cfg := NewDefaultConfig()
	assert.False(t, cfg.kernelOptions(true, true, true).NoListenerScan, "the metric is on by default")
	cfg.Metrics.PodnetTCPListenOverflows.Enabled = false
	assert.True(t, cfg.kernelOptions(true, true, true).NoListenerScan, "the metric is off")
	assert.True(t, cfg.kernelOptions(false, false, true).NoListenerScan, "the metric is off, events mode")
}

func TestUnknownKeysAreRejected(t *testing.T) {
	for name, raw := range map[string]map[string]any{
		"event name":  {"events": map[string]any{"podnet.tcp.reset": map[string]any{"enabled": true}}},
		"metric name": {"metrics": map[string]any{"podnet.tcp.resets": map[string]any{"enabled": true}}},
		"setting":     {"ring_size": 4096},
	} {
		t.Run(name, func(t *testing.T) {
			err := confmap.NewFromStringMap(raw).Unmarshal(NewDefaultConfig())
			assert.ErrorContains(t, err, "invalid keys")
		})
	}
	cfg := NewDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{"metrics": map[string]any{"podnet.tcp.connections": map[string]any{"attributes": []any{"pod"}}}}).Unmarshal(cfg))
	assert.ErrorContains(t, confmap.Validate(cfg), "doesn't have an attribute pod", "an unknown metric attribute is named")
}

// An integer setting is taken as written or refused: the decoder would truncate a fraction and
// wrap a number beyond 64 bits (which YAML reads as a float) into one the user never wrote
// (found by an independent check).
func TestIntegerSettingsAreNotChangedByDecoding(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string // "" when accepted
	}{
		{"ring_buffer_size: 99999999999999999999", "ring_buffer_size: 1e+20 is too large"},
		{"ring_buffer_size: 18446744073709551615", "ring_buffer_size: 18446744073709551615 is too large"},
		{"ring_buffer_size: -99999999999999999999", "ring_buffer_size: -1e+20 is too small"},
		{"ring_buffer_size: 4096.5", "ring_buffer_size: 4096.5 is not a whole number"},
		{"exclude: {server_ports: [80, 443.5]}", "exclude.server_ports[1]: 443.5 is not a whole number"},
		{"dns_names: {max_names: 1.5}", "dns_names.max_names: 1.5 is not a whole number"},
		{"logs: {sampling: {one_in: 2.5}}", "logs.sampling.one_in: 2.5 is not a whole number"},
		{"ring_buffer_size: 8MiB", `ring_buffer_size: "8MiB" is text; write 8388608 (an integer, without quotes or unit)`},
		{"ring_buffer_size: 64 Ki", `write 65536 (`},
		{"ring_buffer_size: '16777216'", `ring_buffer_size: "16777216" is text; write 16777216 (`},
		{"dns_names: {max_names: lots}", `dns_names.max_names: "lots" is text; write an integer, without quotes or unit`},
		{"ring_buffer_size: 99999999999GiB", `ring_buffer_size: "99999999999GiB" is text; write an integer`},
		{"exclude: {server_ports: [http]}", `exclude.server_ports[0]: "http" is text; write an integer`},
		// A duration as a number is nanoseconds: not a whole one is refused, not truncated
		// (found by an independent check: 2.5 became 2ns, told "e.g. 2s").
		{"shutdown_timeout: 2.5", "shutdown_timeout: 2.5 is a number without a unit, which reads as nanoseconds and is not a whole one; write the duration with its unit, e.g. 2.5s"},
		{"poll_interval: 1500000.9", "poll_interval: 1.5000009e+06 is a number without a unit"},
		{"shutdown_timeout: 2.5s", ""},
		{"ring_buffer_size: 16777216", ""},
		{"ring_buffer_size: 1.6777216e+07", ""}, // a whole number, however written
	} {
		err := decodeAndValidate(t, tc.yaml)
		if tc.want == "" {
			assert.NoError(t, err, tc.yaml)
			continue
		}
		assert.ErrorContains(t, err, tc.want, tc.yaml)
		assert.NotContains(t, fmt.Sprint(err), "9223372036854775808", "%s: no wrapped value", tc.yaml)
	}
}

// decodeAndValidate loads yaml as the collector loads a receiver's section: decoded into the
// defaults, then validated (when it decodes).
func decodeAndValidate(t *testing.T, yaml string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml+"\n"), 0o600))
	cm, err := confmaptest.LoadConf(path)
	require.NoError(t, err)
	cfg := NewDefaultConfig()
	if err := cm.Unmarshal(cfg); err != nil {
		return err
	}
	return confmap.Validate(cfg)
}

// The ring takes only the event types logs keep when metrics are counted in the kernel; every
// type when metrics are counted from the events.
func TestRingTypesFollowTheKeptEvents(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Events.PodnetTCPAccept.Enabled = false
	opts := cfg.kernelOptions(true, true, true)
	assert.Equal(t, uint32(1<<bpf.PodnetEventTypeEVENT_CONNECT|1<<bpf.PodnetEventTypeEVENT_CLOSE), opts.RingTypes)
	assert.Zero(t, cfg.kernelOptions(false, true, true).RingTypes, "metrics from events need them all")
	assert.Equal(t, uint32(1<<bpf.PodnetEventTypeEVENT_CONNECT|1<<bpf.PodnetEventTypeEVENT_CLOSE), cfg.kernelOptions(false, true, false).RingTypes,
		"logs alone: the ring takes what they keep (found by an independent check: every type, with every log event disabled)")
	assert.True(t, opts.RingCarries(bpf.PodnetEventTypeEVENT_CLOSE))
	assert.False(t, opts.RingCarries(bpf.PodnetEventTypeEVENT_ACCEPT))
	assert.True(t, cfg.kernelOptions(false, true, true).RingCarries(bpf.PodnetEventTypeEVENT_ACCEPT), "0: every type")
}

// A logs pipeline with every event disabled gets nothing: Start says so (logsKeepAny).
func TestLogsKeepAny(t *testing.T) {
	cfg := NewDefaultConfig()
	assert.True(t, cfg.logsKeepAny())
	cfg.Events.PodnetTCPConnect.Enabled, cfg.Events.PodnetTCPAccept.Enabled, cfg.Events.PodnetTCPClose.Enabled = false, false, false
	assert.True(t, cfg.logsKeepAny(), "found connections' records still")
	cfg.Events.PodnetTCPConnectionFound.Enabled = false
	assert.False(t, cfg.logsKeepAny())
}

// logs: the sampling rate is bounded and needs metrics counted in the kernel; both settings
// reach the kernel options.
func TestLogsConfig(t *testing.T) {
	cfg := NewDefaultConfig()
	opts := cfg.kernelOptions(true, true, true)
	assert.False(t, opts.NoProcessContext, "process attributes on by default")
	assert.Equal(t, uint32(1), opts.SampleOneIn, "every connection by default")

	cfg.Logs = LogsConfig{ProcessAttributes: false, Sampling: LogsSamplingConfig{OneIn: 100}}
	assert.NoError(t, confmap.Validate(cfg))
	opts = cfg.kernelOptions(true, true, true)
	assert.True(t, opts.NoProcessContext)
	assert.Equal(t, uint32(100), opts.SampleOneIn)

	cfg.MetricsAggregation = aggregationEvents
	assert.ErrorContains(t, confmap.Validate(cfg), "metrics_aggregation: events would count only the kept ones")
	cfg = NewDefaultConfig()
	cfg.Logs.Sampling.OneIn = 0
	assert.ErrorContains(t, confmap.Validate(cfg), "logs.sampling.one_in: 0 must be between 1")
}

func TestServiceBackendsConfig(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.ProcRoot = "/hostfs/proc"
	opts := cfg.kernelOptions(true, true, true)
	assert.Equal(t, "/proc/self/ns/net", opts.NATNetns, "auto by default, in podnet's own namespace (the node's with hostNetwork)")
	assert.False(t, opts.BackendInMetrics, "metrics are not split by backend by default")
	assert.Empty(t, cfg.kernelOptions(true, false, true).NATNetns, "metrics only, not split by backend: nothing would carry one")
	cfg.Events.PodnetTCPConnect.Enabled, cfg.Events.PodnetTCPClose.Enabled = false, false
	assert.Empty(t, cfg.kernelOptions(true, true, true).NATNetns, "logs without client records: nothing would carry one")
	cfg.Events.PodnetTCPClose.Enabled = true
	assert.Equal(t, "/proc/self/ns/net", cfg.kernelOptions(true, true, false).NATNetns, "close records carry it")

	cfg.ServiceBackends = ServiceBackendsConfig{Mode: backendsOn, NodeNetns: "/run/netns/node", MetricAttribute: true}
	assert.Equal(t, "/run/netns/node", cfg.kernelOptions(true, false, true).NATNetns, "metrics split by backend")
	opts = cfg.kernelOptions(true, true, true)
	assert.Equal(t, "/run/netns/node", opts.NATNetns)
	assert.True(t, opts.BackendInMetrics)

	assert.False(t, opts.SocketLB, "socket_lb off by default")
	cfg.ServiceBackends.SocketLB = true
	assert.True(t, cfg.kernelOptions(true, true, true).SocketLB)

	cfg.ServiceBackends.Mode = backendsOff
	assert.Empty(t, cfg.kernelOptions(true, true, true).NATNetns, "off loads nothing")
	assert.False(t, cfg.kernelOptions(true, true, true).SocketLB, "off reads nothing")

	cfg.ServiceBackends.Mode = "yes"
	assert.ErrorContains(t, confmap.Validate(cfg), `service_backends.mode: unknown value "yes"; use auto, on or off`)

	// Where they cannot be read, mode on fails Start and says how to have them.
	cfg.ServiceBackends.Mode = backendsOn
	err := cfg.ServiceBackends.started(ownNetns, errors.New("podnet lacks CAP_NET_ADMIN, which netfilter BPF programs need"), zap.NewNop())
	assert.ErrorContains(t, err, "service_backends.mode is on: podnet lacks CAP_NET_ADMIN")
	assert.ErrorContains(t, err, "examples/kubernetes/service-backends.patch.yaml", "the way to have them")
	assert.ErrorContains(t, err, "set service_backends.mode to auto")
}

// Without hostNetwork podnet's namespace is a pod's, where no Service is translated: auto stays
// off and says why; a node_netns set, or a node namespace that cannot be read, is taken as is.
// The node's is kthreadd's (pid 2), never pid 1's: found by an independent check, a pid 1 whose
// links root cannot read left auto on in a pod's namespace.
func TestServiceBackendsKnowsAPodNamespace(t *testing.T) {
	procRoot := t.TempDir()
	c := ServiceBackendsConfig{Mode: backendsAuto}
	assert.NoError(t, c.notInNodeNetns(procRoot), "the node's namespace unreadable: podnet's own is taken")

	kthreadd := filepath.Join(procRoot, "2", "ns", "net")
	require.NoError(t, os.MkdirAll(filepath.Dir(kthreadd), 0o755))
	require.NoError(t, os.WriteFile(kthreadd, nil, 0o644)) // another namespace
	assert.ErrorContains(t, c.notInNodeNetns(procRoot), "podnet runs in a pod's network namespace, not the node's")

	require.NoError(t, os.Remove(kthreadd))
	require.NoError(t, os.Symlink("/proc/self/ns/net", kthreadd))
	assert.NoError(t, c.notInNodeNetns(procRoot), "the same namespace: hostNetwork")
	require.NoError(t, os.MkdirAll(filepath.Join(procRoot, "1", "ns"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(procRoot, "1", "ns", "net"), nil, 0o644))
	assert.NoError(t, c.notInNodeNetns(procRoot), "pid 1's namespace is not asked")

	c.NodeNetns = "/run/netns/node"
	require.NoError(t, os.Remove(kthreadd))
	require.NoError(t, os.WriteFile(kthreadd, nil, 0o644))
	assert.NoError(t, c.notInNodeNetns(procRoot), "node_netns set: used as is")
}

// live_reads: walk turns the marked reads off (every open connection is read each interval);
// auto leaves the kernel side to mark where it can.
func TestLiveReadsConfig(t *testing.T) {
	cfg := NewDefaultConfig()
	assert.False(t, cfg.kernelOptions(true, false, true).UnmarkedReads, "auto: marked where the kernel can")
	cfg.LiveReads = liveReadsWalk
	assert.True(t, cfg.kernelOptions(true, false, true).UnmarkedReads)
}

// socket_lb runs in hooks only a logs pipeline attaches: a metrics-only podnet says once at
// Start that it is unused, instead of ignoring it without a word.
func TestSocketLBWithoutLogsIsSaid(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	c := ServiceBackendsConfig{Mode: backendsAuto, SocketLB: true}
	c.socketLBUnused(true, zap.New(core))
	assert.Zero(t, logs.Len(), "with a logs pipeline it runs")
	c.socketLBUnused(false, zap.New(core))
	assert.Equal(t, 1, logs.FilterMessageSnippet("no logs pipeline uses this receiver").Len())
}

// Settings that shape only log records are said to be ignored, once at Start, by a
// metrics-only podnet, naming each; and the ring's, where no ring is made (in-kernel metrics).
func TestLogsSettingsWithoutLogsAreSaid(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	cfg := NewDefaultConfig()
	cfg.Logs.unused(false, false, cfg.Events, cfg.ringSettings(), zap.New(core))
	assert.Zero(t, logs.Len(), "defaults: nothing to say")
	cfg.Logs.Sampling.OneIn = 10
	cfg.Logs.ProcessAttributes = false
	cfg.Events.PodnetTCPAccept.Enabled = false
	cfg.RingBufferSize = 16 << 20
	cfg.RingBuffers = ringBuffersPerCPU
	cfg.Logs.unused(true, false, cfg.Events, cfg.ringSettings(), zap.New(core))
	assert.Zero(t, logs.Len(), "with a logs pipeline they apply")
	cfg.Logs.unused(false, false, cfg.Events, cfg.ringSettings(), zap.New(core))
	said := logs.FilterMessageSnippet("no logs pipeline uses this receiver").All()
	require.Len(t, said, 1)
	assert.Equal(t, []any{"events.podnet.tcp.accept.enabled", "logs.process_attributes", "logs.sampling.one_in", "ring_buffer_size", "ring_buffers"},
		said[0].ContextMap()["ignored"])

	// Metrics counted from events lose the connect() hooks with process_attributes, and read
	// the ring: not ignored.
	cfg.Logs.unused(false, true, cfg.Events, cfg.ringSettings(), zap.New(core))
	said = logs.FilterMessageSnippet("no logs pipeline uses this receiver").All()
	require.Len(t, said, 2)
	assert.Equal(t, []any{"events.podnet.tcp.accept.enabled", "logs.sampling.one_in"}, said[1].ContextMap()["ignored"])
}

// Settings that shape only metrics are said to be ignored, once at Start, by a logs-only
// podnet, naming each.
func TestMetricsSettingsWithoutMetricsAreSaid(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	cfg := NewDefaultConfig()
	cfg.metricsUnused(false, zap.New(core))
	assert.Zero(t, logs.Len(), "defaults: nothing to say")
	cfg.MaxMetricSeries = 5
	cfg.HandshakeHistogram = false
	cfg.MetricsAggregation = aggregationKernel
	cfg.ServiceBackends.MetricAttribute = true
	cfg.Metrics.PodnetTCPConnections.EnabledAttributes = []metadata.PodnetTCPConnectionsMetricAttributeKey{"server.port"}
	cfg.Metrics.PodnetTCPRetransmits.Enabled = false
	cfg.metricsUnused(true, zap.New(core))
	assert.Zero(t, logs.Len(), "with a metrics pipeline they apply")
	cfg.metricsUnused(false, zap.New(core))
	said := logs.FilterMessageSnippet("no metrics pipeline uses this receiver").All()
	require.Len(t, said, 1)
	assert.Equal(t, []any{
		"handshake_histogram", "max_metric_series", "metrics.podnet.tcp.connections", "metrics.podnet.tcp.retransmits",
		"metrics_aggregation", "service_backends.metric_attribute",
	}, said[0].ContextMap()["ignored"])
}

// An attribute list on a metric turned off would be ignored: refused, naming the metric.
func TestAttributesOfADisabledMetricAreRefused(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Metrics.PodnetTCPConnections.Enabled = false
	require.NoError(t, cfg.Validate(), "off, its attributes untouched")
	cfg.Metrics.PodnetTCPConnections.EnabledAttributes = []metadata.PodnetTCPConnectionsMetricAttributeKey{"server.port"}
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "metrics.podnet.tcp.connections.attributes is set, but metrics.podnet.tcp.connections.enabled is false")
}

// A value of the wrong kind is refused with the setting's values, not the decoder's Go type
// names ("expected type 'kernel.HookMode', got unconvertible type 'int'"; found by an
// independent check).
func TestWrongKindsAreToldTheirValues(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string // "" when accepted
	}{
		{"hooks: 5", `hooks: 5 is not one of its values; use one of ["auto" "tp_btf" "tracepoint"]`},
		{"metrics_aggregation: [kernel]", `metrics_aggregation: [kernel] is not one of its values; use one of ["auto" "kernel" "events"]`},
		{"kubernetes: {auth_type: 1}", `kubernetes.auth_type: 1 is not one of its values; use one of ["none" "serviceAccount" "kubeConfig"]`},
		{"kubernetes: {peer_pods: true}", `kubernetes.peer_pods: true is not one of its values; use one of ["all" "endpoints" "none"]`},
		{"service_backends: {mode: 0}", `service_backends.mode: 0 is not one of its values; use one of ["auto" "on" "off"]`},
		{"logs: {process_attributes: 1}", "logs.process_attributes: 1 is not a switch; use true or false"},
		{"handshake_histogram: [true]", "handshake_histogram: [true] is not a switch; use true or false"},
		{"hooks: tracepoint", ""},
		{"logs: {process_attributes: false}", ""},
		{`node_name: "12345"`, ""},
		{"hooks:", `hooks: unknown mode ""; use one of [auto tp_btf tracepoint]`}, // as metrics_aggregation's empty value is
		// An empty switch (or one whose environment variable expands to nothing) would be false.
		{"handshake_histogram:", "handshake_histogram: has no value; use true or false, or leave it out for its default"},
		{"logs: {process_attributes: }", "logs.process_attributes: has no value"},
		{"events: {podnet.tcp.accept: {enabled: }}", "events.podnet.tcp.accept.enabled: has no value"},
		{"metrics: {podnet.tcp.connections: {enabled: }}", "metrics.podnet.tcp.connections.enabled: has no value"},
		{"resource_attributes: {host.name: {enabled: }}", "resource_attributes.host.name.enabled: has no value"},
	} {
		err := decodeAndValidate(t, tc.yaml)
		if tc.want == "" {
			assert.NoError(t, err, tc.yaml)
			continue
		}
		assert.ErrorContains(t, err, tc.want, tc.yaml)
	}
}

// The service graph's metrics keep both their attributes: an attribute list that drops one is
// refused, not emitted as duplicate points.
func TestServiceGraphAttributesAreBoth(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Kubernetes.AuthType, cfg.NodeName = k8smeta.AuthTypeServiceAccount, "node-1"
	cfg.Metrics.TracesServiceGraphRequestTotal.Enabled = true
	cfg.Metrics.TracesServiceGraphRequestFailedTotal.Enabled = true
	require.NoError(t, cfg.Validate())
	cfg.Metrics.TracesServiceGraphRequestTotal.EnabledAttributes = []metadata.TracesServiceGraphRequestTotalMetricAttributeKey{"client"}
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "metrics.traces_service_graph_request_total.attributes: the service graph's edges are a client and a server")
	assert.NotContains(t, err.Error(), "request_failed_total")
	cfg.Metrics.TracesServiceGraphRequestTotal.EnabledAttributes = []metadata.TracesServiceGraphRequestTotalMetricAttributeKey{"server", "client"}
	require.NoError(t, cfg.Validate())
}
