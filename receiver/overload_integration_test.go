package podnetreceiver

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/podnet/podnet/internal/metadatatest"
	"github.com/podnet/podnet/internal/netnstest"
)

// slowLogs is a downstream that takes its time, as an exporter with a full queue would.
type slowLogs struct {
	consumertest.LogsSink
	delay atomic.Int64 // nanoseconds; changed while the receiver runs
}

func (s *slowLogs) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	time.Sleep(time.Duration(s.delay.Load())) // the slowness under test, not a wait
	return s.LogsSink.ConsumeLogs(ctx, ld)
}

func (s *slowLogs) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func counterSum(t *testing.T, tt *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tt.GetMetric(name)
	if err != nil {
		return 0 // never incremented
	}
	var sum int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		sum += dp.Value
	}
	return sum
}

// A burst far beyond a one-page ring while the pipeline is slow: the kernel counts what it
// could not write, the receiver says so in its telemetry, and it keeps up afterwards.
func TestOverloadIsCountedAndRecovered(t *testing.T) {
	netnstest.RequireRoot(t)
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	core, logged := observer.New(zap.InfoLevel)
	set := metadatatest.NewSettings(tt)
	set.Logger = zap.New(core)

	cfg := NewDefaultConfig()
	cfg.RingBufferSize = os.Getpagesize() // ~30 events
	cfg.PollInterval = 10 * time.Millisecond
	sink := &slowLogs{}
	sink.delay.Store(int64(300 * time.Millisecond))
	r, err := NewFactory().CreateLogs(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()

	attached := logged.FilterMessage("podnet attached to the kernel").All()
	require.Len(t, attached, 1, "the chosen hook mode is logged once at start")
	assert.Contains(t, []string{"tp_btf", "tracepoint"}, attached[0].ContextMap()["hooks"])

	netnstest.LoopbackConnections(t, 500)
	require.Eventually(t, func() bool { return counterSum(t, tt, "otelcol_podnet_events_lost") > 0 },
		10*time.Second, 50*time.Millisecond, "reserve failures are exported")

	// Afterwards, with the pipeline fast again, a connection between fresh pods gets through whole.
	sink.delay.Store(0)
	netw := netnstest.NewNetwork(t, 30)
	client, server := netw.AddPod(), netw.AddPod()
	// A one-page ring also overflows while what was handed off during the overload drains, and
	// under other traffic on the machine (parallel test packages, whose load generators run
	// for seconds at full rate): attempts over ~20 s, each a fresh connection to a port of its
	// own, so that no attempt counts another's events.
	var got []rec
	for attempt := range 10 {
		port := int64(8080 + attempt)
		srv := server.StartServer(t, fmt.Sprintf("0.0.0.0:%d", port), 1)
		_, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, uint16(port)).String(), "after")
		require.Empty(t, res)
		srv.Wait(t)
		ofThisConnection := func() []rec {
			var rs []rec
			for _, r := range records(sink.AllLogs(), client.NetnsInode(), server.NetnsInode()) {
				if r.attrs["network.peer.port"] == port || r.attrs["network.local.port"] == port {
					rs = append(rs, r)
				}
			}
			return rs
		}
		// Polls the condition; the attempt is given up after 2 s.
		for deadline := time.Now().Add(2 * time.Second); len(ofThisConnection()) < 4 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if got = ofThisConnection(); len(got) == 4 {
			break
		}
	}
	require.Len(t, got, 4, "connect, accept and both closes arrive after the overload:\n%s", dump(got))
	assert.Positive(t, counterSum(t, tt, "otelcol_podnet_events_received"))
}
