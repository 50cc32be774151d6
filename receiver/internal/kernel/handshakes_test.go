package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// kind is what the handshake tests compare: an event's type and role.
type kind struct{ typ, role uint8 }

var (
	connected = kind{uint8(bpf.PodnetEventTypeEVENT_CONNECT), uint8(bpf.PodnetRoleROLE_CLIENT)}
	accepted  = kind{uint8(bpf.PodnetEventTypeEVENT_ACCEPT), uint8(bpf.PodnetRoleROLE_SERVER)}
	clientEnd = kind{uint8(bpf.PodnetEventTypeEVENT_CLOSE), uint8(bpf.PodnetRoleROLE_CLIENT)}
	serverEnd = kind{uint8(bpf.PodnetEventTypeEVENT_CLOSE), uint8(bpf.PodnetRoleROLE_SERVER)}
)

// collect takes ring's events until want of them have arrived (or 5 s), then a little longer
// so that an extra one would be seen too. Start ring (collectRingWhere) before the traffic: a
// kernel ring read only afterwards can fill with other packages' events first (go test runs
// packages at once, some at full load), and lose these.
func collect(ring *collector, want int) []bpf.PodnetEvent {
	var events []bpf.PodnetEvent
	deadline := time.Now().Add(5 * time.Second)
	for len(events) < want && time.Now().Before(deadline) {
		events = append(events, ring.take()...)
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return append(events, ring.take()...)
}

func kinds(events []bpf.PodnetEvent) map[kind]int {
	m := map[kind]int{}
	for _, e := range events {
		m[kind{e.Type, e.Role}]++
	}
	return m
}

// holdACKs makes the pod drop pure ACKs to port (a handshake's last segment) until release.
func holdACKs(pod *netnstest.Pod, port string) (release func()) {
	return pod.Filter("podnet_hold", "input", "tcp dport "+port+" tcp flags & (syn | ack) == ack", "drop").Remove
}

// A TCP Fast Open server can accept a connection before its handshake ends (the SYN carried the
// request). It must be reported accepted once, by the acceptor, and closed once.
func TestTCPFastOpenAcceptedOnce(t *testing.T) {
	for i, hooks := range []HookMode{HooksTPBTF, HooksTracepoint} {
		t.Run(string(hooks), func(t *testing.T) { testTCPFastOpen(t, hooks, byte(70+i)) })
	}
}

func testTCPFastOpen(t *testing.T, hooks HookMode, subnet byte) {
	netw := netnstest.NewNetwork(t, subnet)
	pod := netw.AddPod()
	pod.Exec("sysctl", "-qw", "net.ipv4.tcp_fastopen=3")
	tr := openEventsWith(t, hooks, 1<<22)
	ring := collectRingWhere(t, tr, inNetns(pod.NetnsInode()))
	server := &unix.SockaddrInet4{Port: 8123, Addr: [4]byte{127, 0, 0, 1}}

	var stateAtAccept uint8
	require.NoError(t, pod.Do(func() error {
		ln, err := fastOpenListener(server) // the first connection fetched a cookie
		if err != nil {
			return err
		}
		defer unix.Close(ln)
		// The second sends its request in the SYN; the handshake's last ACK is held back, so
		// accept() returns a socket still in SYN_RECV.
		stateAtAccept, err = fastOpen(ln, server, holdACKs(pod, "8123"))
		if err != nil {
			return err
		}
		// The third is closed by the server before its handshake ends: it never becomes
		// ESTABLISHED (SYN_RECV -> FIN_WAIT1).
		if err := fastOpenClosedEarly(ln, server, holdACKs(pod, "8123")); err != nil {
			return err
		}
		// The fourth is reset by the server before its handshake ends (SYN_RECV -> CLOSE).
		if err := fastOpenResetEarly(ln, server, holdACKs(pod, "8123")); err != nil {
			return err
		}
		// The fifth is reset by the client while it waits in the accept queue, unaccepted.
		return fastOpenResetQueued(ln, server, holdACKs(pod, "8123"))
	}))
	require.Equal(t, uint8(unix.BPF_TCP_SYN_RECV), stateAtAccept, "accept() returned the second connection before its handshake ended (TCP Fast Open)")

	events := collect(ring, 20)
	assert.Equal(t, map[kind]int{connected: 5, accepted: 5, clientEnd: 5, serverEnd: 5}, kinds(events))
	unaccepted := 0
	for _, e := range events {
		if (kind{e.Type, e.Role}) == accepted && e.Pid == 0 {
			unaccepted++ // the fifth: reported by its close, no process took it
			assert.NotZero(t, e.StartNs, "the unaccepted child is dated")
		} else if (kind{e.Type, e.Role}) == accepted || (kind{e.Type, e.Role}) == connected {
			assert.Equal(t, uint32(os.Getpid()), e.Pid, "type %d: the process that accepted or connected", e.Type)
		}
		if (kind{e.Type, e.Role}) == serverEnd {
			assert.NotZero(t, e.StartNs, "the handshake's end (or the close before it) dates the accepted connection")
		}
	}
	assert.Equal(t, 1, unaccepted, "one Fast Open child reset in the accept queue, reported by its close")
}

// A client with TCP_FASTOPEN_CONNECT and a cookie cached: connect() returns at SYN_SENT with no
// SYN sent, which leaves with the first send (found by an independent check, with curl
// --tcp-fastopen's option). Its handshake is not the application's time between connect() and
// its first send, and one closed before any send is a connect the application cancelled (its
// connect() returned 0), not a connect() that found no local port (EADDRNOTAVAIL).
func TestTCPFastOpenConnectDeferredToTheFirstSend(t *testing.T) {
	for subnet, hooks := range map[byte]HookMode{254: HooksTPBTF, 33: HooksTracepoint} {
		t.Run(string(hooks), func(t *testing.T) { testTCPFastOpenConnectDeferred(t, hooks, subnet) })
	}
}

func testTCPFastOpenConnectDeferred(t *testing.T, hooks HookMode, subnet byte) {
	netw := netnstest.NewNetwork(t, subnet)
	pod := netw.AddPod()
	pod.Exec("sysctl", "-qw", "net.ipv4.tcp_fastopen=3")
	tr := openEventsWith(t, hooks, 1<<22)
	ring := collectRingWhere(t, tr, inNetns(pod.NetnsInode()))
	server := &unix.SockaddrInet4{Port: 8124, Addr: [4]byte{127, 0, 0, 1}}
	const think = 300 * time.Millisecond
	var deferredPort, cancelledPort int
	require.NoError(t, pod.Do(func() error {
		ln, err := fastOpenListener(server) // the first connection fetched a cookie
		if err != nil {
			return err
		}
		defer unix.Close(ln)
		c, err := deferredConnect(server)
		if err != nil {
			return err
		}
		deferredPort = localPort(c)
		time.Sleep(think) // the application thinks; no SYN has left
		if _, err := unix.Write(c, []byte("hello")); err != nil {
			unix.Close(c)
			return err
		}
		s, _, err := unix.Accept(ln)
		if err != nil {
			unix.Close(c)
			return err
		}
		_, err = unix.Read(s, make([]byte, 64)) // the request the SYN carried
		unix.Close(s)
		unix.Close(c)
		if err != nil {
			return err
		}
		c, err = deferredConnect(server)
		if err != nil {
			return err
		}
		cancelledPort = localPort(c)
		return unix.Close(c) // before any send
	}))
	events := collect(ring, 9)
	assert.Equal(t, map[kind]int{connected: 3, accepted: 2, clientEnd: 2, serverEnd: 2}, kinds(events))
	var found int
	for _, e := range events {
		if (kind{e.Type, e.Role}) != connected {
			continue
		}
		switch int(e.LocalPort) {
		case deferredPort:
			found++
			assert.Zero(t, e.Error, "established")
			assert.Less(t, time.Duration(e.SrttUs)*time.Microsecond, think/3, "the handshake, not the time before the first send")
		case cancelledPort:
			found++
			assert.Equal(t, int32(unix.ECANCELED), e.Error, "closed by the application before its SYN left")
		}
	}
	assert.Equal(t, 2, found, "both deferred connects reported")
}

// deferredConnect connects a TCP_FASTOPEN_CONNECT socket to addr: with a cookie cached it
// returns at once, its SYN held for the first send.
func deferredConnect(addr *unix.SockaddrInet4) (int, error) {
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(c, unix.IPPROTO_TCP, unix.TCP_FASTOPEN_CONNECT, 1); err != nil {
		unix.Close(c)
		return -1, err
	}
	if err := unix.Connect(c, addr); err != nil {
		unix.Close(c)
		return -1, fmt.Errorf("a deferred Fast Open connect() returns 0: %w", err)
	}
	return c, nil
}

// localPort is a bound socket's local port, 0 if unknown.
func localPort(fd int) int {
	sa, err := unix.Getsockname(fd)
	if in, ok := sa.(*unix.SockaddrInet4); err == nil && ok {
		return in.Port
	}
	return 0
}

// A TCP Fast Open server connection closed before its handshake ended is a connection all the
// same (it was accepted and carried data): counted open and closed when metrics are counted in
// the kernel alone (no accept() hook), not an untracked close (found by an independent check).
func TestTCPFastOpenClosedEarlyCountsInTheKernel(t *testing.T) {
	netw := netnstest.NewNetwork(t, 233)
	pod := netw.AddPod()
	pod.Exec("sysctl", "-qw", "net.ipv4.tcp_fastopen=3")
	tr := openMarked(t)
	server := &unix.SockaddrInet4{Port: 8124, Addr: [4]byte{127, 0, 0, 1}}
	require.NoError(t, pod.Do(func() error {
		ln, err := fastOpenListener(server) // the first connection fetched a cookie
		if err != nil {
			return err
		}
		defer unix.Close(ln)
		if err := fastOpenClosedEarly(ln, server, holdACKs(pod, "8124")); err != nil {
			return err
		}
		if err := fastOpenResetEarly(ln, server, holdACKs(pod, "8124")); err != nil {
			return err
		}
		return fastOpenResetQueued(ln, server, holdACKs(pod, "8124"))
	}))

	totals := roleTotals{}
	require.Eventually(t, func() bool {
		drainInto(t, tr, map[uint32]roleTotals{pod.NetnsInode(): totals})
		s := totals[uint8(bpf.PodnetRoleROLE_SERVER)]
		return s != nil && s.Closed >= 4
	}, 5*time.Second, 50*time.Millisecond, "the four server connections closed")
	// An untracked close returns before it is counted closed (state.h), so four closed in
	// this namespace is "no close untracked". The node-wide untracked counter is not compared:
	// other tests' connections, opened before this tracer, close while it runs.
	s := totals[uint8(bpf.PodnetRoleROLE_SERVER)]
	assert.Equal(t, uint64(4), s.Connections, "server connections: the cookie's, the one closed early, the one reset early and the one reset in the queue")
	assert.Equal(t, uint64(4), s.Closed, "every close counted closed, none untracked")
	assert.Zero(t, s.Active)
}

// A Fast Open child reset before its handshake ends lived from its SYN (which carried the
// request) to its reset: its close's start and duration say so in the ring and the aggregates,
// and its accept record (dated at accept()) falls inside that life (an independent check saw a
// duration of µs for a child reset 0.2 s after accept()).
func TestTCPFastOpenChildEndedEarlyLivedFromItsSYN(t *testing.T) {
	netw := netnstest.NewNetwork(t, 246)
	pod := netw.AddPod()
	pod.Exec("sysctl", "-qw", "net.ipv4.tcp_fastopen=3")
	tr := openBothSinks(t, HooksAuto)
	ring := collectRingWhere(t, tr, inNetns(pod.NetnsInode()))
	server := &unix.SockaddrInet4{Port: 8125, Addr: [4]byte{127, 0, 0, 1}}
	const held = 300 * time.Millisecond
	totals := roleTotals{}
	drainInto(t, tr, map[uint32]roleTotals{pod.NetnsInode(): totals}) // from zero
	require.NoError(t, pod.Do(func() error {
		ln, err := fastOpenListener(server) // the first connection fetched a cookie
		if err != nil {
			return err
		}
		defer unix.Close(ln)
		return fastOpenResetAfter(ln, server, holdACKs(pod, "8125"), held)
	}))

	events := collect(ring, 8)
	var reset *bpf.PodnetEvent
	accepts := map[uint16]*bpf.PodnetEvent{}
	for i := range events {
		e := &events[i]
		switch (kind{e.Type, e.Role}) {
		case accepted:
			accepts[e.PeerPort] = e
		case serverEnd:
			if e.CloseReason == uint8(bpf.PodnetCloseReasonCLOSE_RESET_SENT) {
				reset = e
			}
		}
	}
	require.NotNil(t, reset, "the reset child's close")
	lived := time.Duration(reset.TimestampNs - reset.StartNs)
	assert.GreaterOrEqual(t, lived, held, "it lived from its SYN to its reset")
	assert.Less(t, lived, held+2*time.Second)
	if accept := accepts[reset.PeerPort]; assert.NotNil(t, accept, "its accept") {
		assert.LessOrEqual(t, reset.StartNs, accept.TimestampNs, "accepted after it began")
	}
	drainInto(t, tr, map[uint32]roleTotals{pod.NetnsInode(): totals})
	s := totals[uint8(bpf.PodnetRoleROLE_SERVER)]
	require.NotNil(t, s)
	assert.Equal(t, uint64(2), s.Closed, "the cookie's connection and the reset child")
	assert.GreaterOrEqual(t, s.DurationNs, uint64(held), "the aggregates' duration holds the child's life")
}

// fastOpenListener is a Fast Open listener at addr whose first connection, an ordinary
// handshake, fetched the cookie the next ones send their requests with.
func fastOpenListener(addr *unix.SockaddrInet4) (int, error) {
	ln, err := listener(addr)
	if err != nil {
		return -1, err
	}
	if _, err := fastOpen(ln, addr, nil); err != nil {
		unix.Close(ln)
		return -1, err
	}
	return ln, nil
}

func listener(addr *unix.SockaddrInet4) (int, error) {
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, err
	}
	for _, err := range []error{
		unix.SetsockoptInt(ln, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
		unix.SetsockoptInt(ln, unix.IPPROTO_TCP, unix.TCP_FASTOPEN, 16),
		unix.Bind(ln, addr),
		unix.Listen(ln, 16),
	} {
		if err != nil {
			unix.Close(ln)
			return -1, err
		}
	}
	return ln, nil
}

// fastOpen connects to ln with MSG_FASTOPEN, accepts, exchanges a request and closes both ends.
// With release set, the handshake's last ACK is held until after accept(). It returns the
// accepted socket's state as accept() returned it.
func fastOpen(ln int, addr *unix.SockaddrInet4, release func()) (uint8, error) {
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(c)
	if err := unix.Sendto(c, []byte("hello"), unix.MSG_FASTOPEN, addr); err != nil {
		return 0, err
	}
	s, _, err := unix.Accept(ln)
	if err != nil {
		return 0, err
	}
	defer unix.Close(s)
	info, err := unix.GetsockoptTCPInfo(s, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, err
	}
	if release != nil {
		release()
		if _, err := unix.Write(c, []byte(" world")); err != nil { // its ACK ends the handshake
			return 0, err
		}
	}
	buf := make([]byte, 64)
	if _, err := unix.Read(s, buf); err != nil {
		return 0, err
	}
	return info.State, nil
}

// fastOpenResetEarly connects to ln with MSG_FASTOPEN while release holds the handshake's last
// ACK back; the server accepts, reads the request and resets the connection (SO_LINGER 0) before
// the handshake ends (SYN_RECV -> CLOSE); the client's next read finds the reset.
func fastOpenResetEarly(ln int, addr *unix.SockaddrInet4, release func()) error {
	return fastOpenResetAfter(ln, addr, release, 0)
}

// fastOpenResetAfter is fastOpenResetEarly with the server holding the accepted child for held
// before it resets it.
func fastOpenResetAfter(ln int, addr *unix.SockaddrInet4, release func(), held time.Duration) error {
	defer release()
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(c)
	if err := unix.Sendto(c, []byte("hello"), unix.MSG_FASTOPEN, addr); err != nil {
		return err
	}
	s, _, err := unix.Accept(ln)
	if err != nil {
		return err
	}
	err = readFastOpenRequest(s)
	time.Sleep(held)
	if err == nil {
		err = unix.SetsockoptLinger(s, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	unix.Close(s) // SYN_RECV -> CLOSE, a reset sent
	if err != nil {
		return err
	}
	if _, err := unix.Read(c, make([]byte, 64)); !errors.Is(err, unix.ECONNRESET) {
		return fmt.Errorf("client read after the server's reset: %w, want ECONNRESET", err)
	}
	return nil
}

// readFastOpenRequest checks that s was accepted before its handshake ended (a Fast Open child,
// still in SYN_RECV) and reads the request its SYN carried.
func readFastOpenRequest(s int) error {
	info, err := unix.GetsockoptTCPInfo(s, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err == nil && info.State != unix.BPF_TCP_SYN_RECV {
		err = fmt.Errorf("accepted in state %d, want SYN_RECV (a Fast Open child)", info.State)
	}
	if err == nil {
		_, err = unix.Read(s, make([]byte, 64))
	}
	return err
}

// fastOpenResetQueued connects to ln with MSG_FASTOPEN while release holds the handshake's last
// ACK back, and resets the connection (SO_LINGER 0) once the server's child waits in ln's accept
// queue, in SYN_RECV, never accepted (SYN_RECV -> CLOSE).
func fastOpenResetQueued(ln int, addr *unix.SockaddrInet4, release func()) error {
	defer release()
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	err = unix.Sendto(c, []byte("hello"), unix.MSG_FASTOPEN, addr)
	if err == nil {
		if n, perr := unix.Poll([]unix.PollFd{{Fd: int32(ln), Events: unix.POLLIN}}, 5000); n != 1 {
			err = fmt.Errorf("the Fast Open child never queued: %d, %w", n, perr)
		}
	}
	if err == nil {
		release()
		err = unix.SetsockoptLinger(c, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	return errors.Join(err, unix.Close(c)) // a reset: the child, never accepted, closes (or ln's close aborts it)
}

// fastOpenClosedEarly connects to ln with MSG_FASTOPEN while release holds the handshake's last
// ACK back; the server accepts, reads the request, answers and closes before the handshake ends
// (still SYN_RECV); then the ACKs go through and the client reads the answer and closes.
func fastOpenClosedEarly(ln int, addr *unix.SockaddrInet4, release func()) error {
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		release()
		return err
	}
	defer unix.Close(c)
	if err := unix.SetsockoptTimeval(c, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10}); err != nil {
		release()
		return err
	}
	if err := unix.Sendto(c, []byte("hello"), unix.MSG_FASTOPEN, addr); err != nil {
		release()
		return err
	}
	s, _, err := unix.Accept(ln)
	if err != nil {
		release()
		return err
	}
	err = readFastOpenRequest(s)
	if err == nil {
		_, err = unix.Write(s, []byte("bye"))
	}
	unix.Close(s) // SYN_RECV -> FIN_WAIT1
	release()
	if err != nil {
		return err
	}
	for { // the answer, then EOF once the server's retransmissions are acknowledged
		n, err := unix.Read(c, make([]byte, 64))
		if err != nil {
			return fmt.Errorf("client read: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
}

// In a simultaneous open both ends connect() and neither listens; one of them passes through
// SYN_RECV. Both are clients, and nothing is accepted.
func TestSimultaneousOpenStaysClient(t *testing.T) {
	for i, hooks := range []HookMode{HooksTPBTF, HooksTracepoint} {
		t.Run(string(hooks), func(t *testing.T) {
			netw := netnstest.NewNetwork(t, byte(72+i))
			untilUndisturbed(t, simultaneousOpen(hooks, netw.AddPod()))
		})
	}
}

// simultaneousOpen connects two sockets of pod to each other, ports 9001 and 9002 (further on
// further attempts), and checks that both are clients.
func simultaneousOpen(hooks HookMode, pod *netnstest.Pod) func(*testing.T, int) string {
	return func(t *testing.T, attempt int) string {
		tr, err := Open(Options{Hooks: hooks, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 16})
		require.NoError(t, err)
		defer tr.Close()
		ring := collectRingWhere(t, tr, inNetns(pod.NetnsInode()))
		port := 9001 + 2*attempt
		a := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
		b := &unix.SockaddrInet4{Port: port + 1, Addr: [4]byte{127, 0, 0, 1}}

		require.NoError(t, pod.Do(func() error {
			// Both first SYNs are dropped, so each end is in SYN_SENT when the other's
			// retransmission (after ~1 s) arrives.
			firstSYNs := pod.Filter("podnet_syn", "input", "tcp flags & (syn | ack) == syn", "drop")
			fa, err := boundSocket(a)
			if err != nil {
				return err
			}
			defer unix.Close(fa)
			fb, err := boundSocket(b)
			if err != nil {
				return err
			}
			defer unix.Close(fb)
			for _, c := range []struct {
				fd int
				to *unix.SockaddrInet4
			}{{fa, b}, {fb, a}} {
				if err := unix.Connect(c.fd, c.to); err != unix.EINPROGRESS {
					return err
				}
			}
			firstSYNs.Remove()
			for _, fd := range []int{fa, fb} {
				if err := waitWritable(fd, 5*time.Second); err != nil {
					return err
				}
			}
			return nil
		}))

		events := collect(ring, 4)
		if skipped := kernelSkipped(t, tr); skipped != "" && len(events) < 4 {
			return fmt.Sprintf("%d of 4 events: %s", len(events), skipped)
		}
		assert.Equal(t, map[kind]int{connected: 2, clientEnd: 2}, kinds(events))
		for _, e := range events {
			if e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) {
				assert.Zero(t, e.Error)
				assert.Equal(t, uint32(os.Getpid()), e.Pid)
			}
		}
		return ""
	}
}

func boundSocket(addr *unix.SockaddrInet4) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, addr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// waitWritable waits for a non-blocking connect to end and returns its error.
func waitWritable(fd int, timeout time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	if _, err := unix.Poll(fds, int(timeout.Milliseconds())); err != nil {
		return err
	}
	if soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soErr != 0 {
		return errors.Join(err, unix.Errno(soErr))
	}
	return nil
}

// A server whose first SYN-ACK is lost answers again at ~1 s twice (its timer, and the
// client's retransmitted SYN), and its handshake took ~1 s from the SYN: timed from its first
// SYN-ACK with tp_btf (tcp_retransmit_synack), estimated from the count with classic
// tracepoints. (The estimate read each retransmission as a timeout waited: 1 + 2 = 3 s.)
func TestServerHandshakeWithALostSYNACK(t *testing.T) {
	netw := netnstest.NewNetwork(t, 218)
	client, server := netw.AddPod(), netw.AddPod()
	for i, hooks := range []HookMode{HooksTPBTF, HooksTracepoint} {
		t.Run(string(hooks), func(t *testing.T) {
			untilUndisturbed(t, serverHandshakeWithALostSYNACK(hooks, client, server, 7701+10*i, 0))
		})
	}
}

// SYN-ACKs lost for 1.6 s: the server retransmits on its timer (1 s, 3 s) and in answer to each
// SYN the client retransmits, which this kernel's clients do every second at first
// (tcp_syn_linear_timeouts): the one answering the SYN at 2 s gets through. The classic mode's
// estimate merges the two schedules (it took them for pairs: 3 s for a 2 s handshake, found by
// an independent check).
func TestServerHandshakeWithSYNACKsLostLonger(t *testing.T) {
	netw := netnstest.NewNetwork(t, 226)
	client, server := netw.AddPod(), netw.AddPod()
	for i, hooks := range []HookMode{HooksTPBTF, HooksTracepoint} {
		t.Run(string(hooks), func(t *testing.T) {
			untilUndisturbed(t, serverHandshakeWithALostSYNACK(hooks, client, server, 7721+10*i, 1600*time.Millisecond))
		})
	}
}

// serverHandshakeWithALostSYNACK drops the server's SYN-ACKs in the client's namespace until the
// first is dropped, or for dropFor, and compares the server's handshake with the client's.
func serverHandshakeWithALostSYNACK(hooks HookMode, client, server *netnstest.Pod, firstPort int, dropFor time.Duration) func(*testing.T, int) string {
	return func(t *testing.T, attempt int) (disturbed string) {
		port := firstPort + attempt
		tr, err := Open(Options{
			Hooks: hooks, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 64,
			AggregateInKernel: true, Events: true,
		})
		require.NoError(t, err)
		defer tr.Close()
		ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool {
			return e.NetnsIno == client.NetnsInode() || e.NetnsIno == server.NetnsInode()
		})
		// A retransmission's timer can end a handshake in a softirq on top of a PID 1 thread.
		hiddenEnds := watchHiddenEstablishments(t)
		// The client's namespace drops SYN-ACKs from the port until the first one is dropped;
		// both namespaces count the client's SYNs, sent and arrived.
		p := strconv.Itoa(port)
		synacks := client.Filter("podnet_synack", "input", "tcp sport "+p+" tcp flags & (syn | ack) == syn | ack", "drop")
		defer synacks.Remove()
		syn := "tcp dport " + p + " tcp flags & (syn | ack) == syn"
		sent, arrived := client.Filter("podnet_syns_sent", "output", syn, ""), server.Filter("podnet_syns_arrived", "input", syn, "")
		defer sent.Remove()
		defer arrived.Remove()
		done := make(chan error, 1)
		began := time.Now()
		go func() {
			c, s, err := dialPair(client, server, netip.AddrPortFrom(server.IPv4, uint16(port)))
			if err == nil {
				_ = c.Close()
				_ = s.Close()
			}
			done <- err
		}()
		require.Eventually(t, func() bool { return synacks.Packets() > 0 }, 5*time.Second, time.Millisecond, "the first SYN-ACK dropped")
		time.Sleep(dropFor - time.Since(began)) // none when dropFor is 0
		synacks.Remove()
		// The client's next SYN comes at the next whole second: the drop must end before it.
		if ended, next := time.Since(began), dropFor.Truncate(time.Second)+time.Second; ended > next-100*time.Millisecond {
			disturbed = fmt.Sprintf("the drop ended at %v, too close to the SYN at %v", ended, next)
		}
		require.NoError(t, <-done)
		if s, a := sent.Packets(), arrived.Packets(); s != a {
			return fmt.Sprintf("%d SYNs sent, %d arrived: the machine dropped one in transit", s, a)
		}

		var accept, connect *bpf.PodnetEvent
		for deadline := time.Now().Add(5 * time.Second); (accept == nil || connect == nil) && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			events := ring.take()
			for i := range events {
				switch e := &events[i]; {
				case e.Type == uint8(bpf.PodnetEventTypeEVENT_ACCEPT) && e.LocalPort == uint16(port):
					accept = e
				case e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) && e.PeerPort == uint16(port):
					connect = e
				}
			}
		}
		if accept == nil || connect == nil {
			if skipped := kernelSkipped(t, tr); skipped != "" {
				return fmt.Sprintf("connect seen %t, accept seen %t: %s", connect != nil, accept != nil, skipped)
			}
			if server, client := hiddenEnds.count(port); server+client > 0 {
				return fmt.Sprintf("connect seen %t, accept seen %t: the kernel ended %d server and %d client handshakes with a PID 1 thread current, hidden from BPF",
					connect != nil, accept != nil, server, client)
			}
			require.Failf(t, "the connect and the accept", "connect seen %t, accept seen %t (no run skipped, no handshake end hidden)", connect != nil, accept != nil)
		}
		if disturbed != "" {
			return disturbed
		}
		took := time.Duration(accept.SrttUs) * time.Microsecond
		clientTook := time.Duration(connect.SrttUs) * time.Microsecond // exact: from its SYN_SENT
		t.Logf("%s: server handshake %v, SYN-ACK retransmissions %d; client handshake %v", hooks, took, accept.Retransmits, clientTook)
		if apart := (took - clientTook).Abs(); hooks == HooksTPBTF && apart > time.Millisecond {
			// Timed, the server's span is the client's but for two packets' ways (the final
			// ACK's less the first SYN's): tens of µs here. More is a packet that waited on a busy
			// CPU (go test runs other packages' tests beside these; once 1.95 ms in CI), or a span
			// not timed from the first SYN-ACK (an estimate misses the retransmission timer's
			// lateness: 1.2-23 ms in classic mode here). Run again: three such runs fail.
			return fmt.Sprintf("the server's span is %v from the client's: a packet delayed, or the span not timed from the first SYN-ACK", apart)
		}
		assert.Positive(t, accept.Retransmits, "SYN-ACKs retransmitted")
		assert.GreaterOrEqual(t, took, 900*time.Millisecond, "the initial RTO waited")
		if dropFor == 0 {
			assert.Less(t, took, 1500*time.Millisecond, "one RTO, not one per retransmission")
		} else {
			// The estimate counts whole seconds of the kernel's schedule plus the last round trip.
			assert.InDelta(t, clientTook.Seconds(), took.Seconds(), 0.1, "the estimate within the timers' lateness")
		}
		return ""
	}
}

// dialAccept connects to ln and accepts the connection: its two ends.
func dialAccept(ln net.Listener) (c, s net.Conn, err error) {
	if c, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		return nil, nil, err
	}
	if s, err = ln.Accept(); err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	return c, s, nil
}

// dialPair is pair for a goroutine other than the test's: errors returned, not asserted.
func dialPair(client, server *netnstest.Pod, addr netip.AddrPort) (c, s net.Conn, err error) {
	var ln net.Listener
	if err := server.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	if err := client.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), 5*time.Second); return err }); err != nil {
		return nil, nil, err
	}
	if s, err = ln.Accept(); err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	return c, s, nil
}

// A SYN cookie's SYN-ACK leaves the kernel no send time, so a cookie child's first RTT sample is
// the echo of the cookie's timestamp, whose low bits the cookie replaced with the connection's
// options: up to 63 ms too long, in whole ms (found by an independent check: 2-63 ms server
// handshakes on loopback, in the accept records and the histogram). Such a server handshake is
// unknown: no duration on the accept record, nothing in the histogram, whether the client sent
// timestamps or not; without cookies it is timed (to the µs).
func TestSYNCookieServerHandshakesAreUnknown(t *testing.T) {
	netw := netnstest.NewNetwork(t, 39)
	client, server := netw.AddPod(), netw.AddPod()
	tr := openBothSinks(t, HooksAuto)
	ring := collectRingWhere(t, tr, inNetns(server.NetnsInode()))
	totals := roleTotals{}
	drainInto(t, tr, map[uint32]roleTotals{server.NetnsInode(): totals}) // from zero
	const each = 10
	cases := []struct {
		port                 uint16
		syncookies, tsClient string
		timed                bool
	}{
		{7751, "0", "1", true},  // no cookies: the SYN-ACK's send time is kept
		{7752, "2", "1", false}, // every SYN answered with a cookie, timestamps on
		{7753, "2", "0", false}, // cookies without timestamps: no sample at all
	}
	for _, c := range cases {
		server.Exec("sysctl", "-qw", "net.ipv4.tcp_syncookies="+c.syncookies)
		client.Exec("sysctl", "-qw", "net.ipv4.tcp_timestamps="+c.tsClient)
		for range each {
			cc, sc, err := dialPair(client, server, netip.AddrPortFrom(server.IPv4, c.port))
			require.NoError(t, err)
			_ = cc.Close()
			_ = sc.Close()
		}
	}

	accepts := map[uint16][]uint32{}
	for _, e := range collect(ring, 2*each*len(cases)) {
		if (kind{e.Type, e.Role}) == accepted {
			accepts[e.LocalPort] = append(accepts[e.LocalPort], e.SrttUs)
		}
	}
	for _, c := range cases {
		require.Len(t, accepts[c.port], each, "port %d: accept records", c.port)
		for _, us := range accepts[c.port] {
			if c.timed {
				assert.Positive(t, us, "port %d: a handshake without cookies is timed", c.port)
			} else {
				assert.Zero(t, us, "port %d: a cookie child's handshake is unknown, not %d µs", c.port, us)
			}
		}
	}
	require.Eventually(t, func() bool {
		drainInto(t, tr, map[uint32]roleTotals{server.NetnsInode(): totals})
		s := totals[uint8(bpf.PodnetRoleROLE_SERVER)]
		return s != nil && s.Connections >= uint64(each*len(cases))
	}, 5*time.Second, 50*time.Millisecond, "the server connections counted")
	s := totals[uint8(bpf.PodnetRoleROLE_SERVER)]
	var timed uint32
	for _, n := range s.HandshakeBuckets {
		timed += n
	}
	assert.Equal(t, uint64(each*len(cases)), s.Connections)
	assert.Equal(t, uint32(each), timed, "only the handshakes without cookies are in the histogram")
}

// A handshake whose SYN-ACKs were retransmitted and that never ended (the client gave up; its
// RST then removed the request) leaves its first SYN-ACK's time behind; a later handshake on the
// same tuple that retransmits is timed from its own first SYN-ACK, not from the failed one's
// (found by an independent check: a 1 s handshake reported as 24-26 s, in the accept record and
// the histogram, after a failure 20 s before on a reused source port).
func TestServerHandshakeAfterAFailedOneOnTheSameTuple(t *testing.T) {
	netw := netnstest.NewNetwork(t, 250)
	client, server := netw.AddPod(), netw.AddPod()
	untilUndisturbed(t, func(t *testing.T, attempt int) string {
		port, clientPort := 7741+attempt, 47741+attempt
		tr, err := Open(Options{
			Hooks: HooksTPBTF, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 64,
			AggregateInKernel: true, Events: true,
		})
		require.NoError(t, err)
		defer tr.Close()
		ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool { return e.NetnsIno == server.NetnsInode() })
		addr := netip.AddrPortFrom(server.IPv4, uint16(port))
		var ln net.Listener
		require.NoError(t, server.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }))
		defer ln.Close()
		p := strconv.Itoa(port)
		dial := func(timeout time.Duration) (net.Conn, error) {
			var c net.Conn
			err := client.Do(func() (err error) {
				d := net.Dialer{
					Timeout:   timeout,
					LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client.IPv4, uint16(clientPort))),
					Control: func(_, _ string, rc syscall.RawConn) error {
						return rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
					},
				}
				c, err = d.Dial("tcp", addr.String())
				return err
			})
			return c, err
		}

		// The failed handshake: every SYN-ACK dropped until the client gives up; then the server's
		// next retransmission meets the closed port, whose RST ends the request.
		synacks := client.Filter("podnet_synack", "input", "tcp sport "+p+" tcp flags & (syn | ack) == syn | ack", "drop")
		_, err = dial(1500 * time.Millisecond)
		require.Error(t, err, "the first handshake never ends")
		require.Positive(t, synacks.Packets())
		synacks.Remove()
		rsts := client.Filter("podnet_rst", "output", "tcp dport "+p+" tcp flags & rst == rst", "")
		require.Eventually(t, func() bool { return rsts.Packets() > 0 }, 10*time.Second, 10*time.Millisecond, "the request reset")
		rsts.Remove()

		// The same tuple again, its first SYN-ACK lost: one retransmission, ~1 s.
		synacks = client.Filter("podnet_synack2", "input", "tcp sport "+p+" tcp flags & (syn | ack) == syn | ack", "drop")
		done := make(chan error, 1)
		go func() {
			c, err := dial(5 * time.Second)
			if err == nil {
				_ = c.Close()
			}
			done <- err
		}()
		require.Eventually(t, func() bool { return synacks.Packets() > 0 }, 5*time.Second, time.Millisecond, "the first SYN-ACK dropped")
		synacks.Remove()
		require.NoError(t, <-done)
		s, err := ln.Accept()
		require.NoError(t, err)
		_ = s.Close()

		var accept *bpf.PodnetEvent
		for deadline := time.Now().Add(5 * time.Second); accept == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, e := range ring.take() {
				if e.Type == uint8(bpf.PodnetEventTypeEVENT_ACCEPT) && e.PeerPort == uint16(clientPort) {
					accept = &e
				}
			}
		}
		if accept == nil {
			if skipped := kernelSkipped(t, tr); skipped != "" {
				return "no accept: " + skipped
			}
			require.Fail(t, "no accept record")
		}
		took := time.Duration(accept.SrttUs) * time.Microsecond
		t.Logf("server handshake %v, SYN-ACK retransmissions %d", took, accept.Retransmits)
		assert.Positive(t, accept.Retransmits)
		assert.Less(t, took, 1500*time.Millisecond, "timed from this handshake's first SYN-ACK, not the failed one's")
		assert.GreaterOrEqual(t, took, 900*time.Millisecond, "the initial RTO waited")
		return ""
	})
}

// A server whose handshake's final ACK is lost retransmits its SYN-ACK at ~1 s, and the client's
// answer to it ends the handshake: ~1 s from the first SYN-ACK. With TCP timestamps (the
// default) that answer echoes the first SYN-ACK's time, so the kernel's first round trip is the
// whole second already; the classic tracepoints' estimate added the retransmission's wait to it
// and said 2 s (found by an independent check).
func TestServerHandshakeWithItsFinalACKLost(t *testing.T) {
	netw := netnstest.NewNetwork(t, 34)
	client, server := netw.AddPod(), netw.AddPod()
	for i, hooks := range []HookMode{HooksTPBTF, HooksTracepoint} {
		t.Run(string(hooks), func(t *testing.T) {
			untilUndisturbed(t, serverHandshakeWithItsFinalACKLost(hooks, client, server, 7341+10*i))
		})
	}
}

func serverHandshakeWithItsFinalACKLost(hooks HookMode, client, server *netnstest.Pod, firstPort int) func(*testing.T, int) string {
	return func(t *testing.T, attempt int) (disturbed string) {
		port := firstPort + attempt
		tr, err := Open(Options{Hooks: hooks, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 64, Events: true})
		require.NoError(t, err)
		defer tr.Close()
		ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool {
			return e.NetnsIno == server.NetnsInode() && e.Type == uint8(bpf.PodnetEventTypeEVENT_ACCEPT) && e.LocalPort == uint16(port)
		})
		hiddenEnds := watchHiddenEstablishments(t)
		addr := netip.AddrPortFrom(server.IPv4, uint16(port))
		var ln net.Listener
		require.NoError(t, server.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }))
		defer ln.Close()
		p := strconv.Itoa(port)
		acks := server.Filter("podnet_final_ack", "input", "tcp dport "+p+" tcp flags & (syn | ack | fin | rst) == ack", "drop")
		defer acks.Remove()
		synacks := server.Filter("podnet_synacks", "output", "tcp sport "+p+" tcp flags & (syn | ack) == syn | ack", "")
		defer synacks.Remove()

		connected := make(chan time.Time, 1)
		go func() {
			var c net.Conn
			err := client.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), 5*time.Second); return err })
			connected <- time.Now() // the first SYN-ACK arrived: the client is established
			if err == nil {
				time.Sleep(3 * time.Second) // open, sending nothing, until the server's end is done
				_ = c.Close()
			}
		}()
		began := <-connected
		require.Eventually(t, func() bool { return acks.Packets() > 0 }, 5*time.Second, time.Millisecond, "the final ACK dropped")
		time.Sleep(500*time.Millisecond - time.Since(began))
		acks.Remove() // the client's answer to the SYN-ACK retransmitted at ~1 s gets through
		s, err := ln.Accept()
		require.NoError(t, err)
		truth := time.Since(began) // ~ first SYN-ACK to the handshake's end (accept() returned it)
		defer s.Close()

		var accept *bpf.PodnetEvent
		for deadline := time.Now().Add(5 * time.Second); accept == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if events := ring.take(); len(events) > 0 {
				accept = &events[0]
			}
		}
		if accept == nil {
			if skipped := kernelSkipped(t, tr); skipped != "" {
				return "no accept: " + skipped
			}
			if server, client := hiddenEnds.count(port); server+client > 0 {
				return fmt.Sprintf("no accept: the kernel ended %d server handshakes with a PID 1 thread current, hidden from BPF", server)
			}
			require.Fail(t, "no accept record (no run skipped, no handshake end hidden)")
		}
		if n := synacks.Packets(); n != 2 {
			return fmt.Sprintf("%d SYN-ACKs sent, not the first and its one retransmission", n)
		}
		took := time.Duration(accept.SrttUs) * time.Microsecond
		t.Logf("%s: server handshake %v, SYN-ACK retransmissions %d; accept() returned %v after the client's connect()", hooks, took, accept.Retransmits, truth)
		assert.EqualValues(t, 1, accept.Retransmits, "one SYN-ACK retransmitted")
		assert.InDelta(t, truth.Seconds(), took.Seconds(), 0.05, "the handshake from the first SYN-ACK, its retransmission's wait counted once")
		return ""
	}
}
