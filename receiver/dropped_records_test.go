//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/event"
)

// otelcol_podnet_events_dropped counts the records the logs pipeline did not get, as a refusal
// does, also where Shutdown's deadline cuts delivery: not events that were never to be records
// (found by an independent review: with no logs pipeline at all, metrics counted from events,
// a 1 ms shutdown_timeout counted all 12,004 events dropped and warned).
func TestNoLogsPipelineDropsNothingAtTheDeadline(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.MetricsAggregation = aggregationEvents
	cfg.ShutdownTimeout = time.Millisecond
	f := newFakeReceiver(t, cfg, newFakeRing(connects(50_000)...), nil, new(consumertest.MetricsSink))
	f.start(t)
	require.NoError(t, f.Shutdown(context.Background()))
	f.requireStopped(t)
	assert.Positive(t, f.sum(t, "otelcol_podnet_events_received"))
	assert.Zero(t, f.sum(t, "otelcol_podnet_events_dropped"), "no logs pipeline: nothing is dropped from it")
}

// Events of a disabled type ride the ring for the metrics (metrics_aggregation: events); when
// a logs consumer blocks past Shutdown's deadline, the records it did not get are dropped, not
// those events.
func TestDroppedCountsRecordsNotEventsAtTheDeadline(t *testing.T) {
	const conns = 3 * maxBatch
	accept := record(bpf.PodnetEvent{Type: uint8(event.Accept), Role: uint8(event.Server), Family: 2, LocalPort: 80})
	var recs [][]byte
	for _, c := range connects(conns) {
		recs = append(recs, c, accept)
	}
	cfg := NewDefaultConfig()
	cfg.MetricsAggregation = aggregationEvents
	cfg.Events.PodnetTCPAccept.Enabled = false
	cfg.ShutdownTimeout = 400 * time.Millisecond
	logs := &gatedLogs{gate: make(chan struct{})}
	f := newFakeReceiver(t, cfg, newFakeRing(recs...), logs, new(consumertest.MetricsSink))
	f.start(t)
	require.Eventually(t, func() bool { return logs.entered.Load() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, f.Shutdown(context.Background()))
	close(logs.gate)
	f.requireStopped(t)
	assert.Equal(t, int64(conns), f.sum(t, "otelcol_podnet_events_dropped"), "the connect records not delivered")
}
