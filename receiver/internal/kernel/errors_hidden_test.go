package kernel

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// Start says what to fix also where cilium/ebpf's own error does not (found by an independent
// check): a kernel without BTF was told it lacked a BPF feature, and an unmounted tracefs got
// no fix at all. Both are hidden for real, by empty mounts in a mount namespace of this test's
// own thread.
func TestOpenExplainsAMissingBTFOrTracefs(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		hide  []string
		hooks HookMode
		want  string
	}{
		{"no BTF", []string{"/sys/kernel/btf"}, HooksAuto, "CONFIG_DEBUG_INFO_BTF"},
		{"no tracefs", []string{"/sys/kernel/tracing", "/sys/kernel/debug"}, HooksTracepoint, "mount -t tracefs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := withHidden(t, tc.hide, func() error {
				tr, err := Open(Options{Hooks: tc.hooks, RingBufferSize: 1 << 16, MaxTrackedConnections: 1024, MaxAggregates: 16, Events: true})
				if err == nil {
					tr.Close()
				}
				return err
			})
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// withHidden runs fn on a thread of its own whose mount namespace has an empty tmpfs over each
// of paths. The thread is never returned to the Go scheduler (it ends with the goroutine).
func withHidden(t *testing.T, paths []string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread's mounts differ from the process's
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			done <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			done <- fmt.Errorf("making mounts private: %w", err)
			return
		}
		for _, p := range paths {
			if err := unix.Mount("tmpfs", p, "tmpfs", 0, ""); err != nil {
				done <- fmt.Errorf("hiding %s: %w", p, err)
				return
			}
		}
		done <- fn()
	}()
	err := <-done
	require.NotContains(t, fmt.Sprint(err), "hiding", "the test's own set-up")
	return err
}

// A map the kernel refuses for want of a capability is not a size to lower.
func TestMissingCapabilityIsNoSizeError(t *testing.T) {
	err := sizeError(fmt.Errorf("map events: map create: %w", unix.EPERM), Options{RingBufferSize: 1 << 23})
	assert.NotContains(t, err.Error(), "lower")
	assert.Contains(t, explain("loading", err).Error(), "permission denied")
}
