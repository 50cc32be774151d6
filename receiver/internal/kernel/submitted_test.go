package kernel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/internal/netnstest"
)

// Submitted counts every record written to the ring, so submitted == read + unread holds at any
// time. The machine's other processes keep writing events, so the records read since load are
// compared with the counter just before and just after the ring was last found empty: a record
// is counted before it can be read, and every record counted before the first reading is in
// the ring by then.
func TestSubmittedCountsEveryRecordRead(t *testing.T) {
	netnstest.RequireRoot(t)
	tr := openEvents(t, 1<<22)
	_, read := readAll(t, tr, nil)
	netnstest.LoopbackConnections(t, 200)
	// The closes finish after the connections return, later on a busy machine: read until the
	// test's own events are in (or 5 s).
	for deadline := time.Now().Add(5 * time.Second); read < 4*200 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		_, n := readAll(t, tr, nil)
		read += n
	}

	first := counters(t, tr)
	_, n := readAll(t, tr, nil)
	read += n
	last := counters(t, tr)
	t.Logf("submitted %d..%d, read %d", first.Submitted, last.Submitted, read)
	assert.Zero(t, last.ReserveFailed)
	assert.GreaterOrEqual(t, uint64(read), first.Submitted, "every record counted was read")
	assert.LessOrEqual(t, uint64(read), last.Submitted, "every record read was counted")
	assert.GreaterOrEqual(t, read, 3*200, "the test's own connections were seen (the last closes may still be under way)")
}
