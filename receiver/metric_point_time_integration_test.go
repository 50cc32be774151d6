package podnetreceiver

import (
	"net"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/internal/netnstest"
)

// A metrics point holds only connections made before its time. Stamped before the drain that
// takes its interval, points held the connections the kernel counted until the drain's swap,
// which waits for a grace period (found by an independent check: 60 of 63 points held up to 4
// connections made up to 18 ms after their time, at 190 connections/s); stamped after the whole
// drain instead, they lacked the connections made in its last ~30 ms (found by the next check).
// Here a client connects without pause while the metrics are emitted every 50 ms, in both
// aggregation modes: every point's podnet.tcp.connections is at most the number of connect()
// calls begun before its time, and, counted by the kernel as they are made, at least the number
// of those that had returned 2 ms before it (the drain reads the clock just after its swap);
// and so does the last, Shutdown's, in both modes, the client connecting until after it.
func TestMetricPointsHoldNoConnectionMadeAfterTheirTime(t *testing.T) {
	netnstest.RequireRoot(t)
	netw := netnstest.NewNetwork(t, 44)
	client, server := netw.AddPod(), netw.AddPod()
	addr := netip.AddrPortFrom(server.IPv4, 8080)
	server.AcceptAll(t, addr, nil)
	for _, aggregation := range []string{aggregationKernel, aggregationEvents} {
		t.Run(aggregation, func(t *testing.T) {
			sink, stop := startMetricsOnlyWith(t, aggregation, func(cfg *Config) { cfg.MetricsInterval = 50 * time.Millisecond })

			// The client connects until after Shutdown, which emits a last point: it too
			// holds every connection that ended before its time (found by an independent
			// check: stamped when the programs' detach ended, ~40 ms after they stopped
			// counting, it lacked those).
			var began, done []time.Time // each connect()'s start, before the call, and its return
			stopClient := make(chan struct{})
			clientErr := make(chan error, 1)
			go func() {
				clientErr <- client.Do(func() error {
					for {
						select {
						case <-stopClient:
							return nil
						default:
						}
						at := time.Now()
						c, err := net.Dial("tcp", addr.String())
						if err != nil {
							return err
						}
						began, done = append(began, at), append(done, time.Now())
						_ = c.Close()
					}
				})
			}()
			time.Sleep(2 * time.Second)
			stop()
			close(stopClient)
			require.NoError(t, <-clientErr)

			points, late, missing := 0, 0, 0
			var worst, worstMissing time.Duration
			all := sink.AllMetrics()
			for i, md := range all {
				at, counted, ok := connectionsOf(md, client.NetnsInode())
				if !ok {
					continue
				}
				points++
				last := i == len(all)-1 // Shutdown's, exact in both modes (the ring is read to its end)
				before := sort.Search(len(began), func(i int) bool { return began[i].After(at) })
				if counted > int64(before) {
					late++
					worst = max(worst, began[counted-1].Sub(at))
				}
				returned := sort.Search(len(done), func(i int) bool { return done[i].After(at.Add(-2 * time.Millisecond)) })
				if (aggregation == aggregationKernel || last) && counted < int64(returned) {
					missing++
					worstMissing = max(worstMissing, at.Sub(done[counted]))
				}
			}
			t.Logf("%d connections, %d points", len(began), points)
			require.Greater(t, points, 10, "points emitted while the client connected")
			assert.Zero(t, late, "points holding connections begun after their time (the latest %v after)", worst)
			assert.Zero(t, missing, "points lacking connections made before their time (the earliest %v before)", worstMissing)
		})
	}
}

// connectionsOf sums one emission's podnet.tcp.connections points of a network namespace, and
// says their time.
func connectionsOf(md pmetric.Metrics, netns uint32) (at time.Time, sum int64, ok bool) {
	for _, rm := range md.ResourceMetrics().All() {
		if _, mine := inNetns(rm.Resource(), []uint32{netns}); !mine {
			continue
		}
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Name() != "podnet.tcp.connections" {
					continue
				}
				for _, dp := range m.Sum().DataPoints().All() {
					at, sum, ok = dp.Timestamp().AsTime(), sum+dp.IntValue(), true
				}
			}
		}
	}
	return at, sum, ok
}
