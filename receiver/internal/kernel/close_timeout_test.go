package kernel

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A peer that became unreachable (ICMP host unreachable answers every retransmission) times the
// connection out: the kernel gives up with the ICMP error in sk_err instead of ETIMEDOUT
// (tcp_write_err), and sent no reset. It was reported as a reset sent (found by an
// independent check).
func TestTimeoutAfterICMPUnreachableIsATimeout(t *testing.T) {
	netw := netnstest.NewNetwork(t, 225)
	client, server := netw.AddPod(), netw.AddPod()
	cns := client.NetnsInode()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 4096, MaxAggregates: 64, Events: true})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool {
		return e.NetnsIno == cns && e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE)
	})

	c, s := pair(t, client, server, netip.AddrPortFrom(server.IPv4, 7311))
	defer s.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	require.NoError(t, raw.Control(func(fd uintptr) {
		require.NoError(t, unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 400))
	}))
	server.Filter("podnet_unreach", "input", "tcp dport 7311", "reject with icmpx host-unreachable")
	_, err = c.Write([]byte("anyone?"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, syscall.EHOSTUNREACH, "the kernel gave up with the ICMP error")
	require.NoError(t, c.Close())

	var closes []bpf.PodnetEvent
	require.Eventually(t, func() bool {
		closes = append(closes, ring.take()...)
		return len(closes) >= 1
	}, 5*time.Second, 10*time.Millisecond, "the client's close")
	require.Len(t, closes, 1)
	assert.Equal(t, uint8(bpf.PodnetCloseReasonCLOSE_TIMEOUT), closes[0].CloseReason)
}
