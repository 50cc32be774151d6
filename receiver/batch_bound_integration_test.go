package podnetreceiver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
)

// A backlog is delivered in batches of at most maxBatch records: one delivery is one stretch
// of CPU the workloads on that CPU wait behind (README, Performance), so a backlog must never
// become one long burst.
func TestBacklogIsDeliveredInBoundedBatches(t *testing.T) {
	netnstest.RequireRoot(t)
	cfg := NewDefaultConfig()
	sink := &slowLogs{}
	// Slow enough that thousands of events wait in the ring while a batch is consumed.
	sink.delay.Store(int64(200 * time.Millisecond))
	r, err := NewFactory().CreateLogs(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()

	const conns = 1500 // 4 events each, both ends on this host: ~6000 records
	netnstest.LoopbackConnections(t, conns)
	require.Eventually(t, func() bool { return sink.LogRecordCount() >= 4*conns }, 30*time.Second, 50*time.Millisecond)

	largest := 0
	for _, ld := range sink.AllLogs() {
		largest = max(largest, ld.LogRecordCount())
	}
	assert.LessOrEqual(t, largest, maxBatch, "one delivery held more than maxBatch records")
	assert.Equal(t, maxBatch, largest, "the backlog never filled a batch: the test did not exercise the bound")
}
