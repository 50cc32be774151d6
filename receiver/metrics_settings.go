package podnetreceiver

import (
	"fmt"
	"reflect"
	"slices"

	"go.uber.org/zap"

	"github.com/podnet/podnet/internal/metadata"
)

// metricsUnused says once at Start which settings shape only metrics when no metrics pipeline
// uses the receiver: a logs-only podnet ignores them, which it should say rather than leave a
// user thinking they apply, as LogsConfig.unused does the other way (found by an independent
// check: max_metric_series, metrics.<name> and more accepted without a word).
func (cfg *Config) metricsUnused(hasMetrics bool, logger *zap.Logger) {
	if hasMetrics {
		return
	}
	def := NewDefaultConfig()
	var set []string
	for name, changed := range map[string]bool{
		"metrics_aggregation":               cfg.MetricsAggregation != def.MetricsAggregation,
		"metrics_interval":                  cfg.MetricsInterval != def.MetricsInterval,
		"max_metric_series":                 cfg.MaxMetricSeries != def.MaxMetricSeries,
		"metric_series_idle_expiry":         cfg.MetricSeriesIdleExpiry != def.MetricSeriesIdleExpiry,
		"live_reads":                        cfg.LiveReads != def.LiveReads,
		"handshake_histogram":               cfg.HandshakeHistogram != def.HandshakeHistogram,
		"dns_names.metric_attribute":        cfg.DNSNames.MetricAttribute,
		"service_backends.metric_attribute": cfg.ServiceBackends.MetricAttribute,
	} {
		if changed {
			set = append(set, name)
		}
	}
	set = append(set, metricsChanged(cfg.Metrics)...)
	if len(set) == 0 {
		return
	}
	slices.Sort(set)
	logger.Warn("podnet: settings that shape metrics are set, but no metrics pipeline uses this receiver: they are ignored; add podnet to a metrics pipeline, or remove them",
		zap.Strings("ignored", set))
}

// eachMetric calls f with every metric's name (its key under metrics:), its settings and its
// default settings, from mdatagen's generated config.
func eachMetric(mc metadata.MetricsConfig, f func(name string, m, def reflect.Value)) {
	v, d := reflect.ValueOf(mc), reflect.ValueOf(metadata.DefaultMetricsConfig())
	for i := range v.NumField() {
		f(v.Type().Field(i).Tag.Get("mapstructure"), v.Field(i), d.Field(i))
	}
}

// metricsChanged names the metrics whose settings differ from their defaults, as
// metrics.<name>. Exported fields only: the generated structs also hold state of their own.
func metricsChanged(mc metadata.MetricsConfig) []string {
	var out []string
	eachMetric(mc, func(name string, m, def reflect.Value) {
		for j := range m.NumField() {
			if m.Type().Field(j).IsExported() && !reflect.DeepEqual(m.Field(j).Interface(), def.Field(j).Interface()) {
				out = append(out, "metrics."+name)
				return
			}
		}
	})
	return out
}

// attributesOfDisabledMetrics refuses an attribute list on a metric turned off: it would be
// ignored, which a setting of a feature its mode turns off never is (found by an independent
// check: accepted without a word, and no series changed).
func attributesOfDisabledMetrics(mc metadata.MetricsConfig) []error {
	var errs []error
	eachMetric(mc, func(name string, m, def reflect.Value) {
		on, attrs := m.FieldByName("Enabled"), m.FieldByName("EnabledAttributes")
		if !on.IsValid() || !attrs.IsValid() || on.Bool() ||
			reflect.DeepEqual(attrs.Interface(), def.FieldByName("EnabledAttributes").Interface()) {
			return
		}
		errs = append(errs, fmt.Errorf("metrics.%s.attributes is set, but metrics.%s.enabled is false: the metric is off, so its attributes would be ignored; remove attributes, or enable the metric", name, name))
	})
	return errs
}

// serviceGraphAttributes refuses an attribute list on the service graph's metrics: an edge is
// its client and its server, each counted from its own start; one of them dropped would leave
// two points with the same attributes and their own values (found by an independent review:
// {client: shop/web} twice, 3 and 5, where a backend keeps one of them).
func serviceGraphAttributes(mc metadata.MetricsConfig) []error {
	var errs []error
	both := func(attrs []string) bool { return slices.Contains(attrs, "client") && slices.Contains(attrs, "server") }
	for _, m := range []struct {
		name  string
		on    bool
		attrs []string
	}{
		{"traces_service_graph_request_total", mc.TracesServiceGraphRequestTotal.Enabled, keyNames(mc.TracesServiceGraphRequestTotal.EnabledAttributes)},
		{"traces_service_graph_request_failed_total", mc.TracesServiceGraphRequestFailedTotal.Enabled, keyNames(mc.TracesServiceGraphRequestFailedTotal.EnabledAttributes)},
	} {
		if m.on && !both(m.attrs) { // off: attributesOfDisabledMetrics says so
			errs = append(errs, fmt.Errorf("metrics.%s.attributes: the service graph's edges are a client and a server, both kept; remove attributes", m.name))
		}
	}
	return errs
}

func keyNames[K ~string](keys []K) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(k)
	}
	return out
}

// unsupportedGenerated refuses the settings mdatagen generates that podnet does not honour
// (found by an independent check: accepted, printed by print-config, and wrong or ignored):
//   - metrics.<name>.aggregation_strategy other than sum: the generated builder merges the
//     points of series left with the same attributes by it, and podnet's series are counts
//     and sums, which only add up (max kept the largest close reason's count of
//     podnet.tcp.connections.closed once podnet.tcp.close.reason was dropped);
//   - resource_attributes.<name>.{metrics,events}_{include,exclude}: records are not built by
//     the generated builder, nor is the handshake histogram, so these filtered only some
//     metrics and no record. The filter processor does this for every signal.
func unsupportedGenerated(mc metadata.MetricsConfig, rc metadata.ResourceAttributesConfig) []error {
	var errs []error
	eachMetric(mc, func(name string, m, _ reflect.Value) {
		if s := m.FieldByName("AggregationStrategy"); s.IsValid() && s.String() != metadata.AggregationStrategySum {
			errs = append(errs, fmt.Errorf("metrics.%s.aggregation_strategy: %q is not supported: podnet's series are counts and sums, merged by adding them (sum, the default); remove aggregation_strategy", name, s.String()))
		}
	})
	v := reflect.ValueOf(rc)
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("mapstructure")
		for _, f := range [...]string{"metrics_include", "metrics_exclude", "events_include", "events_exclude"} {
			if filters := fieldByTag(v.Field(i), f); filters.IsValid() && filters.Len() > 0 {
				errs = append(errs, fmt.Errorf("resource_attributes.%s.%s: filtering by resource attribute values is not supported by podnet; use the filter processor (it filters logs and metrics alike), or remove %s", name, f, f))
			}
		}
	}
	return errs
}

// fieldByTag is v's field whose mapstructure tag is tag, or the zero Value.
func fieldByTag(v reflect.Value, tag string) reflect.Value {
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("mapstructure") == tag {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}
