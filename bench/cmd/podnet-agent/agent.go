package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/receiver"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/podnet/podnet"
)

// agent is one podnet receiver instance serving the requested pipelines, with its
// self-telemetry going to an in-process reader the harness can read at the end.
type agent struct {
	components []component.Component
	reader     *sdkmetric.ManualReader
	meters     *sdkmetric.MeterProvider
	sink       *sink
}

// countNetns, when not 0, is a network namespace inode whose records are counted apart.
func newAgent(pipelines []string, rawConfig string, countNetns int64) (*agent, error) {
	f := podnet.NewFactory()
	cfg := f.CreateDefaultConfig()
	var overrides map[string]any
	if err := json.Unmarshal([]byte(rawConfig), &overrides); err != nil {
		return nil, fmt.Errorf("-config: %w", err)
	}
	// Through confmap, as the collector does, so any receiver option (including ones added
	// after this program) can be benchmarked without changing it.
	if err := confmap.NewFromStringMap(overrides).Unmarshal(cfg); err != nil {
		return nil, fmt.Errorf("-config: %w", err)
	}
	if v, ok := cfg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("-config: %w", err)
		}
	}

	logger, err := zap.NewProduction()
	if err != nil {
		return nil, err
	}
	reader := sdkmetric.NewManualReader()
	a := &agent{reader: reader, meters: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), sink: &sink{netns: newNetnsCount(countNetns)}}
	set := receiver.Settings{
		ID: component.NewID(f.Type()),
		TelemetrySettings: component.TelemetrySettings{
			Logger:         logger,
			MeterProvider:  a.meters,
			TracerProvider: tracenoop.NewTracerProvider(),
		},
		BuildInfo: component.NewDefaultBuildInfo(),
	}
	ctx := context.Background()
	for _, p := range pipelines {
		var c component.Component
		switch p {
		case "logs":
			c, err = f.CreateLogs(ctx, set, cfg, a.sink.logs())
		case "metrics":
			c, err = f.CreateMetrics(ctx, set, cfg, a.sink.metrics())
		default:
			err = fmt.Errorf("-pipelines: unknown pipeline %q (logs, metrics)", p)
		}
		if err != nil {
			return nil, err
		}
		a.components = append(a.components, c)
	}
	return a, nil
}

// start starts every pipeline's component; podnet shares one kernel attachment among them.
func (a *agent) start(ctx context.Context) error {
	for _, c := range a.components {
		if err := c.Start(ctx, host{}); err != nil {
			return errors.Join(err, a.shutdown(ctx))
		}
	}
	return nil
}

func (a *agent) shutdown(ctx context.Context) error {
	var errs []error
	for _, c := range a.components {
		errs = append(errs, c.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// host is the collector host as a lone receiver needs it: no extensions.
type host struct{}

func (host) GetExtensions() map[component.ID]component.Component { return nil }
