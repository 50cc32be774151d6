package event

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A reading its thread was preempted in (3 ms between its two boot-clock reads) does not set
// the offset: the narrowest does, the wall clock taken as read at its middle.
func TestClockSyncKeepsTheNarrowestReading(t *testing.T) {
	const offset = int64(1_700_000_000_000_000_000)
	readings := []struct{ before, wall, after int64 }{
		{1_000, 1_000 + offset, 3_001_000},         // preempted after the wall clock's read
		{5_000_000, 5_000_050 + offset, 5_000_100}, // 100 ns wide
		{6_000_000, 6_000_000 + offset, 6_002_000}, // 2 µs wide
	}
	i := 0
	c := FixedClock(0)
	c.syncFrom(func() (int64, int64, int64, bool) {
		r := readings[i]
		i++
		return r.before, r.wall, r.after, true
	})
	assert.Equal(t, offset, c.offset)
	assert.Equal(t, clockSamples, i)
}

// No boot clock to read: the last offset stays.
func TestClockSyncKeepsTheOffsetWithoutABootClock(t *testing.T) {
	c := FixedClock(42)
	c.syncFrom(func() (int64, int64, int64, bool) { return 0, 0, 0, false })
	assert.Equal(t, int64(42), c.offset)
}
