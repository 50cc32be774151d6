package kernel

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A connection whose client half-closed (shutdown(SHUT_WR), the server's ACK taken: FIN_WAIT2,
// the server in CLOSE_WAIT) and then aborted it — close() with unread data, SO_LINGER 0,
// SOCK_DESTROY (ss -K), a negative TCP_LINGER2 — sends a reset: reset_sent at the client,
// reset_received at the server, in the events and the aggregates. Found by an independent check
// (reported normal, the RST on the wire). The FIN exchange from the same state, the server's FIN
// taken before the client's close or after it, stays normal at both ends. With failure-biased
// sampling (1 in 2^30 of the normal ones), the aborts are abnormal and kept whole, and the two
// FIN exchanges are left out.
func TestAnAbortFromFinWait2IsAResetSent(t *testing.T) {
	netw := netnstest.NewNetwork(t, 43)
	client, server := netw.AddPod(), netw.AddPod()
	for _, hooks := range []HookMode{HooksTPBTF, HooksTracepoint} {
		for _, oneIn := range []uint32{1, 1 << 30} {
			t.Run(fmt.Sprintf("%s/one_in_%d", hooks, oneIn), func(t *testing.T) {
				untilUndisturbed(t, func(t *testing.T, _ int) string { return abortsFromFinWait2(t, hooks, oneIn, client, server) })
			})
		}
	}
}

func abortsFromFinWait2(t *testing.T, hooks HookMode, oneIn uint32, client, server *netnstest.Pod) (disturbed string) {
	cns, sns := client.NetnsInode(), server.NetnsInode()
	hidden := watchHiddenCloses(t)
	tr, err := Open(Options{
		Hooks: hooks, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true, SampleOneIn: oneIn,
	})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool { return e.NetnsIno == cns || e.NetnsIno == sns })
	require.NoError(t, tr.DrainAggregates(func(*bpf.PodnetAggKey, *bpf.PodnetAggValue) {}))

	const first = 7431
	at := func(port int) netip.AddrPort { return netip.AddrPortFrom(server.IPv4, uint16(port)) }
	// 7431: unread data at the client's close.
	c, s := halfClosed(t, client, server, at(7431))
	_, err = s.Write([]byte("never read"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return unreadBytes(t, c) > 0 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, c.Close())
	require.NoError(t, s.Close())
	// 7432: SO_LINGER 0.
	c, s = halfClosed(t, client, server, at(7432))
	require.NoError(t, c.(*net.TCPConn).SetLinger(0))
	require.NoError(t, c.Close())
	require.NoError(t, s.Close())
	// 7433: SOCK_DESTROY, as ss -K (and CNIs that kill a pod's sockets) do.
	c, s = halfClosed(t, client, server, at(7433))
	port := strconv.Itoa(c.LocalAddr().(*net.TCPAddr).Port)
	client.Exec("ss", "-K", "-tn", "state", "fin-wait-2", "sport", "=", ":"+port)
	require.Equal(t, uint8(unix.BPF_TCP_CLOSE), tcpInfo(t, c).State, "ss -K destroyed the socket (the kernel needs CONFIG_INET_DIAG_DESTROY)")
	require.NoError(t, c.Close())
	require.NoError(t, s.Close())
	// 7434: a negative TCP_LINGER2, which resets an orphan in FIN_WAIT2 at once.
	c, s = halfClosed(t, client, server, at(7434))
	control(t, c, func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_LINGER2, -1) })
	require.NoError(t, c.Close())
	require.NoError(t, s.Close())
	// 7435: the server's FIN taken in FIN_WAIT2, the client's socket still open.
	c, s = halfClosed(t, client, server, at(7435))
	require.NoError(t, s.Close())
	readEOF(t, c)
	require.NoError(t, c.Close())
	// 7436: the client's close first (its socket handed to a time-wait socket), the server's FIN
	// after.
	c, s = halfClosed(t, client, server, at(7436))
	require.NoError(t, c.Close())
	require.NoError(t, s.Close())
	const last = 7436

	n := last - first + 1
	if oneIn > 1 {
		n = 7434 - first + 1 // the FIN exchanges are left out
	}
	var events []bpf.PodnetEvent
	closes := func() int {
		k := 0
		for i := range events {
			if events[i].Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) {
				k++
			}
		}
		return k
	}
	for deadline := time.Now().Add(10 * time.Second); closes() < 2*n && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		events = append(events, ring.take()...)
	}
	if closes() < 2*n {
		h := 0
		for p := first; p <= last; p++ {
			s, c := hidden.count(p)
			h += s + c
		}
		if h > 0 {
			return fmt.Sprintf("%d of %d closes, %d hidden from BPF", closes(), 2*n, h)
		}
	}
	type end struct {
		role uint8
		port uint16
	}
	reasons := map[end]uint8{}
	for i := range events {
		if e := &events[i]; e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) {
			port := e.PeerPort
			if e.Role == roleServer {
				port = e.LocalPort
			}
			reasons[end{e.Role, port}] = e.CloseReason
		}
	}
	want := map[end]uint8{}
	for p := uint16(first); p <= last; p++ {
		want[end{roleClient, p}], want[end{roleServer, p}] = reasonResetSent, reasonResetReceived
	}
	aborts := maps.Clone(want)
	for _, p := range []uint16{7435, 7436} {
		want[end{roleClient, p}], want[end{roleServer, p}] = reasonNormal, reasonNormal
		delete(aborts, end{roleClient, p})
		delete(aborts, end{roleServer, p})
	}
	if oneIn > 1 {
		assert.Equal(t, aborts, reasons, "close reasons in the events: the aborts kept by sampling, the FIN exchanges left out")
		opens := map[end]bool{}
		for i := range events {
			if e := &events[i]; e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) {
				opens[end{e.Role, e.PeerPort}] = true
			} else if e.Type == uint8(bpf.PodnetEventTypeEVENT_ACCEPT) {
				opens[end{e.Role, e.LocalPort}] = true
			}
		}
		for e := range aborts {
			assert.True(t, opens[e], "the open of kept %v", e)
		}
	} else {
		assert.Equal(t, want, reasons, "close reasons in the events")
	}

	fromAggregates := map[end]uint8{}
	require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		if k.NetnsIno != cns && k.NetnsIno != sns {
			return
		}
		for r, count := range v.ClosedBy {
			if count > 0 {
				assert.Equal(t, uint64(1), count, "%d %d", k.Role, k.ServerPort)
				fromAggregates[end{k.Role, k.ServerPort}] = uint8(r)
			}
		}
	}))
	assert.Equal(t, want, fromAggregates, "close reasons in the aggregates")
	return ""
}

// halfClosed connects client to a fresh listener at addr in server and half-closes the client's
// end: the server has read its FIN, and the client is in FIN_WAIT2 (its FIN acknowledged).
func halfClosed(t *testing.T, client, server *netnstest.Pod, addr netip.AddrPort) (c, s net.Conn) {
	t.Helper()
	c, s = pair(t, client, server, addr)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	readEOF(t, s)
	require.Eventually(t, func() bool { return tcpInfo(t, c).State == unix.BPF_TCP_FIN_WAIT2 }, 5*time.Second, time.Millisecond,
		"the client's FIN acknowledged")
	return c, s
}

// tcpInfo is c's socket's TCP_INFO.
func tcpInfo(t *testing.T, c net.Conn) *unix.TCPInfo {
	var info *unix.TCPInfo
	control(t, c, func(fd int) (err error) {
		info, err = unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		return err
	})
	return info
}

// unreadBytes is how much c's socket holds that its application has not read.
func unreadBytes(t *testing.T, c net.Conn) int {
	var n int
	control(t, c, func(fd int) (err error) { n, err = unix.IoctlGetInt(fd, unix.SIOCINQ); return err })
	return n
}

func control(t *testing.T, c net.Conn, fn func(fd int) error) {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var inner error
	require.NoError(t, raw.Control(func(fd uintptr) { inner = fn(int(fd)) }))
	require.NoError(t, inner)
}
