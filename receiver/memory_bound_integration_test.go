package podnetreceiver

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
)

// stuckLogs is a pipeline that takes 200 ms per batch and keeps nothing.
type stuckLogs struct{ records atomic.Int64 }

func (s *stuckLogs) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	time.Sleep(200 * time.Millisecond) // the slowness under test, not a wait
	s.records.Add(int64(ld.LogRecordCount()))
	return nil
}

func (s *stuckLogs) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

// heapBound is what a receiver may hold whatever the load: one batch of maxBatch events plus
// its plog form (~2 KiB an event), the caches, and slack for the test's own traffic.
const heapBound = 96 << 20

// A pipeline that cannot keep up must not make podnet buffer without bound: the ring is the
// only queue, and what does not fit is counted as lost in the kernel.
func TestSlowPipelineKeepsMemoryBounded(t *testing.T) {
	netnstest.RequireRoot(t)
	cfg := NewDefaultConfig()
	cfg.PollInterval = 10 * time.Millisecond
	sink := &stuckLogs{}
	r, err := NewFactory().CreateLogs(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()

	stop := make(chan struct{})
	traffic := loopbackTraffic(t, stop)
	var peak uint64
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		time.Sleep(50 * time.Millisecond) // the sampling period of the heap measurement
	}
	close(stop)
	traffic.Wait()
	t.Logf("peak heap in use %d MiB, %d records delivered", peak>>20, sink.records.Load())
	assert.Positive(t, sink.records.Load(), "the slow pipeline still gets data")
	assert.Less(t, peak, uint64(heapBound), "heap in use stays bounded: peak %d MiB", peak>>20)
}
