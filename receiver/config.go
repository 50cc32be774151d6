// Package podnetreceiver implements the podnet receiver: it runs the kernel programs, reads their
// events and turns them into OTLP logs and metrics. The component itself is the module root
// package (github.com/podnet/podnet), which is what an ocb `gomod:` line names.
package podnetreceiver // import "github.com/podnet/podnet/receiver"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// Config is the user's podnet configuration.
type Config struct {
	// Hooks forces a hook mode (auto, tp_btf, tracepoint). auto picks the cheapest that loads.
	Hooks kernel.HookMode `mapstructure:"hooks"`
	// RingBufferSize is the kernel→user event buffer in bytes: a power of two and a multiple
	// of the page size. Size it for at least the poll interval at peak event rate.
	RingBufferSize int `mapstructure:"ring_buffer_size"`
	// RingBuffers is "shared" (one ring every CPU writes) or "per_cpu" (a ring per CPU,
	// ring_buffer_size split between them): see README, Many cores.
	RingBuffers string `mapstructure:"ring_buffers"`
	// LiveReads says how the reads of open connections at each metrics interval find them:
	// "auto" (marked: only the sockets that sent or received data since the last read, where
	// the kernel can; every TCP send call and data arrival on the node then pays a mark) or
	// "walk" (every tracked connection, each interval; nothing per call): see README,
	// Long-lived connections.
	LiveReads string `mapstructure:"live_reads"`
	// MaxTrackedConnections bounds the kernel's table of open connections (LRU).
	MaxTrackedConnections int `mapstructure:"max_tracked_connections"`
	// PollInterval is how often the ring buffer is drained when not woken by a backlog.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// ShutdownTimeout bounds Shutdown: the ring is drained and what it held delivered until
	// then, the rest counted dropped. The collector's own shutdown passes a context without a
	// deadline, so without this a consumer that blocks (an exporter that never answers, with
	// no queue) would hold the collector's exit until the kubelet kills it, losing uncounted
	// what was read. A context's earlier deadline wins.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// MetricsAggregation says where connection metrics are counted: "auto" and "kernel" (BPF
	// maps read each interval, whenever a metrics pipeline uses this receiver, also beside a
	// logs pipeline: metrics never depend on logs), or "events" (from the event stream, in
	// user space).
	MetricsAggregation string `mapstructure:"metrics_aggregation"`
	// MetricsInterval is how often cumulative metrics are emitted.
	MetricsInterval time.Duration `mapstructure:"metrics_interval"`
	// MaxMetricSeries bounds the metric aggregation table; events for new series beyond it
	// are counted as dropped.
	MaxMetricSeries int `mapstructure:"max_metric_series"`
	// MetricSeriesIdleExpiry forgets series that have not changed for this long (their
	// cumulative start time resets if they come back).
	MetricSeriesIdleExpiry time.Duration `mapstructure:"metric_series_idle_expiry"`
	// NodeName is reported as k8s.node.name; default from the K8S_NODE_NAME environment variable.
	NodeName string `mapstructure:"node_name"`
	// ProcRoot is the node's procfs, read to attribute sockets to pods by network namespace
	// and cgroup. In a container: mount the host's / at /hostfs, use /hostfs/proc, hostPID.
	ProcRoot string `mapstructure:"proc_root"`
	// CgroupRoot overrides where the node's cgroup2 hierarchy is mounted (default: found from
	// the node's mount table, under the same host root as proc_root).
	CgroupRoot string `mapstructure:"cgroup_root"`
	// AttributionRefresh is how often the node's processes are rescanned; unknown namespaces
	// and cgroups also trigger a (rate-limited) rescan.
	AttributionRefresh time.Duration `mapstructure:"attribution_refresh_interval"`
	// Kubernetes names pods, containers and Services from the API server: auth_type
	// serviceAccount (in a DaemonSet) or kubeConfig; none (the default) leaves only what the
	// node knows (pod UID, container id, netns, cgroup). peer_pods (all, endpoints, none) says
	// which remote pods are named, and so whether every node watches every pod of the cluster.
	Kubernetes k8smeta.APIConfig `mapstructure:"kubernetes"`
	// Exclude leaves connections out of logs and metrics by server port or peer range.
	Exclude ExcludeConfig `mapstructure:"exclude"`
	// Logs: process attributes and sampling of the log records.
	Logs LogsConfig `mapstructure:"logs"`
	// HandshakeHistogram emits podnet.tcp.handshake.duration, a histogram of how long handshakes
	// took per series. A setting of its own: mdatagen generates no histograms, so it has no
	// metrics.<name> entry.
	HandshakeHistogram bool `mapstructure:"handshake_histogram"`
	// ServiceBackends names the backend a connection to a Service was translated to.
	ServiceBackends ServiceBackendsConfig `mapstructure:"service_backends"`
	// DNSNames names the servers outside the cluster by the DNS name the pod resolved.
	DNSNames DNSNamesConfig `mapstructure:"dns_names"`

	Events             metadata.EventsConfig             `mapstructure:"events"`
	Metrics            metadata.MetricsConfig            `mapstructure:"metrics"`
	ResourceAttributes metadata.ResourceAttributesConfig `mapstructure:"resource_attributes"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// metrics_aggregation values.
const (
	aggregationAuto   = "auto"
	aggregationKernel = "kernel"
	aggregationEvents = "events"
)

// live_reads values.
const (
	liveReadsAuto = "auto"
	liveReadsWalk = "walk"
)

// ring_buffers values.
const (
	ringBuffersShared = "shared"
	ringBuffersPerCPU = "per_cpu"
)

const (
	defaultRingBufferSize        = 8 << 20
	defaultMaxTrackedConnections = 65536
	maxTrackedConnectionsLimit   = 1 << 24
	// maxMetricSeriesLimit bounds max_metric_series because it also sizes the kernel's
	// aggregation maps: an unbounded value failed Start with the kernel's "argument list too
	// long" rather than a config error naming the field. 1<<20 series is far more than one
	// node's connection metrics need, and the maps load at that size (checked on the CI kind
	// of machine with both aggregation maps allocated).
	maxMetricSeriesLimit = 1 << 20
	// defaultMaxMetricSeries is max_metric_series' default.
	defaultMaxMetricSeries = 10000
)

// NewDefaultConfig returns podnet's defaults.
func NewDefaultConfig() *Config {
	return &Config{
		Hooks:                  kernel.HooksAuto,
		RingBufferSize:         defaultRingBufferSize,
		RingBuffers:            ringBuffersShared,
		LiveReads:              liveReadsAuto,
		MaxTrackedConnections:  defaultMaxTrackedConnections,
		PollInterval:           100 * time.Millisecond,
		ShutdownTimeout:        5 * time.Second,
		MetricsAggregation:     aggregationAuto,
		Logs:                   LogsConfig{ProcessAttributes: true, Sampling: LogsSamplingConfig{OneIn: 1}},
		ServiceBackends:        ServiceBackendsConfig{Mode: backendsAuto},
		DNSNames:               defaultDNSNamesConfig(),
		HandshakeHistogram:     true,
		MetricsInterval:        10 * time.Second,
		MaxMetricSeries:        defaultMaxMetricSeries,
		MetricSeriesIdleExpiry: 15 * time.Minute,
		NodeName:               os.Getenv("K8S_NODE_NAME"),
		ProcRoot:               "/proc",
		AttributionRefresh:     10 * time.Second,
		Kubernetes:             k8smeta.APIConfig{AuthType: k8smeta.AuthTypeNone, PeerPods: k8smeta.PeerPodsAll},
		Events:                 metadata.DefaultEventsConfig(),
		Metrics:                metadata.DefaultMetricsConfig(),
		ResourceAttributes:     metadata.DefaultResourceAttributesConfig(),
	}
}

// Validate checks every field and names the field and the fix.
func (cfg *Config) Validate() error {
	var errs []error
	if !slices.Contains(kernel.HookModes, cfg.Hooks) {
		errs = append(errs, fmt.Errorf("hooks: unknown mode %q; use one of %v", cfg.Hooks, kernel.HookModes))
	}
	page := os.Getpagesize()
	if s := cfg.RingBufferSize; s <= 0 || s&(s-1) != 0 || s%page != 0 || s > 1<<30 {
		errs = append(errs, fmt.Errorf("ring_buffer_size: %d is not a power of two multiple of the page size (%d) up to 1 GiB; e.g. 8388608 (8 MiB)", s, page))
	}
	if cfg.LiveReads != liveReadsAuto && cfg.LiveReads != liveReadsWalk {
		errs = append(errs, fmt.Errorf("live_reads: unknown value %q; use %q (only the sockets that moved data, where the kernel can) or %q (every open connection, each metrics interval)", cfg.LiveReads, liveReadsAuto, liveReadsWalk))
	}
	if cfg.RingBuffers != ringBuffersShared && cfg.RingBuffers != ringBuffersPerCPU {
		errs = append(errs, fmt.Errorf("ring_buffers: unknown value %q; use %q (one ring for every CPU) or %q (a ring per CPU, for nodes with many busy cores)", cfg.RingBuffers, ringBuffersShared, ringBuffersPerCPU))
	}
	if n := cfg.MaxTrackedConnections; n < 1 || n > maxTrackedConnectionsLimit {
		errs = append(errs, fmt.Errorf("max_tracked_connections: %d must be between 1 and %d", n, maxTrackedConnectionsLimit))
	}
	if cfg.PollInterval < time.Millisecond || cfg.PollInterval > time.Minute {
		errs = append(errs, fmt.Errorf("poll_interval: %v must be between 1ms and 1m%s", cfg.PollInterval, unitHint(cfg.PollInterval)))
	}
	if cfg.ShutdownTimeout < time.Millisecond || cfg.ShutdownTimeout > 5*time.Minute {
		errs = append(errs, fmt.Errorf("shutdown_timeout: %v must be between 1ms and 5m%s (keep it under the pod's terminationGracePeriodSeconds, 30s by default)", cfg.ShutdownTimeout, unitHint(cfg.ShutdownTimeout)))
	}
	switch cfg.MetricsAggregation {
	case aggregationAuto, aggregationKernel, aggregationEvents:
	default:
		errs = append(errs, fmt.Errorf("metrics_aggregation: unknown value %q; use auto, kernel or events", cfg.MetricsAggregation))
	}
	if cfg.MetricsInterval < time.Second || cfg.MetricsInterval > time.Hour {
		errs = append(errs, fmt.Errorf("metrics_interval: %v must be between 1s and 1h%s", cfg.MetricsInterval, unitHint(cfg.MetricsInterval)))
	}
	switch n := cfg.MaxMetricSeries; {
	case n < 1:
		errs = append(errs, fmt.Errorf("max_metric_series: %d must be at least 1 (the series kept before new ones fold into the overflow series; default %d)", n, defaultMaxMetricSeries))
	case n > maxMetricSeriesLimit:
		errs = append(errs, fmt.Errorf("max_metric_series: %d must be at most %d (it also sizes the kernel's aggregation map); lower it, or drop attributes such as network.peer.address to need fewer series", n, maxMetricSeriesLimit))
	}
	if keep, err := seriesAttributesOf(cfg.Metrics); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, cfg.splitByDropped(keep)...)
	}
	errs = append(errs, attributesOfDisabledMetrics(cfg.Metrics)...)
	errs = append(errs, serviceGraphAttributes(cfg.Metrics)...)
	errs = append(errs, unsupportedGenerated(cfg.Metrics, cfg.ResourceAttributes)...)
	if cfg.MetricSeriesIdleExpiry < cfg.MetricsInterval && cfg.MetricsInterval <= time.Hour {
		errs = append(errs, fmt.Errorf("metric_series_idle_expiry: %v must be at least metrics_interval (%v): raise it, or lower metrics_interval", cfg.MetricSeriesIdleExpiry, cfg.MetricsInterval))
	}
	if !filepath.IsAbs(cfg.ProcRoot) {
		errs = append(errs, fmt.Errorf("proc_root: %q must be an absolute path (the node's procfs: /proc, or /hostfs/proc in a container)", cfg.ProcRoot))
	}
	if cfg.CgroupRoot != "" && !filepath.IsAbs(cfg.CgroupRoot) {
		errs = append(errs, fmt.Errorf("cgroup_root: %q must be an absolute path (the node's cgroup2 mount, e.g. /sys/fs/cgroup), or unset to find it", cfg.CgroupRoot))
	}
	if cfg.serviceGraphOn() && cfg.Kubernetes.AuthType == k8smeta.AuthTypeNone {
		// Its edges are pod traffic: without the API server no pod is named and no edge is ever
		// counted (found by an independent check: on, and silent).
		errs = append(errs, fmt.Errorf("metrics.traces_service_graph_request_total / _failed_total: the service graph counts connections of pods, which only the Kubernetes API names: set kubernetes.auth_type to %q or %q, or leave the service graph off", k8smeta.AuthTypeServiceAccount, k8smeta.AuthTypeKubeConfig))
	}
	// Only for a known auth_type: an unknown one is told its own error, not this one too.
	if (cfg.Kubernetes.AuthType == k8smeta.AuthTypeServiceAccount || cfg.Kubernetes.AuthType == k8smeta.AuthTypeKubeConfig) && cfg.NodeName == "" {
		errs = append(errs, errors.New("node_name: must be set when kubernetes.auth_type is not none (local pods are this node's: set K8S_NODE_NAME from spec.nodeName)"))
	}
	if err := cfg.Logs.validate(cfg.MetricsAggregation); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.ServiceBackends.validate(cfg.Logs.ProcessAttributes); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.DNSNames.validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.AttributionRefresh < time.Second {
		errs = append(errs, fmt.Errorf("attribution_refresh_interval: %v must be at least 1s", cfg.AttributionRefresh))
	}
	return errors.Join(errs...)
}

// logsKeepAny says whether a logs pipeline would get any record: some event is enabled.
func (cfg *Config) logsKeepAny() bool {
	e := cfg.Events
	return e.PodnetTCPConnect.Enabled || e.PodnetTCPAccept.Enabled || e.PodnetTCPClose.Enabled || e.PodnetTCPConnectionFound.Enabled
}

// sampleOneIn is the logs sampling the kernel applies: none without a logs pipeline, where it
// would only count connections left out of logs that do not exist (found by an independent
// check: otelcol_podnet_connections_sampled_out counted in a metrics-only podnet).
func (cfg *Config) sampleOneIn(hasLogs bool) uint32 {
	if !hasLogs {
		return 1
	}
	return uint32(max(cfg.Logs.Sampling.OneIn, 1))
}

// aggregateInKernel decides the metrics path from the pipelines that use the receiver.
func (cfg *Config) aggregateInKernel(hasMetrics bool) bool {
	return hasMetrics && cfg.MetricsAggregation != aggregationEvents
}

// unitHint says how a duration written as a bare number was read, when it was: the decoder takes
// `10` as 10ns, which a range check alone reports as "10ns must be between 1s and 1h".
func unitHint(d time.Duration) string {
	if d <= 0 || d >= time.Microsecond {
		return ""
	}
	return fmt.Sprintf(" (a number without a unit is nanoseconds: write it with one, e.g. %ds)", int64(d))
}
