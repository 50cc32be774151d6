package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A connect() from a local port bound beforehand whose tuple is taken (another socket holds
// the same port to the same peer) fails with EADDRNOTAVAIL inside the call: reported so in the
// ring and counted so in the aggregates, not as cancelled (an independent check saw 400 of 400
// reported cancelled). And a connect() whose arguments the kernel refuses before any attempt
// (a sockaddr of another family, too short, unreadable; a link-local peer with no scope id) is no
// failed connection: nothing at all.
func TestConnectFailuresInsideTheCall(t *testing.T) {
	netw := netnstest.NewNetwork(t, 247)
	client, server := netw.AddPod(), netw.AddPod()
	dst := netip.AddrPortFrom(server.IPv4, 7247)
	server.AcceptAll(t, dst, nil)
	tr, ring := openFailedConnects(t, client)

	const taken = 5
	var outcomes []error
	require.NoError(t, client.Do(func() error {
		local := &unix.SockaddrInet4{Port: 41247, Addr: client.IPv4.As4()}
		peer := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
		holder, err := blockingBoundSocket(local)
		if err != nil {
			return err
		}
		defer unix.Close(holder)
		if err := unix.Connect(holder, peer); err != nil {
			return err
		}
		for range taken {
			fd, err := blockingBoundSocket(local)
			if err != nil {
				return err
			}
			outcomes = append(outcomes, unix.Connect(fd, peer))
			unix.Close(fd)
		}
		// Refused before any attempt: another family, a sockaddr too short, an unreadable one.
		sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.Addr().As4()}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		outcomes = append(outcomes,
			unix.Connect(fd, &unix.SockaddrInet6{Port: int(dst.Port())}),
			rawConnect(fd, unsafe.Pointer(&sa), 4),
			rawConnect(fd, nil, 16))
		// An IPv6 link-local peer with no interface to reach it on (no scope id, no bound
		// device): EINVAL, before any SYN.
		fd6, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd6)
		outcomes = append(outcomes, unix.Connect(fd6, &unix.SockaddrInet6{Port: int(dst.Port()), Addr: netip.MustParseAddr("fe80::1").As16()}))
		return nil
	}))
	for _, err := range outcomes[:taken] {
		assert.ErrorIs(t, err, unix.EADDRNOTAVAIL)
	}
	assert.ErrorIs(t, outcomes[taken], unix.EAFNOSUPPORT)
	assert.ErrorIs(t, outcomes[taken+1], unix.EINVAL)
	assert.ErrorIs(t, outcomes[taken+2], unix.EFAULT)
	assert.ErrorIs(t, outcomes[taken+3], unix.EINVAL)

	var failed []bpf.PodnetEvent
	require.Eventually(t, func() bool {
		failed = append(failed, ring.take()...)
		return len(failed) >= taken
	}, 5*time.Second, 10*time.Millisecond, "the failed connects")
	time.Sleep(100 * time.Millisecond)
	failed = append(failed, ring.take()...)
	errnos := map[int32]int{}
	for _, e := range failed {
		errnos[e.Error]++
	}
	assert.Equal(t, map[int32]int{int32(unix.EADDRNOTAVAIL): taken}, errnos, "failed connects by errno (none for refused arguments)")
	assert.Equal(t, map[int32]uint64{int32(unix.EADDRNOTAVAIL): taken}, failedCounted(t, tr, client.NetnsInode()),
		"counted failed connects by errno")
}

// openFailedConnects loads podnet with events and in-kernel aggregation, and collects the failed
// connects of the pod; its aggregates are drained, so that failedCounted counts from zero.
func openFailedConnects(t *testing.T, pod *netnstest.Pod) (*Tracer, *collector) {
	t.Helper()
	tr := openBothSinks(t, HooksAuto)
	ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool {
		return e.NetnsIno == pod.NetnsInode() && e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) && e.Error != 0
	})
	failedCounted(t, tr, pod.NetnsInode())
	return tr, ring
}

// failedCounted drains the aggregates: failed connects counted in netns, by errno.
func failedCounted(t *testing.T, tr *Tracer, netns uint32) map[int32]uint64 {
	counted := map[int32]uint64{}
	require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		if k.NetnsIno == netns && k.Error != 0 {
			counted[k.Error] += v.Connections
		}
	}))
	return counted
}

// rawConnect is connect(2) with a sockaddr as given: what the kernel must refuse.
func rawConnect(fd int, sa unsafe.Pointer, addrlen uintptr) error {
	if _, _, errno := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(sa), addrlen); errno != 0 {
		return errno
	}
	return nil
}

// blockingBoundSocket is a blocking TCP socket bound to local with SO_REUSEADDR (a second one may bind the port
// while the first holds it).
func blockingBoundSocket(local *unix.SockaddrInet4) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, err
	}
	if err := errors.Join(unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1), unix.Bind(fd, local)); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Connects the kernel refuses as attempts, and disconnects in SYN_SENT, say what the
// application got: a destination behind a blackhole route is EINVAL from the route lookup (an
// attempt, unlike the arguments' EINVALs above: found by an independent check, such connects
// were in no record), and shutdown() or connect(AF_UNSPEC) before the handshake ended is
// ECONNRESET (reported cancelled before, as a close() in SYN_SENT still is). IPv4 and IPv6.
func TestBlackholeRoutesAndDisconnectsInSynSent(t *testing.T) {
	netw := netnstest.NewNetwork(t, 38)
	client := netw.AddPod()
	hole4, hole6 := blackholes(client, netip.MustParseAddr("10.213.38.200"), netip.MustParseAddr("fd00:213:38::200"))
	silent := netip.MustParseAddr("10.213.38.201") // on the pod's network, no one has it: SYN_SENT until disconnected
	tr, ring := openFailedConnects(t, client)

	var outcomes []error
	require.NoError(t, client.Do(func() (err error) {
		if outcomes, err = connectEach(0, hole4, hole6); err != nil {
			return err
		}
		for _, disconnect := range []func(fd int) error{
			func(fd int) error { return unix.Shutdown(fd, unix.SHUT_RDWR) },
			func(fd int) error {
				return rawConnect(fd, unsafe.Pointer(&unix.RawSockaddr{Family: unix.AF_UNSPEC}), 16)
			},
			func(int) error { return nil }, // close() alone: cancelled
		} {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return err
			}
			if err := unix.Connect(fd, &unix.SockaddrInet4{Port: 80, Addr: silent.As4()}); !errors.Is(err, unix.EINPROGRESS) {
				unix.Close(fd)
				return err
			}
			time.Sleep(20 * time.Millisecond) // the SYN waits for its neighbour in SYN_SENT
			_ = disconnect(fd)
			soErr, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			outcomes = append(outcomes, unix.Errno(soErr))
			unix.Close(fd)
		}
		return nil
	}))
	assert.ErrorIs(t, outcomes[0], unix.EINVAL, "the scenario: a blackhole route (IPv4)")
	assert.ErrorIs(t, outcomes[1], unix.EINVAL, "the scenario: a blackhole route (IPv6)")
	assert.ErrorIs(t, outcomes[2], unix.ECONNRESET, "the scenario: what shutdown() in SYN_SENT tells the application")
	assert.ErrorIs(t, outcomes[3], unix.ECONNRESET, "the scenario: what connect(AF_UNSPEC) in SYN_SENT tells it")

	var failed []bpf.PodnetEvent
	require.Eventually(t, func() bool {
		failed = append(failed, ring.take()...)
		return len(failed) >= 5
	}, 5*time.Second, 10*time.Millisecond, "the failed connects")
	time.Sleep(100 * time.Millisecond)
	failed = append(failed, ring.take()...)
	errnos := map[int32]int{}
	peers := map[netip.Addr]int{}
	for _, e := range failed {
		errnos[e.Error]++
		if e.Error == int32(unix.EINVAL) {
			peer := netip.AddrFrom16(e.PeerAddr)
			if e.Family == unix.AF_INET {
				peer = netip.AddrFrom4([4]byte(e.PeerAddr[:4]))
			}
			peers[peer]++
		}
	}
	want := map[int32]int{int32(unix.EINVAL): 2, int32(unix.ECONNRESET): 2, int32(unix.ECANCELED): 1}
	assert.Equal(t, want, errnos, "failed connects by errno")
	assert.Equal(t, map[netip.Addr]int{hole4: 1, hole6: 1}, peers, "each blackholed peer, as connect() was given it")
	counted := map[int32]int{}
	for errno, n := range failedCounted(t, tr, client.NetnsInode()) {
		counted[errno] = int(n)
	}
	assert.Equal(t, want, counted, "counted failed connects by errno")
}

// connect() on an MPTCP socket connects its first TCP subflow: one that fails before its SYN (a
// blackhole route: EINVAL from the route lookup) is a failed connect like a TCP socket's, in the
// ring and the aggregates, with its peer (the descriptor's socket is the MPTCP one, which the
// hook took for no TCP socket: found by an independent check, such failures were in no record).
// IPv4 and IPv6.
func TestMPTCPConnectThatFailsBeforeItsSYN(t *testing.T) {
	netw := netnstest.NewNetwork(t, 42)
	client := netw.AddPod()
	hole4, hole6 := blackholes(client, netip.MustParseAddr("10.213.42.200"), netip.MustParseAddr("fd00:213:2a::200"))
	tr, ring := openFailedConnects(t, client)

	var outcomes []error
	require.NoError(t, client.Do(func() (err error) {
		outcomes, err = connectEach(unix.IPPROTO_MPTCP, hole4, hole6)
		return err
	}))
	for _, err := range outcomes {
		require.ErrorIs(t, err, unix.EINVAL)
	}
	var failed []bpf.PodnetEvent
	require.Eventually(t, func() bool {
		failed = append(failed, ring.take()...)
		return len(failed) >= 2
	}, 5*time.Second, 10*time.Millisecond, "both failed connects")
	peers := map[netip.Addr]int32{}
	for _, e := range failed {
		peer := netip.AddrFrom16(e.PeerAddr)
		if e.Family == unix.AF_INET {
			peer = netip.AddrFrom4([4]byte(e.PeerAddr[:4]))
		}
		peers[peer] = e.Error
		assert.Equal(t, uint32(os.Getpid()), e.Pid, "the connecting process")
	}
	assert.Equal(t, map[netip.Addr]int32{hole4: int32(unix.EINVAL), hole6: int32(unix.EINVAL)}, peers)
	assert.Equal(t, map[int32]uint64{int32(unix.EINVAL): 2}, failedCounted(t, tr, client.NetnsInode()), "counted")
}

// connectEach connects a new stream socket of protocol proto (0: TCP) to port 80 of each address,
// in the calling thread's network namespace, and returns what each connect() returned.
func connectEach(proto int, to ...netip.Addr) ([]error, error) {
	var outcomes []error
	for _, a := range to {
		var sa unix.Sockaddr = &unix.SockaddrInet6{Port: 80, Addr: a.As16()}
		family := unix.AF_INET6
		if a.Is4() {
			family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: 80, Addr: a.As4()}
		}
		fd, err := unix.Socket(family, unix.SOCK_STREAM, proto)
		if err != nil {
			return nil, fmt.Errorf("a socket of protocol %d: %w", proto, err)
		}
		outcomes = append(outcomes, unix.Connect(fd, sa))
		unix.Close(fd)
	}
	return outcomes, nil
}

// blackholes routes an IPv4 and an IPv6 address into a blackhole in pod, and returns them.
func blackholes(pod *netnstest.Pod, hole4, hole6 netip.Addr) (netip.Addr, netip.Addr) {
	pod.Exec("ip", "route", "add", "blackhole", hole4.String()+"/32")
	pod.Exec("ip", "-6", "route", "add", "blackhole", hole6.String()+"/128")
	return hole4, hole6
}
