package kernel

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// COUNTER_CLOSE_UNTRACKED means an established connection podnet did not track (opened before
// it loaded, or evicted). A listener's close and the close of a socket that never connected are
// not that. The counter is the whole machine's, and other processes here may close connections
// older than this test's programs: many closes of each kind must not move it by as many.
func TestOnlyEstablishedClosesCountAsUntracked(t *testing.T) {
	netw := netnstest.NewNetwork(t, 63)
	pod := netw.AddPod()

	// Opened before podnet loads: its close is untracked.
	var early [2]net.Conn
	require.NoError(t, pod.Do(func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:7000")
		if err != nil {
			return err
		}
		defer ln.Close()
		if early[0], err = net.Dial("tcp", ln.Addr().String()); err != nil {
			return err
		}
		early[1], err = ln.Accept()
		return err
	}))

	tr := openEvents(t, 1<<22)
	before := counters(t, tr).CloseUntracked

	const n = 200
	require.NoError(t, pod.Do(func() error {
		for i := range n {
			ln, err := net.Listen("tcp", "127.0.0.1:0") // LISTEN -> CLOSE
			if err != nil {
				return err
			}
			_ = ln.Close()
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0) // CLOSE -> CLOSE
			if err != nil {
				return err
			}
			if i%2 == 0 {
				_ = unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
			}
			_ = unix.Close(fd)
		}
		return nil
	}))
	assert.Less(t, counters(t, tr).CloseUntracked-before, uint64(n), "listener and never-connected closes are not untracked")

	before = counters(t, tr).CloseUntracked
	_ = early[0].Close()
	_ = early[1].Close()
	assert.Eventually(t, func() bool { return counters(t, tr).CloseUntracked-before >= 2 }, 5*time.Second, 20*time.Millisecond,
		"both ends of a connection opened before podnet loaded close untracked")
}
