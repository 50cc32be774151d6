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

// Sync re-reads both clocks.
func (c *Clock) Sync() {
	var ts unix.Timespec
	wall := time.Now().UnixNano()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return // keep the last offset; CLOCK_BOOTTIME exists on every kernel podnet loads on
	}
	c.offset = wall - ts.Nano()
}

// UnixNano converts a boot-clock reading.
func (c *Clock) UnixNano(boot uint64) uint64 {
	return uint64(int64(boot) + c.offset)
}

// FixedClock is a clock with a given offset, for tests and golden files.
func FixedClock(offset int64) *Clock { return &Clock{offset: offset} }
