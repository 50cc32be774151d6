package main

import (
	"context"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/podnet/podnet/bench/internal/agentstats"
)

// counters reads podnet's self-telemetry from the in-process reader.
func (a *agent) counters(ctx context.Context) (agentstats.Counters, error) {
	var rm metricdata.ResourceMetrics
	if err := a.reader.Collect(ctx, &rm); err != nil {
		return agentstats.Counters{}, err
	}
	c := agentstats.Counters{
		LogRecords:   a.sink.logRecords.Load(),
		LogBytes:     a.sink.logBytes.Load(),
		MetricPoints: a.sink.metricPoints.Load(),
		MetricBytes:  a.sink.metricBytes.Load(),
	}
	fields := map[string]*int64{
		"otelcol_podnet_events_received":       &c.EventsReceived,
		"otelcol_podnet_events_lost":           &c.EventsLost,
		"otelcol_podnet_events_submitted":      &c.EventsSubmitted,
		"otelcol_podnet_bpf_recursion_misses":  &c.RecursionMisses,
		"otelcol_podnet_bpf_recursion_covered": &c.RecursionCovered,
		"otelcol_podnet_events_dropped":        &c.EventsDropped,
		"otelcol_podnet_events_decode_errors":  &c.DecodeErrors,
		"otelcol_podnet_connections_untracked": &c.Untracked,
	}
	c.NetnsEvents, c.NetnsMetrics = a.sink.netns.snapshot()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if field := fields[m.Name]; ok && field != nil {
				for _, dp := range sum.DataPoints {
					*field += dp.Value
				}
			}
		}
	}
	return c, nil
}
