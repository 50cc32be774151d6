package kernel

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// probeFailedChild is the environment variable that makes this test binary run
// probeFailedChildRun and exit (TestMain): a process of its own, as what it does to cilium/ebpf
// lasts the process's life.
const probeFailedChild = "PODNET_TEST_PROBE_FAILED"

// cilium/ebpf explains a map create that failed by probing the kernel for the map's flags, once
// per process; out of descriptors, that probe fails too and is remembered: from then on a map
// create that fails says "prealloc maps not supported", with no errno. A collector that ran out
// of descriptors so was told its kernel lacks a feature (found in CI: the descriptor-limit test
// failed so at 10 descriptors free, the probe having first run in that test). It is told about
// its descriptor limit.
func TestOutOfDescriptorsIsSaidAfterAFailedFeatureProbe(t *testing.T) {
	netnstest.RequireRoot(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), probeFailedChild+"=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "prealloc maps not supported", "the child made cilium/ebpf's probe fail")
	assert.Contains(t, result(string(out)), "RESULT all 50 attempts: RLIMIT_NOFILE", "Open's error names the descriptor limit, whichever map found none")
}

// probeFailedChildRun makes a map create with BPF_F_NO_PREALLOC fail with no descriptor free (the
// probe that explains it fails too), then opens podnet with 10 descriptors free, 50 times.
func probeFailedChildRun() {
	var saved unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
		fmt.Println("RESULT getrlimit:", err)
		return
	}
	limitTo := func(free uint64) {
		entries, _ := os.ReadDir("/proc/self/fd")
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(len(entries)) - 1 + free, Max: saved.Max})
	}
	limitTo(5)
	var held []int // every descriptor left, taken
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		held = append(held, fd)
	}
	_, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1, Flags: unix.BPF_F_NO_PREALLOC})
	for _, fd := range held {
		unix.Close(fd)
	}
	_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &saved)
	fmt.Println("probe:", err)
	// cilium/ebpf creates the maps in no set order: the one that finds no descriptor is
	// another each time, one with BPF_F_NO_PREALLOC now and then.
	const attempts = 50
	for range attempts {
		limitTo(10)
		tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 1024, MaxAggregates: 256, Events: true})
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &saved)
		if err == nil {
			fmt.Println("RESULT loaded")
			_ = tr.Close()
			return
		}
		if !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
			fmt.Printf("RESULT error: %v\n", err)
			return
		}
	}
	fmt.Printf("RESULT all %d attempts: RLIMIT_NOFILE\n", attempts)
}
