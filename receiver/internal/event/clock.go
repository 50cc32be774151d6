package event

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock converts the kernel's CLOCK_BOOTTIME (bpf_ktime_get_boot_ns) to Unix time. The offset
// between the two clocks moves when NTP steps the wall clock or the machine suspends, so the
// receiver calls Sync once per poll rather than once at start.
type Clock struct {
	offset int64 // wall - boot, in ns
}

// NewClock returns a synchronised clock.
func NewClock() *Clock {
	c := &Clock{}
	c.Sync()
	return c
}

// clockSamples is how many readings Sync takes to find one its thread was not preempted in.
const clockSamples = 3

// Sync re-reads both clocks: the wall clock between two boot-clock readings, keeping the
// offset of the closest pair. One pair alone took the offset wrong by however long the thread
// was preempted between its two reads, milliseconds under load, and every record of that poll
// with it (an independent check found connects stamped after their own close).
func (c *Clock) Sync() {
	c.syncFrom(readClocks)
}

// readClocks reads the boot clock, the wall clock and the boot clock again; ok false when the
// boot clock cannot be read (it exists on every kernel podnet loads on).
func readClocks() (before, wall, after int64, ok bool) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0, 0, 0, false
	}
	before = ts.Nano()
	wall = time.Now().UnixNano()
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0, 0, 0, false
	}
	return before, wall, ts.Nano(), true
}

// syncFrom sets the offset from the narrowest of clockSamples readings, the wall clock taken as
// read halfway between its two boot-clock readings; it keeps the last offset when none can be read.
func (c *Clock) syncFrom(read func() (before, wall, after int64, ok bool)) {
	best, found := int64(-1), false
	var offset int64
	for range clockSamples {
		before, wall, after, ok := read()
		if !ok {
			continue
		}
		if width := after - before; !found || width < best {
			best, found = width, true
			offset = wall - (before + width/2)
		}
	}
	if found {
		c.offset = offset
	}
}

// UnixNano converts a boot-clock reading.
func (c *Clock) UnixNano(boot uint64) uint64 {
	return uint64(int64(boot) + c.offset)
}

// FixedClock is a clock with a given offset, for tests and golden files.
func FixedClock(offset int64) *Clock { return &Clock{offset: offset} }
