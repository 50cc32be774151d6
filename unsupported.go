package podnet

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/podnet/podnet/internal/metadata"
	podnetreceiver "github.com/podnet/podnet/receiver"
)

// unsupportedFactory is podnet where there is no eBPF: the same type and the same Config (so
// the same defaults and Validate), and receivers that refuse to start. It is not behind a
// build tag so that Linux tests cover it too.
func unsupportedFactory(goos, goarch string) receiver.Factory {
	r := unsupportedReceiver{goos: goos, goarch: goarch}
	return receiver.NewFactory(
		metadata.Type,
		func() component.Config { return podnetreceiver.NewDefaultConfig() },
		receiver.WithLogs(func(context.Context, receiver.Settings, component.Config, consumer.Logs) (receiver.Logs, error) {
			return r, nil
		}, metadata.LogsStability),
		receiver.WithMetrics(func(context.Context, receiver.Settings, component.Config, consumer.Metrics) (receiver.Metrics, error) {
			return r, nil
		}, metadata.MetricsStability),
	)
}

// unsupportedReceiver fails at Start rather than at creation: the collector then stops at
// startup with this reason, as it would for a Linux kernel without BPF.
type unsupportedReceiver struct{ goos, goarch string }

func (r unsupportedReceiver) Start(context.Context, component.Host) error {
	if r.goos == "linux" {
		// Found by an independent check: distributions for ppc64le and s390x (contrib
		// builds them) did not compile.
		return fmt.Errorf("podnet needs Linux on amd64 or arm64, the CPUs its eBPF programs are built and tested for: this collector runs on linux/%s", r.goarch)
	}
	return fmt.Errorf("podnet needs Linux (eBPF): this collector runs on %s", r.goos)
}

func (unsupportedReceiver) Shutdown(context.Context) error { return nil }
