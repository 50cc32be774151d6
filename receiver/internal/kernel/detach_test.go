package kernel

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
)

// After Detach no program runs any more: the counters stop, and the ring holds exactly what
// was submitted, although connections kept being made while it detached.
func TestDetachLeavesEveryEventInTheRing(t *testing.T) {
	netnstest.RequireRoot(t)
	tr := openEvents(t, 1<<24)
	addr, stopServer := netnstest.LoopbackServer(t)
	defer stopServer()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := net.Dial("tcp", addr); err == nil {
					_ = c.Close()
				}
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	require.Eventually(t, func() bool { return counters(t, tr).Submitted > 4000 }, 10*time.Second, 5*time.Millisecond,
		"the connections are submitted")

	require.NoError(t, tr.Detach()) // the generator is still connecting
	detached := counters(t, tr)
	_, read := readAll(t, tr, nil)
	last := counters(t, tr)

	assert.Zero(t, last.ReserveFailed, "the ring is large enough for this test")
	assert.Equal(t, detached.Submitted, last.Submitted, "nothing is submitted after Detach returns")
	assert.Equal(t, last.Submitted, uint64(read), "the ring holds every event submitted")
	require.NoError(t, tr.Close())
}
