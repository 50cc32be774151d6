package podnetreceiver

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/goleak"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
)

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(fds)
}

// loopbackTraffic makes short connections until stop is closed, so receivers start and stop
// while events flow. Waiting on the returned group also closes the server.
func loopbackTraffic(t *testing.T, stop chan struct{}) *sync.WaitGroup {
	addr, stopServer := netnstest.LoopbackServer(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer stopServer()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c, err := net.Dial("tcp", addr); err == nil {
				_ = c.Close()
			}
			time.Sleep(time.Millisecond) // the traffic's pace: events flow without flooding the ring
		}
	})
	return &wg
}

// Start/Shutdown many times with traffic flowing, as collector config reloads do: no leaked
// goroutines, file descriptors or BPF programs, and every instance delivers.
func TestRepeatedStartShutdownLeaksNothing(t *testing.T) {
	netnstest.RequireRoot(t)
	ignore := goleak.IgnoreCurrent()
	fds := openFDs(t)
	stop := make(chan struct{})
	traffic := loopbackTraffic(t, stop)
	var programs []ebpf.ProgramID

	for i := range 15 {
		cfg := NewDefaultConfig()
		cfg.PollInterval = 5 * time.Millisecond
		if i%2 == 1 {
			cfg.Hooks = "tracepoint"
		}
		if i%3 == 2 {
			cfg.RingBuffers = ringBuffersPerCPU // a reader, an epoll set and a ring per CPU
		}
		logs, metrics := new(consumertest.LogsSink), new(consumertest.MetricsSink)
		f := NewFactory()
		set := receivertest.NewNopSettings(metadata.Type)
		lr, err := f.CreateLogs(context.Background(), set, cfg, logs)
		require.NoError(t, err)
		_, err = f.CreateMetrics(context.Background(), set, cfg, metrics)
		require.NoError(t, err)
		require.NoError(t, lr.Start(context.Background(), componenttest.NewNopHost()))
		programs = append(programs, loadedPrograms(t, lr)...)
		require.Eventually(t, func() bool { return logs.LogRecordCount() > 0 }, 5*time.Second, 5*time.Millisecond,
			"instance %d delivers", i)
		require.NoError(t, lr.Shutdown(context.Background()))
		require.NoError(t, lr.Shutdown(context.Background()), "a second Shutdown is harmless")
	}

	close(stop)
	traffic.Wait() // its sockets are not the receiver's
	assert.Empty(t, leftLoaded(t, programs), "BPF programs")
	assert.Equal(t, fds, openFDs(t), "file descriptors")
	goleak.VerifyNone(t, ignore)
}
