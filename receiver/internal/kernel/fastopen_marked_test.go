package kernel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// A TCP Fast Open server can answer before its handshake ends (SYN_RECV): its send marks the
// socket, but a live read cannot count it yet (the unacknowledged SYN-ACK would count a byte
// too many, for good). The read must keep it marked, so that the first read after the
// handshake's end counts the answer: nothing else marks it again (retransmissions and the
// handshake's last ACK are no send and wake no reader), and a connection that then idles had
// its bytes only at its close.
func TestMarkedReadsCountAFastOpenAnswerSentBeforeTheHandshakeEnded(t *testing.T) {
	// Metrics alone: no accept hook, so the child has no entry until its handshake's end. With
	// events: accept() tracked it in SYN_RECV.
	t.Run("metrics", func(t *testing.T) { testFastOpenAnswerCounted(t, Options{}, 79) })
	t.Run("events", func(t *testing.T) { testFastOpenAnswerCounted(t, Options{Events: true}, 80) })
}

func testFastOpenAnswerCounted(t *testing.T, opts Options, subnet byte) {
	netw := netnstest.NewNetwork(t, subnet)
	pod := netw.AddPod()
	pod.Exec("sysctl", "-qw", "net.ipv4.tcp_fastopen=3")
	tr := openMarkedWith(t, opts)
	totals := roleTotals{}
	watched := map[uint32]roleTotals{pod.NetnsInode(): totals}
	addr := &unix.SockaddrInet4{Port: 8126, Addr: [4]byte{127, 0, 0, 1}}
	const answer = 1000

	var ln, c, s int
	var err error
	require.NoError(t, pod.Do(func() error {
		if ln, err = fastOpenListener(addr); err != nil { // the first connection fetched a cookie
			return err
		}
		if c, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0); err != nil {
			return err
		}
		return nil
	}))
	t.Cleanup(func() { unix.Close(ln) })
	t.Cleanup(func() { unix.Close(c) })
	drainInto(t, tr, watched) // the cookie's connection, closed

	release := holdACKs(pod, "8126") // the client's ACKs: the server's handshake cannot end
	defer release()                  // once only: a no-op after the release below
	require.NoError(t, pod.Do(func() error {
		if err := unix.Sendto(c, []byte("hello"), unix.MSG_FASTOPEN, addr); err != nil {
			return err
		}
		if s, _, err = unix.Accept(ln); err != nil {
			return err
		}
		if err := readFastOpenRequest(s); err != nil { // accepted in SYN_RECV
			return err
		}
		_, err = unix.Write(s, make([]byte, answer))
		return err
	}))
	t.Cleanup(func() { unix.Close(s) })
	drainInto(t, tr, watched) // takes the answer's mark, on a socket still in SYN_RECV
	require.Equal(t, uint8(unix.BPF_TCP_SYN_RECV), serverState(t, s), "the handshake's last ACK was held back")
	assert.Zero(t, totals.get(roleServer).BytesSent, "not counted in SYN_RECV")

	release() // the next retransmission's ACK ends the handshake; nothing is sent again
	require.Eventually(t, func() bool { return serverState(t, s) == unix.BPF_TCP_ESTABLISHED }, 10*time.Second,
		20*time.Millisecond, "the handshake ended once the client's ACKs passed")
	require.Eventually(t, func() bool {
		drainInto(t, tr, watched)
		return totals.get(roleServer).BytesSent == answer
	}, 5*time.Second, 20*time.Millisecond, "the answer sent in SYN_RECV counted while the connection is open")
	assert.Equal(t, uint64(2*len("hello")), totals.get(roleServer).BytesReceived, "the cookie connection's request and the one this SYN carried")
}

func serverState(t *testing.T, s int) uint8 {
	t.Helper()
	info, err := unix.GetsockoptTCPInfo(s, unix.IPPROTO_TCP, unix.TCP_INFO)
	require.NoError(t, err)
	return info.State
}
