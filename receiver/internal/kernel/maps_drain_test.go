package kernel

import (
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

func entries(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	var key []byte
	n := 0
	it := m.Iterate()
	for it.Next(&key, new([]byte)) {
		n++
	}
	require.NoError(t, it.Err())
	return n
}

// Connections that never complete — cancelled by the application, or timed out by the
// kernel — must not leave per-connection state behind.
func TestPerConnectionStateDrains(t *testing.T) {
	netw := netnstest.NewNetwork(t, 50)
	client, server := netw.AddPod(), netw.AddPod()
	server.DropSYNs(81)
	client.FastSYNTimeout()

	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 4096, MaxAggregates: 16})
	require.NoError(t, err)
	defer tr.Close()
	conns := tr.coll.Maps[bpf.PodnetMapConns]
	calls := tr.coll.Maps[bpf.PodnetMapConnectCalls]
	baseline, baselineCalls := entries(t, conns), entries(t, calls)

	const cancelled, timedOut = 100, 50
	var fds []int
	require.NoError(t, client.Do(func() error {
		for range cancelled + timedOut {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return err
			}
			sa := &unix.SockaddrInet4{Port: 81, Addr: server.IPv4.As4()}
			if err := unix.Connect(fd, sa); !errors.Is(err, unix.EINPROGRESS) {
				return err
			}
			fds = append(fds, fd)
		}
		return nil
	}))
	// The table is the machine's: an entry counted in the baseline may have left since.
	assert.GreaterOrEqual(t, entries(t, conns), cancelled+timedOut, "half-open connections are tracked")
	for _, fd := range fds[:cancelled] {
		_ = unix.Close(fd) // SYN_SENT -> CLOSE: "cancelled"
	}
	defer func() {
		for _, fd := range fds[cancelled:] {
			_ = unix.Close(fd)
		}
	}()
	assert.Eventually(t, func() bool { return entries(t, conns) <= baseline+timedOut+5 }, 2*time.Second, 50*time.Millisecond,
		"cancelled connects leave no state")
	assert.Eventually(t, func() bool { return entries(t, conns) <= baseline+5 }, 10*time.Second, 200*time.Millisecond,
		"timed-out connects leave no state")
	// Other processes on the machine may be inside connect() too: allow for a couple.
	assert.LessOrEqual(t, entries(t, calls), baselineCalls+2, "connect() calls leave no state")
}
