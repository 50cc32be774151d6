//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// lossReporter turns counts into podnet's self-telemetry. The counter adds are safe from any
// goroutine; kernel keeps the last reading, under mu as the reader reads it (received), and is
// called by one goroutine at a time (under the kernel lock).
type lossReporter struct {
	tb   *metadata.TelemetryBuilder
	last kernel.Counters

	// The reader counts what it receives as it reads; the kernel's submitted count is read only
	// on the emitter's ticker. Published apart, a scrape between the two saw more received than
	// submitted (found by an independent check: +3,796 mid-run). So an event received is first
	// published as submitted, which it was: submitted never shows less than received + lost.
	// mu orders the two publications; submitted is what the submitted counter has been given.
	mu                       sync.Mutex
	submitted, receivedTotal uint64
	// What this run could not deliver, for the summary Shutdown logs: the counters' own totals
	// leave with the process, and a scrape before it never sees the drops of Shutdown itself.
	droppedTotal, decodeErrorsTotal uint64
}

// kernel adds the deltas of the kernel's counters, which are cumulative since load.
func (l *lossReporter) kernel(ctx context.Context, c kernel.Counters) {
	l.mu.Lock()
	l.publishSubmitted(ctx, max(c.Submitted, l.receivedTotal+c.ReserveFailed))
	l.tb.PodnetEventsLost.Add(ctx, int64(c.ReserveFailed-l.last.ReserveFailed))
	last := l.last
	l.last = c
	l.mu.Unlock()
	l.tb.PodnetConnectionsUntracked.Add(ctx, int64(c.CloseUntracked-last.CloseUntracked))
	l.tb.PodnetConnectionsCloseUnseen.Add(ctx, int64(c.CloseUnseen-last.CloseUnseen))
	l.tb.PodnetBpfRecursionMisses.Add(ctx, int64(c.RecursionMisses-last.RecursionMisses))
	l.tb.PodnetBpfRecursionCovered.Add(ctx, int64(c.RecursionCovered-last.RecursionCovered))
	l.tb.PodnetMarkedSetFull.Add(ctx, int64(c.MarkFull-last.MarkFull))
	l.tb.PodnetConnectionsSampledOut.Add(ctx, int64(c.SampledOut-last.SampledOut))
	l.tb.PodnetMetricSeriesDropped.Add(ctx, int64(c.AggregateFull-last.AggregateFull))
	l.tb.PodnetServiceBackendsTranslations.Add(ctx, int64(c.NATSeen-last.NATSeen))
	l.tb.PodnetServiceBackendsLookups.Add(ctx, int64(c.BackendLookups-last.BackendLookups))
	l.tb.PodnetServiceBackendsFound.Add(ctx, int64(c.BackendFound-last.BackendFound))
}

// publishSubmitted raises the submitted counter to total; it never goes down (a kernel reading
// older than what the reader has received is behind, not lower). Called under mu.
func (l *lossReporter) publishSubmitted(ctx context.Context, total uint64) {
	if total > l.submitted {
		l.tb.PodnetEventsSubmitted.Add(ctx, int64(total-l.submitted))
		l.submitted = total
	}
}

// fromZero makes the counters that only events move exist from the start, at 0: a dashboard or
// an alert on their increase sees "nothing dropped" rather than no data (found by an independent
// check). The kernel's counters are added at every poll, 0 included, but for submitted, which
// only grows (publishSubmitted): without a logs pipeline it stays 0, and exists all the same.
func (l *lossReporter) fromZero() {
	for _, c := range []metric.Int64Counter{
		l.tb.PodnetEventsReceived, l.tb.PodnetEventsDecodeErrors, l.tb.PodnetEventsDropped,
		l.tb.PodnetMetricSeriesDropped, l.tb.PodnetEventsSubmitted,
	} {
		c.Add(context.Background(), 0)
	}
}

func (l *lossReporter) received(n int64) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.receivedTotal += uint64(n)
	l.publishSubmitted(context.Background(), l.receivedTotal+l.last.ReserveFailed)
	l.tb.PodnetEventsReceived.Add(context.Background(), n)
}

func (l *lossReporter) decodeErrors(n int64) {
	if n > 0 {
		l.mu.Lock()
		l.decodeErrorsTotal += uint64(n)
		l.mu.Unlock()
		l.tb.PodnetEventsDecodeErrors.Add(context.Background(), n)
	}
}

func (l *lossReporter) dropped(n int64) {
	if n > 0 {
		l.mu.Lock()
		l.droppedTotal += uint64(n)
		l.mu.Unlock()
		l.tb.PodnetEventsDropped.Add(context.Background(), n)
	}
}

// logSummary says, once, at Shutdown, what this run's events came to: a warning with the
// counts when any were lost, dropped or unreadable (the self-metrics holding them end with the
// process: a scrape before Shutdown never sees what Shutdown itself could not deliver, nor the
// instance a reload replaced), else one line that none were.
func (l *lossReporter) logSummary(logger *zap.Logger) {
	l.mu.Lock()
	submitted, received, lost := l.submitted, l.receivedTotal, l.last.ReserveFailed
	dropped, malformed := l.droppedTotal, l.decodeErrorsTotal
	l.mu.Unlock()
	fields := []zap.Field{
		zap.Uint64("submitted", submitted), zap.Uint64("received", received), zap.Uint64("lost", lost),
		zap.Uint64("dropped", dropped), zap.Uint64("decode_errors", malformed),
	}
	if lost+dropped+malformed == 0 {
		logger.Info("podnet stopped: every event the kernel submitted was read, and every record the logs would have was handed to them", fields...)
		return
	}
	logger.Warn("podnet stopped: some of this run's events were not delivered "+
		"(lost: the ring was full; dropped: records, of these events or of connections found open at Start, the logs pipeline refused or Shutdown could not deliver in time; "+
		"decode_errors: malformed records)", fields...)
}

func (l *lossReporter) seriesDropped(n int64) {
	if n > 0 {
		l.tb.PodnetMetricSeriesDropped.Add(context.Background(), n)
	}
}

// warnLimiter logs each recurring problem (by its message) at most once per interval, with how
// often it happened: never a log line per event. Per message, as one shared limit let one
// problem's warnings hide every other's (found by an independent check: the metrics
// pipeline's refusals never said while the logs pipeline's were). The messages are the
// code's own constants: a handful of entries.
type warnLimiter struct {
	logger *zap.Logger
	every  time.Duration
	mu     sync.Mutex
	byMsg  map[string]*warnState
}

type warnState struct {
	last  time.Time
	count int
}

func (w *warnLimiter) warn(msg string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byMsg == nil {
		w.byMsg = map[string]*warnState{}
	}
	s := w.byMsg[msg]
	if s == nil {
		s = &warnState{}
		w.byMsg[msg] = s
	}
	s.count++
	if !s.last.IsZero() && time.Since(s.last) < w.every {
		return
	}
	w.logger.Warn(msg, zap.Error(err), zap.Int("occurrences", s.count))
	s.last, s.count = time.Now(), 0
}
