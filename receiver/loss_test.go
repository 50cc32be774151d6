//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// A scrape between the reader's receipt and the emitter's next kernel read never shows more
// received than submitted (found by an independent check: a live scrape had received ahead of
// submitted by 3,796), and the kernel's own figure still wins once it is read.
func TestLossSubmittedNeverBehindReceived(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	tb, err := metadata.NewTelemetryBuilder(tt.NewTelemetrySettings())
	require.NoError(t, err)
	l := &lossReporter{tb: tb}
	ctx := context.Background()
	counts := func() (submitted, received, lost int64) {
		return telemetrySum(t, tt, "otelcol_podnet_events_submitted"), telemetrySum(t, tt, "otelcol_podnet_events_received"),
			telemetrySum(t, tt, "otelcol_podnet_events_lost")
	}

	l.kernel(ctx, kernel.Counters{Submitted: 100, ReserveFailed: 2})
	l.received(90) // read since: the kernel has submitted more than its last reading says
	l.received(20)
	s, r, lost := counts()
	require.Equal(t, int64(110), r)
	require.GreaterOrEqual(t, s, r+lost, "submitted at a scrape before the next kernel read")
	require.Equal(t, int64(112), s, "raised to exactly what was received plus lost")

	l.kernel(ctx, kernel.Counters{Submitted: 130, ReserveFailed: 5})
	s, r, lost = counts()
	require.Equal(t, int64(130), s, "the kernel's count, once read, is the count")
	require.Equal(t, int64(5), lost)
	require.Equal(t, int64(110), r, "received is the reader's own count")
	l.received(15) // the ring drained: 130 = 125 + 5
	s, r, lost = counts()
	require.Equal(t, s, r+lost)
	require.Equal(t, int64(130), s, "never counted twice")
}

// Kernel counters that rise are warned of while they do, at most once per interval, with how
// many; nothing is said while a count stays. Events lost to a full ring: not only in the
// Shutdown summary, which a killed process never writes. Closes whose open count could not
// leave their own series (ACTIVE_UNMOVED): a wrong gauge, not silent.
func TestKernelCounterRisesAreWarnedOf(t *testing.T) {
	for _, c := range []struct {
		name          string
		set           func(*kernel.Counters, uint64)
		values        []uint64 // read after each
		message, says string
	}{
		{"ring loss", func(k *kernel.Counters, v uint64) { k.ReserveFailed = v }, []uint64{1000, 1500}, "ring buffer was full", "1000 events lost since the last reading"},
		{"unmoved closes", func(k *kernel.Counters, v uint64) { k.ActiveUnmoved = v }, []uint64{3, 3}, "podnet.tcp.connections.active", "3 closes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			core, logged := observer.New(zap.WarnLevel)
			tb, err := metadata.NewTelemetryBuilder(componenttest.NewNopTelemetrySettings())
			require.NoError(t, err)
			fk := &fakeKernel{}
			k := &kernelSide{src: fk, loss: &lossReporter{tb: tb}, warn: &warnLimiter{logger: zap.New(core), every: time.Minute}}
			k.readCounters()
			assert.Zero(t, logged.Len(), "nothing counted yet")
			for _, v := range c.values {
				c.set(&fk.counters, v)
				k.readCounters()
			}
			require.Equal(t, 1, logged.Len(), "limited to once per interval")
			entry := logged.All()[0]
			assert.Contains(t, entry.Message, c.message)
			assert.Contains(t, entry.ContextMap()["error"], c.says)
		})
	}
}

// The emitter's goroutine reads the kernel's counters while the ring reader counts what it
// received: what the reader reads of the last kernel reading is written under the same lock
// (found by an independent review, and by the race detector: make test-race runs this).
func TestLossReporterIsSafeFromTheReaderAndTheEmitter(t *testing.T) {
	tb, err := metadata.NewTelemetryBuilder(componenttest.NewNopTelemetrySettings())
	require.NoError(t, err)
	l := &lossReporter{tb: tb}
	var wg sync.WaitGroup
	wg.Go(func() { // the emitter's counters goroutine
		for i := range 20000 {
			l.kernel(t.Context(), kernel.Counters{Submitted: uint64(2 * i), ReserveFailed: uint64(i)})
		}
	})
	wg.Go(func() { // the ring reader
		for range 20000 {
			l.received(1)
		}
	})
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	assert.Equal(t, uint64(19999), l.last.ReserveFailed)
}
