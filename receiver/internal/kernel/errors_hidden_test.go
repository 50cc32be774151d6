package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// Start says what to fix also where cilium/ebpf's own error does not (found by an independent
// check): a kernel without BTF was told it lacked a BPF feature, an unmounted tracefs got no
// fix at all, and an empty file over the kernel's BTF only "buffer too small". Each is hidden for
// real, by empty mounts in a mount namespace of this test's own thread (a path ending in "/" gets
// an empty tmpfs, a file an empty file bound over it).
func TestOpenExplainsAMissingBTFOrTracefs(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		hide  []string
		hooks HookMode
		want  string
	}{
		{"no BTF", []string{"/sys/kernel/btf/"}, HooksAuto, "CONFIG_DEBUG_INFO_BTF"},
		{"empty BTF", []string{vmlinuxBTF}, HooksAuto, "the kernel's BTF (/sys/kernel/btf/vmlinux) cannot be read: a file that is empty"},
		{"no tracefs", []string{"/sys/kernel/tracing/", "/sys/kernel/debug/"}, HooksTracepoint, "mount -t tracefs"},
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
// of paths that ends in "/", and an empty file bound over each other one. The thread is never
// returned to the Go scheduler (it ends with the goroutine).
func withHidden(t *testing.T, paths []string, fn func() error) error {
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
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
			err := unix.Mount(empty, p, "", unix.MS_BIND, "")
			if strings.HasSuffix(p, "/") {
				err = unix.Mount("tmpfs", p, "tmpfs", 0, "")
			}
			if err != nil {
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
