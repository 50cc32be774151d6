package examples

import (
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

// freeLoopbackAddr returns a loopback address with a port nothing listens on, for a process
// the test starts later. The port is below the kernel's ephemeral range (32768 and up by
// default), where a port free now can be taken before the process binds it by any outgoing
// connection on the machine - the other packages' tests make thousands a second.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	const lowest, highest = 20000, 32767
	for range 200 {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(lowest+rand.IntN(highest-lowest+1))))
		if err != nil {
			continue // in use
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		return addr
	}
	t.Fatalf("no free loopback port in %d-%d", lowest, highest)
	return ""
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
