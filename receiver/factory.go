//go:build linux

package receiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	otelreceiver "go.opentelemetry.io/collector/receiver"

	"github.com/podnet/podnet/internal/metadata"
)

// NewFactory returns the podnet receiver factory.
func NewFactory() otelreceiver.Factory {
	reg := newRegistry()
	return otelreceiver.NewFactory(
		metadata.Type,
		func() component.Config { return NewDefaultConfig() },
		otelreceiver.WithLogs(func(_ context.Context, set otelreceiver.Settings, cfg component.Config, next consumer.Logs) (otelreceiver.Logs, error) {
			s := reg.getOrAdd(cfg.(*Config), func() *podnetReceiver { return newReceiver(cfg.(*Config), set) })
			s.logs = next
			return s, nil
		}, metadata.LogsStability),
		otelreceiver.WithMetrics(func(_ context.Context, set otelreceiver.Settings, cfg component.Config, next consumer.Metrics) (otelreceiver.Metrics, error) {
			s := reg.getOrAdd(cfg.(*Config), func() *podnetReceiver { return newReceiver(cfg.(*Config), set) })
			s.metrics = next
			return s, nil
		}, metadata.MetricsStability),
	)
}
