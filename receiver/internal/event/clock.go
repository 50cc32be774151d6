package event

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Clock converts the kernel's CLOCK_BOOTTIME (bpf_ktime_get_boot_ns) to Unix time. The offset
// between the two clocks moves when NTP steps the wall clock or the machine suspends, so the
// receiver calls Sync once per poll rather than once at start.
type Clock struct {
	offset int64 // wall - boot, in ns
	// timens is how far this process's boot clock runs ahead of the kernel's, the one BPF
	// programs read: a time namespace's boottime offset (CRIU restores containers in one).
	// Fixed for the life of the namespace. Not taken off, every record's time was off by it
	// (found by an independent check: -1000 s under `unshare --time --boottime 1000`).
	timens int64
}

// NewClock returns a synchronised clock.
func NewClock() *Clock {
	c := &Clock{timens: timeNamespaceBootOffset(timensOffsetsFile)}
	c.Sync()
	return c
}

// timensOffsetsFile lists the offsets of this process's time namespace (of the namespace its
// children get, which is its own for any process but one that has just called unshare itself).
const timensOffsetsFile = "/proc/self/timens_offsets"

// timeNamespaceBootOffset reads the boottime offset from a timens_offsets file ("boottime
// <seconds> <nanoseconds>"); 0 without one (a kernel without time namespaces) or when it
// cannot be read, which only a process outside any time namespace but the initial one sees.
func timeNamespaceBootOffset(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		var secs, nanos int64
		if strings.HasPrefix(lines.Text(), "boottime ") {
			if _, err := fmt.Sscanf(lines.Text(), "boottime %d %d", &secs, &nanos); err == nil {
				return secs*int64(time.Second) + nanos
			}
		}
	}
	return 0
}

// clockSamples is how many readings Sync takes to find one its thread was not preempted in.
const clockSamples = 3

// Sync re-reads both clocks: the wall clock between two boot-clock readings, keeping the
// offset of the closest pair. One pair alone took the offset wrong by however long the thread
// was preempted between its two reads, milliseconds under load, and every record of that poll
// with it (an independent check found connects stamped after their own close).
func (c *Clock) Sync() {
	c.syncFrom(c.kernelClocks)
}

// kernelClocks is readClocks with the boot clock as the kernel's (outside any time namespace).
func (c *Clock) kernelClocks() (before, wall, after int64, ok bool) {
	before, wall, after, ok = readClocks()
	return before - c.timens, wall, after - c.timens, ok
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
