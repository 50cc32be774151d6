package event

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
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

// A time namespace's boottime offset is read from its timens_offsets file; none, 0.
func TestTimeNamespaceBootOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timens_offsets")
	require.NoError(t, os.WriteFile(path, []byte("monotonic        1000         0\nboottime          300         5\n"), 0o600))
	assert.Equal(t, 300*int64(time.Second)+5, timeNamespaceBootOffset(path))
	assert.Zero(t, timeNamespaceBootOffset(filepath.Join(t.TempDir(), "absent")))
}

// timensChild is set in the copy of this test binary that runs in a time namespace.
const timensChild = "PODNET_CLOCK_TIMENS_CHILD"

// A process in a time namespace (CRIU restores containers in one) converts the kernel's boot
// clock, which BPF programs read and no namespace offsets, as one outside does. Found by an
// independent check: every record's time was off by the namespace's boottime offset (-1000 s
// under `unshare --time --boottime 1000`). This test runs itself again in such a namespace and
// compares the two clocks' offsets.
func TestClockInATimeNamespaceIsTheKernels(t *testing.T) {
	if os.Getenv(timensChild) != "" {
		fmt.Printf("offset %d\n", NewClock().offset)
		return
	}
	netnstest.RequireRoot(t)
	cmd := exec.Command("unshare", "--time", "--boottime", "1000", "--monotonic", "1000", "--fork",
		os.Args[0], "-test.run", "^TestClockInATimeNamespaceIsTheKernels$", "-test.count", "1")
	cmd.Env = append(os.Environ(), timensChild+"=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "unshare --time (the kernel needs CONFIG_TIME_NS): %s", out)
	var inside int64
	_, err = fmt.Sscanf(string(out), "offset %d", &inside)
	require.NoError(t, err, "%s", out)
	outside := NewClock().offset
	assert.InDelta(t, outside, inside, float64(100*time.Millisecond), "wall - kernel boot clock, inside the namespace and outside (ns)")
}
