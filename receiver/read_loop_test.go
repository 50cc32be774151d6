package podnetreceiver

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// gatedLogs is a consumer that waits for a token on gate in every call (ignoring ctx, as a
// stuck exporter would), refuses the calls listed in refuse (1-based), and keeps the rest.
type gatedLogs struct {
	consumertest.LogsSink
	gate    chan struct{}
	entered atomic.Int64
	refuse  map[int64]bool
	largest atomic.Int64
}

func (g *gatedLogs) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	n := g.entered.Add(1)
	if int64(ld.LogRecordCount()) > g.largest.Load() {
		g.largest.Store(int64(ld.LogRecordCount()))
	}
	<-g.gate
	if g.refuse[n] {
		return errors.New("refused")
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return g.LogsSink.ConsumeLogs(ctx, ld)
}

func (*gatedLogs) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

// Corrupt and truncated records are counted as decode errors and dropped; the good ones around
// them are delivered; every record read counts as received; kernel loss is exported. Nothing
// panics.
func TestReadLoopCountsMalformedRecords(t *testing.T) {
	good := bpf.PodnetEvent{Type: uint8(event.Connect), Role: uint8(event.Client), Family: 2, PeerPort: 80}
	badType := good
	badType.Type = 42
	badFamily := good
	badFamily.Family = 7
	ring := newFakeRing(record(good), record(badType), record(good)[:10], []byte{}, record(badFamily), record(good))
	logs := new(consumertest.LogsSink)
	f := newFakeReceiver(t, NewDefaultConfig(), ring, logs, nil)
	core, logged := observer.New(zap.InfoLevel)
	f.set.Logger = zap.New(core)
	f.kernel.counters = kernel.Counters{ReserveFailed: 3, Submitted: 9} // the 6 read and 3 lost
	f.start(t)
	require.Eventually(t, func() bool { return logs.LogRecordCount() == 2 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, f.Shutdown(context.Background()))
	f.requireStopped(t)
	summary := logged.FilterMessageSnippet("podnet stopped").AllUntimed()
	require.Len(t, summary, 1)
	want := map[string]any{
		"submitted": uint64(9), "received": uint64(6), "lost": uint64(3), "dropped": uint64(0), "decode_errors": uint64(4),
	}
	assert.Equal(t, want, summary[0].ContextMap(), "the run's loss, said once at Shutdown")

	assert.Equal(t, int64(4), f.sum(t, "otelcol_podnet_events_decode_errors"))
	assert.Equal(t, int64(6), f.sum(t, "otelcol_podnet_events_received"))
	assert.Equal(t, int64(3), f.sum(t, "otelcol_podnet_events_lost"))
	assert.Equal(t, int64(9), f.sum(t, "otelcol_podnet_events_submitted"), "submitted == received + lost once drained")
	assert.Zero(t, f.sum(t, "otelcol_podnet_events_dropped"))
}

// The kernel's counters cost syscalls: the emitter reads them on its own ticker, once per poll
// interval however many batches the reader hands over, and Shutdown reads them a last time
// after the ring is drained.
func TestKernelCountersAreReadOncePerInterval(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.PollInterval = time.Hour
	logs := new(consumertest.LogsSink)
	f := newFakeReceiver(t, cfg, newFakeRing(connects(20*maxBatch)...), logs, nil)
	f.start(t)
	require.Eventually(t, func() bool { return logs.LogRecordCount() == 20*maxBatch }, 10*time.Second, 5*time.Millisecond)
	f.kernel.mu.Lock()
	reads := f.kernel.counterReads
	f.kernel.counters.ReserveFailed = 7 // only the final read at Shutdown can see it
	f.kernel.mu.Unlock()
	require.NoError(t, f.Shutdown(context.Background()))

	assert.LessOrEqual(t, reads, 1, "20 batches within one poll interval: no read per batch (one at Start)")
	assert.Equal(t, int64(7), f.sum(t, "otelcol_podnet_events_lost"))
	assert.True(t, f.kernel.isClosed())
}

// gatedMetrics is gatedLogs for metrics: every call waits for a token on gate.
type gatedMetrics struct {
	consumertest.MetricsSink
	gate    chan struct{}
	entered atomic.Int64
}

func (g *gatedMetrics) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	g.entered.Add(1)
	<-g.gate
	return g.MetricsSink.ConsumeMetrics(ctx, md)
}

func (*gatedMetrics) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

// A metrics delivery that blocks (an exporter without a queue retrying a dead backend) does
// not stop the kernel's loss counters from being read: the logs lose events to the same
// backend meanwhile, and events_lost must say so then, not at Shutdown (found by an independent
// check: lost stayed 0 for a minute of loss).
func TestKernelCountersAreReadWhileAMetricsDeliveryBlocks(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.PollInterval = 5 * time.Millisecond
	cfg.MetricsInterval = 10 * time.Millisecond
	metrics := &gatedMetrics{gate: make(chan struct{})}
	f := newFakeReceiver(t, cfg, newFakeRing(), new(consumertest.LogsSink), metrics)
	k := bpf.PodnetAggKey{NetnsIno: 4026532001, CgroupId: 9001, Family: 2, PeerAddr: [16]byte{10, 1, 0, 9}, ServerPort: 8080, Role: uint8(event.Client)}
	f.kernel.aggregates = map[bpf.PodnetAggKey]bpf.PodnetAggValue{k: {Connections: 5}}
	f.start(t)
	require.Eventually(t, func() bool { return metrics.entered.Load() == 1 }, 5*time.Second, time.Millisecond, "a metrics delivery under way")

	f.kernel.mu.Lock()
	f.kernel.counters = kernel.Counters{ReserveFailed: 40, Submitted: 40}
	f.kernel.mu.Unlock()
	require.Eventually(t, func() bool { return f.sum(t, "otelcol_podnet_events_lost") == 40 }, 5*time.Second, 5*time.Millisecond,
		"events_lost follows the kernel while the delivery blocks")
	assert.Equal(t, int64(1), metrics.entered.Load(), "the delivery still blocks")

	close(metrics.gate)
	require.NoError(t, f.Shutdown(context.Background()))
	f.requireStopped(t)
}

// Each recurring warning is limited on its own: one problem's warnings never hide another's
// (found by an independent check: with both pipelines refusing, only the logs pipeline's
// refusals were ever logged, with the metrics pipeline's occurrences in their count).
func TestWarningsAreLimitedPerProblem(t *testing.T) {
	core, logged := observer.New(zap.WarnLevel)
	w := &warnLimiter{logger: zap.New(core), every: time.Hour}
	for range 5 {
		w.warn("podnet: the logs pipeline refused a batch", errors.New("refused"))
		w.warn("podnet: the metrics pipeline refused a batch", errors.New("refused"))
	}
	assert.Equal(t, 1, logged.FilterMessage("podnet: the logs pipeline refused a batch").Len())
	metrics := logged.FilterMessage("podnet: the metrics pipeline refused a batch").AllUntimed()
	require.Len(t, metrics, 1, "said once within the interval, however often the other is")
	assert.Equal(t, int64(1), metrics[0].ContextMap()["occurrences"])
}

// A stop that lands while a slow consumer holds a delivery, with more than a batch still in
// the ring: Shutdown detaches the programs, then drains the ring until it is empty, and every
// event is either delivered or counted dropped (here one refused batch), in batches of at most
// maxBatch.
func TestShutdownDeliversTheWholeBacklog(t *testing.T) {
	const total = 12*maxBatch + 17
	ring := newFakeRing(connects(total)...)
	logs := &gatedLogs{gate: make(chan struct{}), refuse: map[int64]bool{2: true}}
	f := newFakeReceiver(t, NewDefaultConfig(), ring, logs, nil)
	var detachedBeforeDrain atomic.Bool
	ring.onFlush = func() { detachedBeforeDrain.Store(f.kernel.isDetached()) }
	f.start(t)
	reader := f.run.reader
	require.Eventually(t, func() bool { return logs.entered.Load() == 1 }, 5*time.Second, time.Millisecond)
	// The hand-off is full and the reader waits for a free batch: the rest is in the ring.
	require.Eventually(t, func() bool { return len(f.run.handoff.free) == 0 }, 5*time.Second, time.Millisecond)
	assert.Greater(t, ring.len(), maxBatch, "the backlog at stop is larger than a batch")

	done := make(chan error)
	go func() { done <- f.Shutdown(context.Background()) }()
	require.Eventually(t, reader.stopping.Load, 5*time.Second, time.Millisecond, "Shutdown began during a delivery")
	close(logs.gate)
	require.NoError(t, <-done)
	f.requireStopped(t)

	dropped := f.sum(t, "otelcol_podnet_events_dropped")
	assert.Equal(t, int64(maxBatch), dropped, "the refused batch")
	assert.Equal(t, total, logs.LogRecordCount()+int(dropped), "every event delivered or counted")
	assert.Equal(t, int64(total), f.sum(t, "otelcol_podnet_events_received"))
	assert.Zero(t, ring.len(), "the ring is drained")
	assert.True(t, detachedBeforeDrain.Load(), "the programs were detached before the final drain")
	assert.LessOrEqual(t, logs.largest.Load(), int64(maxBatch))
	assert.True(t, f.kernel.isClosed())
}

// A consumer that never returns: Shutdown returns by its context's deadline, counts
// everything read and not delivered as dropped (the stuck batch, the hand-off, the rest of
// the ring), and detaches. When the consumer finally returns nothing is counted twice. The
// collector's own shutdown passes a context without a deadline: shutdown_timeout bounds it
// the same way (it used to wait for the consumer for ever).
func TestShutdownReturnsByItsDeadlineWhenTheConsumerBlocks(t *testing.T) {
	const timeout = 300 * time.Millisecond
	t.Run("context deadline", func(t *testing.T) {
		shutdownReturnsWhenTheConsumerBlocks(t, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), timeout)
		}, NewDefaultConfig(), timeout)
	})
	t.Run("shutdown_timeout", func(t *testing.T) {
		cfg := NewDefaultConfig()
		cfg.ShutdownTimeout = timeout
		shutdownReturnsWhenTheConsumerBlocks(t, func() (context.Context, context.CancelFunc) {
			return context.Background(), func() {}
		}, cfg, timeout)
	})
}

// shutdownReturnsWhenTheConsumerBlocks shuts the receiver down with the context shutdownCtx
// makes (when Shutdown is called), a consumer blocking, and expects it back after timeout.
func shutdownReturnsWhenTheConsumerBlocks(t *testing.T, shutdownCtx func() (context.Context, context.CancelFunc), cfg *Config, timeout time.Duration) {
	const total = 12*maxBatch + 17
	ring := newFakeRing(connects(total)...)
	logs := &gatedLogs{gate: make(chan struct{})}
	f := newFakeReceiver(t, cfg, ring, logs, nil)
	core, logged := observer.New(zap.InfoLevel)
	f.set.Logger = zap.New(core)
	f.start(t)
	require.Eventually(t, func() bool { return logs.entered.Load() == 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := shutdownCtx()
	defer cancel()
	began := time.Now()
	require.NoError(t, f.Shutdown(ctx))
	took := time.Since(began)
	assert.GreaterOrEqual(t, took, timeout, "Shutdown waited for the deadline")
	assert.Less(t, took, timeout+time.Second, "and returned by it (plus counting what was left)")

	assert.Equal(t, int64(total), f.sum(t, "otelcol_podnet_events_received"))
	assert.Equal(t, int64(total), f.sum(t, "otelcol_podnet_events_dropped"), "nothing was delivered")
	assert.Zero(t, ring.len(), "the rest of the ring was counted, not left")
	assert.True(t, f.kernel.isClosed(), "detached at the deadline")
	// The drops of Shutdown itself leave with the process's counters: the log says them.
	summary := logged.FilterMessageSnippet("podnet stopped: some of this run's events were not delivered").AllUntimed()
	require.Len(t, summary, 1, "one summary at Shutdown")
	assert.Equal(t, zap.WarnLevel, summary[0].Level)
	assert.Equal(t, uint64(total), summary[0].ContextMap()["dropped"])
	assert.Equal(t, uint64(total), summary[0].ContextMap()["received"])

	close(logs.gate) // the consumer returns at last (refusing: its context ended)
	f.requireStopped(t)
	assert.Equal(t, int64(total), f.sum(t, "otelcol_podnet_events_dropped"), "not counted twice")
	assert.Zero(t, logs.LogRecordCount())
}

// Every ConsumeLogs and ConsumeMetrics goes through the collector's ObsReport, so
// otelcol_receiver_accepted_log_records and its siblings exist for podnet.
func TestStandardReceiverTelemetry(t *testing.T) {
	t.Run("refused logs", func(t *testing.T) {
		f := newFakeReceiver(t, NewDefaultConfig(), newFakeRing(connects(10)...), consumertest.NewErr(errors.New("full")), nil)
		f.start(t)
		require.Eventually(t, func() bool { return f.sum(t, "otelcol_receiver_refused_log_records") == 10 }, 5*time.Second, 5*time.Millisecond)
		require.NoError(t, f.Shutdown(context.Background()))
		assert.Zero(t, f.sum(t, "otelcol_receiver_accepted_log_records"))
		assert.Equal(t, int64(10), f.sum(t, "otelcol_podnet_events_dropped"))
	})
	t.Run("accepted logs and metrics", func(t *testing.T) {
		logs, metrics := new(consumertest.LogsSink), new(consumertest.MetricsSink)
		cfg := NewDefaultConfig()
		cfg.MetricsAggregation = aggregationEvents // metrics from the fake ring's events
		f := newFakeReceiver(t, cfg, newFakeRing(connects(10)...), logs, metrics)
		f.start(t)
		require.Eventually(t, func() bool { return logs.LogRecordCount() == 10 }, 5*time.Second, 5*time.Millisecond)
		require.NoError(t, f.Shutdown(context.Background()))
		assert.Equal(t, int64(10), f.sum(t, "otelcol_receiver_accepted_log_records"))
		assert.Zero(t, f.sum(t, "otelcol_receiver_refused_log_records"))
		require.Positive(t, metrics.DataPointCount(), "the final emission")
		assert.Equal(t, int64(metrics.DataPointCount()), f.sum(t, "otelcol_receiver_accepted_metric_points"))
	})
}

// With in-kernel aggregation there is no ring reader at all: the emitter drains the
// aggregates on its ticker and a last time at Shutdown.
func TestKernelAggregationRunsNoReader(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.MetricsAggregation = aggregationKernel
	metrics := new(consumertest.MetricsSink)
	f := newFakeReceiver(t, cfg, nil, nil, metrics)
	k := bpf.PodnetAggKey{NetnsIno: 4026532001, CgroupId: 9001, Family: 2, PeerAddr: [16]byte{10, 1, 0, 9}, ServerPort: 8080, Role: uint8(event.Client)}
	f.kernel.aggregates = map[bpf.PodnetAggKey]bpf.PodnetAggValue{k: {Connections: 5}}
	f.start(t)
	assert.Nil(t, f.run.reader)
	assert.Nil(t, f.run.handoff)
	require.NoError(t, f.Shutdown(context.Background()))
	f.requireStopped(t)

	v, ok := point(t, metrics.AllMetrics(), 4026532001, "podnet.tcp.connections", map[string]any{
		"podnet.connection.role": "client", "network.type": "ipv4", "network.peer.address": "10.1.0.9",
		"server.port": int64(8080), "podnet.peer.k8s.namespace.name": "shop", "podnet.peer.k8s.pod.name": "web-0",
	})
	require.True(t, ok)
	assert.Equal(t, 5.0, v)
}

// Final metrics the pipeline refuses at Shutdown are said to be lost, not "re-sent next
// interval": there is none (found by an independent check), and even after the interval's
// warnings, which are rate-limited, it is said.
func TestRefusedFinalMetricsAreSaidLost(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.MetricsAggregation = aggregationKernel
	cfg.MetricsInterval = 20 * time.Millisecond
	core, logged := observer.New(zap.WarnLevel)
	f := newFakeReceiver(t, cfg, nil, nil, consumertest.NewErr(errors.New("backend away")))
	f.set.Logger = zap.New(core)
	k := bpf.PodnetAggKey{NetnsIno: 4026532001, CgroupId: 9001, Family: 2, PeerAddr: [16]byte{10, 1, 0, 9}, ServerPort: 8080, Role: uint8(event.Client)}
	f.kernel.aggregates = map[bpf.PodnetAggKey]bpf.PodnetAggValue{k: {Connections: 5}}
	f.start(t)
	require.Eventually(t, func() bool { return logged.FilterMessageSnippet("re-sent next interval").Len() > 0 },
		5*time.Second, 5*time.Millisecond, "an interval's refusal")
	require.NoError(t, f.Shutdown(context.Background()))
	f.requireStopped(t)
	assert.Equal(t, 1, logged.FilterMessageSnippet("final metrics (since the last interval) were not delivered").Len())
}

// A logs consumer that never answers does not take the final metrics with it: they come from
// the kernel's aggregates, and the logs get only three quarters of Shutdown's time (found by an
// independent check: with a stuck logs exporter the last interval's metrics were lost, uncounted).
func TestFinalMetricsDoNotWaitForStuckLogs(t *testing.T) {
	const timeout = 400 * time.Millisecond
	cfg := NewDefaultConfig()
	cfg.ShutdownTimeout = timeout
	logs, metrics := &gatedLogs{gate: make(chan struct{})}, new(consumertest.MetricsSink)
	f := newFakeReceiver(t, cfg, newFakeRing(connects(3*maxBatch)...), logs, metrics)
	k := bpf.PodnetAggKey{NetnsIno: 4026532001, CgroupId: 9001, Family: 2, PeerAddr: [16]byte{10, 1, 0, 9}, ServerPort: 8080, Role: uint8(event.Client)}
	f.kernel.aggregates = map[bpf.PodnetAggKey]bpf.PodnetAggValue{k: {Connections: 5}}
	f.start(t)
	require.NotNil(t, f.run.reader, "logs come from the ring")
	require.Eventually(t, func() bool { return logs.entered.Load() == 1 }, 5*time.Second, time.Millisecond)

	began := time.Now()
	require.NoError(t, f.Shutdown(context.Background()))
	assert.Less(t, time.Since(began), timeout+time.Second)
	v, ok := point(t, metrics.AllMetrics(), 4026532001, "podnet.tcp.connections", map[string]any{
		"podnet.connection.role": "client", "network.type": "ipv4", "network.peer.address": "10.1.0.9",
		"server.port": int64(8080), "podnet.peer.k8s.namespace.name": "shop", "podnet.peer.k8s.pod.name": "web-0",
	})
	require.True(t, ok, "the final metrics were delivered")
	assert.Equal(t, 5.0, v)
	assert.Equal(t, int64(3*maxBatch), f.sum(t, "otelcol_podnet_events_dropped"), "the logs counted dropped")
	close(logs.gate)
	f.requireStopped(t)
}

// With `metrics_aggregation: events`, the metrics are counted from the events as they are read,
// not after the logs pipeline took them: a logs consumer that blocks past Shutdown's deadline
// leaves every connection read in the final metrics, those of the batches waiting behind it and
// those still in the ring too (found by an independent review: 1,024 of 3,072, with
// metric_series_dropped 0).
func TestEventsModeMetricsDoNotWaitForStuckLogs(t *testing.T) {
	const total = 3*maxBatch + handoffDepth*maxBatch + 17 // more than the hand-off holds: some stay in the ring
	cfg := NewDefaultConfig()
	cfg.MetricsAggregation = aggregationEvents
	cfg.ShutdownTimeout = 400 * time.Millisecond
	logs, metrics := &gatedLogs{gate: make(chan struct{})}, new(consumertest.MetricsSink)
	f := newFakeReceiver(t, cfg, newFakeRing(connects(total)...), logs, metrics)
	f.start(t)
	require.Eventually(t, func() bool { return logs.entered.Load() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, f.Shutdown(context.Background()))
	close(logs.gate)
	f.requireStopped(t)

	mds := metrics.AllMetrics()
	require.NotEmpty(t, mds)
	connections := 0.0
	for _, rm := range mds[len(mds)-1].ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Name() == "podnet.tcp.connections" {
					for _, dp := range m.Sum().DataPoints().All() {
						connections += float64(dp.IntValue())
					}
				}
			}
		}
	}
	assert.Equal(t, float64(total), connections, "every connect read is in the final metrics")
	assert.Equal(t, int64(total), f.sum(t, "otelcol_podnet_events_received"))
	assert.Equal(t, int64(total), f.sum(t, "otelcol_podnet_events_dropped"), "none reached the logs")
	assert.Zero(t, f.sum(t, "otelcol_podnet_metric_series_dropped"))
}

// The counters exist from Start, at 0: "nothing dropped" is data, not a gap (found by an
// independent check: events_dropped and decode_errors never appeared), and the kernel's are
// not held back until the first poll_interval has passed (found by another: 5 of 18 series
// there 2 s after Start with 30 s).
func TestLossCountersExistFromStart(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.PollInterval = time.Hour
	f := newFakeReceiver(t, cfg, newFakeRing(), new(consumertest.LogsSink), nil)
	f.start(t)
	defer func() { require.NoError(t, f.Shutdown(context.Background())) }()
	for _, name := range []string{
		"otelcol_podnet_events_received", "otelcol_podnet_events_decode_errors",
		"otelcol_podnet_events_dropped", "otelcol_podnet_metric_series_dropped", "otelcol_podnet_events_submitted",
	} {
		_, err := f.tt.GetMetric(name)
		assert.NoError(t, err, "%s exists before any event", name)
	}
	for _, name := range []string{
		"otelcol_podnet_events_lost", "otelcol_podnet_connections_untracked", "otelcol_podnet_connections_close_unseen",
		"otelcol_podnet_bpf_recursion_misses", "otelcol_podnet_bpf_recursion_covered", "otelcol_podnet_connections_sampled_out",
	} {
		assert.Eventually(t, func() bool { _, err := f.tt.GetMetric(name); return err == nil }, 5*time.Second, time.Millisecond,
			"%s exists before the first poll_interval has passed", name)
	}
}

// The last metrics hold what was counted up to Shutdown's detach and are stamped then, however
// long the logs take to drain after it: no point claims a time the programs did not count
// (found by an independent check: the final point of a rollout stamped 2.7 s after the
// detach, as if the connections of those seconds had not happened). Nor do intervals that end
// during the drain emit points stamped after it.
func TestFinalMetricsAreStampedAtTheDetach(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.MetricsInterval, cfg.PollInterval = 20*time.Millisecond, 20*time.Millisecond
	logs, metrics := &gatedLogs{gate: make(chan struct{})}, new(consumertest.MetricsSink)
	f := newFakeReceiver(t, cfg, newFakeRing(connects(3*maxBatch)...), logs, metrics)
	k := bpf.PodnetAggKey{NetnsIno: 4026532001, CgroupId: 9001, Family: 2, PeerAddr: [16]byte{10, 1, 0, 9}, ServerPort: 8080, Role: uint8(event.Client)}
	f.kernel.aggregates = map[bpf.PodnetAggKey]bpf.PodnetAggValue{k: {Connections: 5}}
	f.start(t)
	require.Eventually(t, func() bool { return logs.entered.Load() == 1 }, 5*time.Second, time.Millisecond)

	done := make(chan error)
	go func() { done <- f.Shutdown(context.Background()) }()
	require.Eventually(t, f.kernel.isDetached, 5*time.Second, time.Millisecond)
	// Intervals pass while the logs hold the drain: the counters are read once per interval.
	reads := f.kernel.counterReadCount()
	require.Eventually(t, func() bool { return f.kernel.counterReadCount() >= reads+3 }, 5*time.Second, time.Millisecond)
	released := time.Now()
	close(logs.gate)
	require.NoError(t, <-done)
	f.requireStopped(t)

	all := metrics.AllMetrics()
	require.NotEmpty(t, all)
	for _, md := range all {
		for _, ts := range pointTimes(md) {
			assert.True(t, ts.AsTime().Before(released), "a point stamped %v, after the detach (logs released at %v)", ts.AsTime(), released)
		}
	}
	v, ok := point(t, all, 4026532001, "podnet.tcp.connections", map[string]any{
		"podnet.connection.role": "client", "network.type": "ipv4", "network.peer.address": "10.1.0.9",
		"server.port": int64(8080), "podnet.peer.k8s.namespace.name": "shop", "podnet.peer.k8s.pod.name": "web-0",
	})
	require.True(t, ok, "the final metrics were delivered")
	assert.Equal(t, 5.0, v)
}

// countingRefusal refuses every batch and counts the calls.
type countingRefusal struct{ calls atomic.Int64 }

func (c *countingRefusal) ConsumeLogs(context.Context, plog.Logs) error {
	c.calls.Add(1)
	return errors.New("data refused due to high memory usage")
}

func (*countingRefusal) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

// A logs pipeline that keeps refusing (a memory_limiter over its limit) is offered a batch
// now and then, not every one: the others are counted refused and dropped without their
// records being built, which at a node's event rate made garbage faster than the GC could
// collect under GOMEMLIMIT (found by an independent check: OOM-killed while refusing). Every
// event is still counted: dropped and refused alike.
func TestARefusingLogsPipelineIsNotOfferedEveryBatch(t *testing.T) {
	const total = 20 * maxBatch
	logs := &countingRefusal{}
	f := newFakeReceiver(t, NewDefaultConfig(), newFakeRing(connects(total)...), logs, nil)
	f.start(t)
	require.Eventually(t, func() bool { return f.sum(t, "otelcol_podnet_events_dropped") == total }, 5*time.Second, time.Millisecond)
	require.NoError(t, f.Shutdown(context.Background()))
	assert.Less(t, logs.calls.Load(), int64(total/maxBatch), "batches offered to a pipeline that keeps refusing")
	assert.GreaterOrEqual(t, logs.calls.Load(), int64(2))
	assert.Equal(t, int64(total), f.sum(t, "otelcol_receiver_refused_log_records"))
	assert.Equal(t, int64(total), f.sum(t, "otelcol_podnet_events_received"))
}

// fanOut is a collector's fan-out to two logs pipelines, one of which always fails (an exporter
// whose backend is down, no queue): the collector's answer is that pipeline's error.
type fanOut struct {
	healthy consumertest.LogsSink
	calls   atomic.Int64
}

func (f *fanOut) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	f.calls.Add(1)
	return errors.Join(f.healthy.ConsumeLogs(ctx, ld), errors.New("Permanent error: rpc error: code = Unavailable desc = connection refused"))
}

func (*fanOut) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

// A pipeline that refuses for another reason than memory (an exporter that fails) is offered
// every batch: the collector may be fanning podnet's batches out to pipelines that take them.
// Found by an independent check: held back like a memory_limiter's refusals, a healthy file
// exporter beside a dead one got 435 of 1,640 records.
func TestAFailingPipelineOfAFanOutIsOfferedEveryBatch(t *testing.T) {
	const total = 20 * maxBatch
	logs := &fanOut{}
	f := newFakeReceiver(t, NewDefaultConfig(), newFakeRing(connects(total)...), logs, nil)
	f.start(t)
	require.Eventually(t, func() bool { return f.sum(t, "otelcol_podnet_events_dropped") == total }, 5*time.Second, time.Millisecond)
	require.NoError(t, f.Shutdown(context.Background()))
	assert.Equal(t, total, logs.healthy.LogRecordCount(), "records the healthy pipeline got")
	assert.Equal(t, int64(total), f.sum(t, "otelcol_receiver_refused_log_records"))
}

// The pacing itself: one memory_limiter refusal alone does not hold batches back; two in a row
// hold them for 50 ms, doubling to 1 s while refusals go on; a batch taken ends it, and so does
// any other refusal (a fan-out's failing exporter), which holds nothing back.
func TestRefusalBackoff(t *testing.T) {
	var r refusalBackoff
	t0 := time.Unix(1000, 0)
	refused := fmt.Errorf("a pipeline: %w", errors.New(memoryRefusal))
	failed := errors.New("Permanent error: rpc error: code = Unavailable desc = connection refused")
	for range 10 {
		r.answered(failed, t0)
	}
	assert.NoError(t, r.holding(t0), "an exporter's failure")
	r.answered(errors.Join(failed, refused), t0)
	r.answered(errors.Join(failed, refused), t0)
	assert.Error(t, r.holding(t0), "a memory_limiter's refusal beside an exporter's failure")
	r.answered(failed, t0)
	assert.NoError(t, r.holding(t0), "the memory_limiter took it")
	r.answered(refused, t0)
	assert.NoError(t, r.holding(t0), "one refusal")
	r.answered(refused, t0)
	assert.ErrorIs(t, r.holding(t0.Add(49*time.Millisecond)), refused)
	assert.NoError(t, r.holding(t0.Add(50*time.Millisecond)))
	for range 10 {
		r.answered(refused, t0)
	}
	assert.ErrorIs(t, r.holding(t0.Add(999*time.Millisecond)), refused, "up to 1 s")
	assert.NoError(t, r.holding(t0.Add(time.Second)))
	r.answered(nil, t0)
	assert.NoError(t, r.holding(t0))
	r.answered(refused, t0)
	assert.NoError(t, r.holding(t0), "a taken batch starts the count again")
}

// A record's ObservedTimestamp is when podnet read it (its batch, at most a poll_interval), as
// the README says, not when the pipeline got to its batch behind a consumer that held the one before (an exporter's full
// queue, a memory_limiter's wait): found by an independent review, 2 s late behind a 2 s call.
func TestObservedTimestampIsWhenTheRecordWasRead(t *testing.T) {
	ring := newFakeRing(record(bpf.PodnetEvent{Type: uint8(event.Connect), Role: uint8(event.Client), Family: 2, PeerPort: 1}))
	logs := &gatedLogs{gate: make(chan struct{}, 2)}
	f := newFakeReceiver(t, NewDefaultConfig(), ring, logs, nil)
	f.start(t)
	require.Eventually(t, func() bool { return logs.entered.Load() == 1 }, 5*time.Second, time.Millisecond, "the first batch is held")
	ring.mu.Lock()
	ring.records = append(ring.records, record(bpf.PodnetEvent{Type: uint8(event.Connect), Role: uint8(event.Client), Family: 2, PeerPort: 2}))
	ring.mu.Unlock()
	ring.signal()
	require.Eventually(t, func() bool { return len(f.run.handoff.ready) == 1 }, 5*time.Second, time.Millisecond,
		"the second is read and handed on")
	read := time.Now()
	// The consumer holds the first batch a while after the second was read.
	for time.Since(read) < 50*time.Millisecond {
		time.Sleep(5 * time.Millisecond)
	}
	released := time.Now()
	logs.gate <- struct{}{}
	logs.gate <- struct{}{}
	require.Eventually(t, func() bool { return logs.LogRecordCount() == 2 }, 5*time.Second, time.Millisecond)
	require.NoError(t, f.Shutdown(context.Background()))
	for _, ld := range logs.AllLogs() {
		lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
		port, _ := lr.Attributes().Get("network.peer.port")
		observed := lr.ObservedTimestamp().AsTime()
		assert.True(t, observed.Before(read), "record %d: observed %v, after it was handed on (%v)", port.Int(), observed, read)
		assert.True(t, observed.Before(released), "record %d: observed when the pipeline got to it", port.Int())
	}
}
