//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/podnet/podnet/internal/metadata"
)

// NewFactory returns the podnet receiver factory.
func NewFactory() receiver.Factory {
	reg := newRegistry()
	return receiver.NewFactory(
		metadata.Type,
		func() component.Config { return NewDefaultConfig() },
		receiver.WithLogs(func(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
			s := reg.getOrAdd(cfg.(*Config), func() *podnetReceiver { return newReceiver(cfg.(*Config), set) })
			s.logs = next
			return s, nil
		}, metadata.LogsStability),
		receiver.WithMetrics(func(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
			s := reg.getOrAdd(cfg.(*Config), func() *podnetReceiver { return newReceiver(cfg.(*Config), set) })
			s.metrics = next
			return s, nil
		}, metadata.MetricsStability),
	)
}
