package kernel

import (
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
)

// A reader blocked with a long deadline is woken once the backlog reaches the mark (a quarter
// of the ring), however many CPUs submit at once: submitters can jump over any window at the
// mark, so every submission at or past it may wake (rate-limited), not only the one crossing it.
func TestBlockedReaderWokenPastTheMark(t *testing.T) {
	netw := netnstest.NewNetwork(t, 67)
	pod := netw.AddPod()
	const ring = 1 << 16 // mark: 16 KiB, ~120 events, ~30 connections
	tr := openEvents(t, ring)
	_, _ = readAll(t, tr, nil)

	woke := make(chan time.Time, 1)
	go func() {
		var rec ringbuf.Record
		tr.Events().SetDeadline(time.Now().Add(time.Minute))
		if err := tr.Events().ReadInto(&rec); err == nil {
			woke <- time.Now()
		}
		close(woke)
	}()
	time.Sleep(100 * time.Millisecond) // the reader is blocked in epoll by now

	var l load
	l.run(t, pod, 8, 300*time.Millisecond) // ~thousands of events, far past the mark
	sent := time.Now()
	select {
	case at, ok := <-woke:
		require.True(t, ok, "ReadInto failed")
		assert.WithinDuration(t, sent, at, 2*time.Second, "woken while the load ran, not at the deadline")
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked reader was not woken with the backlog past the mark")
	}
}
