//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// receiverKey labels podnet's own counters with the receiver they count for, under the name
// the collector's receiver metrics use (otelcol_receiver_accepted_log_records{receiver=…}).
// Without it two podnet receivers in one collector added up into one unlabelled series (the
// collector's scope attributes do not reach a Prometheus or OTLP series of its own telemetry).
const receiverKey = "receiver"

// labelledMeters hands out meters whose Int64Counters add the receiver's label to every
// measurement: the generated TelemetryBuilder's counters, current and future, all get it
// without each Add naming it. Other instruments pass through unlabelled (podnet has none).
type labelledMeters struct {
	metric.MeterProvider
	label metric.MeasurementOption
}

func labelledTelemetry(set component.TelemetrySettings, id component.ID) component.TelemetrySettings {
	set.MeterProvider = labelledMeters{
		MeterProvider: set.MeterProvider,
		label:         metric.WithAttributeSet(attribute.NewSet(attribute.String(receiverKey, id.String()))),
	}
	return set
}

func (p labelledMeters) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return labelledMeter{Meter: p.MeterProvider.Meter(name, opts...), label: p.label}
}

type labelledMeter struct {
	metric.Meter
	label metric.MeasurementOption
}

func (m labelledMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c, err := m.Meter.Int64Counter(name, opts...)
	if err != nil {
		return nil, err
	}
	return labelledCounter{Int64Counter: c, label: m.label}, nil
}

type labelledCounter struct {
	metric.Int64Counter
	label metric.MeasurementOption
}

func (c labelledCounter) Add(ctx context.Context, n int64, opts ...metric.AddOption) {
	if len(opts) == 0 {
		c.Int64Counter.Add(ctx, n, c.label)
		return
	}
	c.Int64Counter.Add(ctx, n, append(opts, c.label)...)
}
