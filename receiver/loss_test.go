//go:build linux

package podnetreceiver

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

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
