package agentproc

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// CPU is exact: 15 ms of CPU on a thread that then exits reads as 15 ms, as getrusage says,
// not as 10 or 20 ms of clock ticks. This test process stands in for the agent.
func TestCPUIsExact(t *testing.T) {
	self, err := os.FindProcess(os.Getpid())
	require.NoError(t, err)
	a := &Proc{cmd: &exec.Cmd{Process: self}}

	before := usage(t)
	c0, err := a.CPU()
	require.NoError(t, err)
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		done <- spin(15 * time.Millisecond)
	}()
	require.NoError(t, <-done)
	c1, err := a.CPU()
	require.NoError(t, err)
	after := usage(t)

	assert.GreaterOrEqual(t, c1-c0, 15*time.Millisecond)
	assert.InDelta(t, after-before, c1-c0, float64(time.Millisecond), "CPU %v, getrusage %v", c1-c0, after-before)
}

// usage is this process's user+system CPU from getrusage, in µs.
func usage(t *testing.T) time.Duration {
	var ru unix.Rusage
	require.NoError(t, unix.Getrusage(unix.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// spin uses d of the calling thread's CPU.
func spin(d time.Duration) error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return err
	}
	for end := ts.Nano() + d.Nanoseconds(); ts.Nano() < end; {
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			return err
		}
	}
	return nil
}
