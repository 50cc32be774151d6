package examples

import (
	"context"
	"net"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// sink is the OTLP backend: the core otlpreceiver, in this process, on a loopback port.
type sink struct {
	addr    string
	logs    *consumertest.LogsSink
	metrics *consumertest.MetricsSink
}

func startSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{addr: freeLoopbackAddr(t), logs: new(consumertest.LogsSink), metrics: new(consumertest.MetricsSink)}
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = s.addr
	set := receivertest.NewNopSettings(f.Type())
	lr, err := f.CreateLogs(context.Background(), set, cfg, s.logs)
	if err != nil {
		t.Fatal(err)
	}
	mr, err := f.CreateMetrics(context.Background(), set, cfg, s.metrics)
	if err != nil {
		t.Fatal(err)
	}
	// Both receivers are one gRPC server: otlpreceiver shares an instance per config.
	host := componenttest.NewNopHost()
	if err := lr.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lr.Shutdown(context.Background()) })
	if err := mr.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mr.Shutdown(context.Background()) })
	return s
}
