package kernel

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A TCP Fast Open server connection can be accept()ed while its handshake is still on its way:
// accept() on one CPU inserts its entry while the state program on another, finding none a moment
// before, counted the open and then found accept()'s entry, which it dated and counted again.
// The in-kernel count was one too many and `active` stayed above 0 for good (found by an
// independent check: 82 of 25,000). A server busy-polling accept() on one CPU and a Fast Open
// client on the other make that race often; every open must count once.
func TestFastOpenAcceptedMidHandshakeCountsOnce(t *testing.T) {
	requireTwoCPUs(t, "accept() on one and the handshake's end on the other")
	netw := netnstest.NewNetwork(t, 105)
	client, server := netw.AddPod(), netw.AddPod()
	client.Exec("sysctl", "-qw", "net.ipv4.tcp_fastopen=5", "net.ipv4.ip_local_port_range=10000 60999")
	server.Exec("sysctl", "-qw", "net.ipv4.tcp_fastopen=0x202") // data in the SYN, no cookie needed
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 64, AggregateInKernel: true, Events: true})
	require.NoError(t, err)
	defer tr.Close()
	collectRingWhere(t, tr, func(*bpf.PodnetEvent) bool { return false }) // read, so that nothing waits on a full ring
	drainInto(t, tr, nil)

	addr := &unix.SockaddrInet4{Port: 7105, Addr: server.IPv4.As4()}
	const n = 8000
	raceOnTwoCPUs(t, client, server, addr, n, answerOK, fastOpenExchange)

	sns := server.NetnsInode()
	totals := map[uint32]roleTotals{sns: {}}
	require.Eventually(t, func() bool {
		drainInto(t, tr, totals)
		return totals[sns].get(roleServer).Closed >= n
	}, 10*time.Second, 50*time.Millisecond, "every server close counted")
	got := totals[sns].get(roleServer)
	assert.Equal(t, uint64(n), got.Connections, "each server connection counted once")
	assert.Equal(t, uint64(n), got.Closed, "and closed once")
	// Left at 1-3 in some runs while accept(), finding no entry and the socket established
	// (the handshake's end on the other CPU had just made one), counted it open again in an
	// entry it could not insert (where no start-up scan ran, as here, a connection not born
	// since it looks older than podnet). That 1 is now counted only in accept()'s own entry.
	assert.Zero(t, got.Active, "none left active")
}

// requireTwoCPUs skips a test of a race between two CPUs on a machine with one, saying which.
func requireTwoCPUs(t *testing.T, race string) {
	t.Helper()
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs: the race is between " + race)
	}
}

// raceOnTwoCPUs serves at addr from CPU 1 (busyAccepts, each connection to serve) while the
// client makes n connections with dial from CPU 0, each of which must succeed.
func raceOnTwoCPUs(t *testing.T, client, server *netnstest.Pod, addr *unix.SockaddrInet4, n int, serve func(int),
	dial func(*unix.SockaddrInet4) bool,
) {
	t.Helper()
	var stop atomic.Bool
	served := make(chan error, 1)
	go func() { served <- server.Do(func() error { return busyAccepts(addr, &stop, serve) }) }()
	time.Sleep(100 * time.Millisecond)
	failed := 0
	require.NoError(t, client.Do(func() error {
		if err := onCPU(0); err != nil {
			return err
		}
		for range n {
			if !dial(addr) {
				failed++
			}
		}
		return nil
	}))
	stop.Store(true)
	require.NoError(t, <-served)
	require.Zero(t, failed, "every connection completed")
}

// onCPU pins the calling (locked) thread to cpu.
func onCPU(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

// busyAccepts accepts at addr from CPU 1, polling a non-blocking accept(), and hands each
// connection to serve, which closes it.
func busyAccepts(addr *unix.SockaddrInet4, stop *atomic.Bool, serve func(s int)) error {
	if err := onCPU(1); err != nil {
		return err
	}
	ln, err := listener(addr)
	if err != nil {
		return err
	}
	defer unix.Close(ln)
	// A queue long enough that no SYN is dropped and retried a second later.
	if err := unix.Listen(ln, 4096); err != nil {
		return err
	}
	if err := unix.SetNonblock(ln, true); err != nil {
		return err
	}
	for !stop.Load() {
		s, _, err := unix.Accept(ln)
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return err
		}
		serve(s)
	}
	return nil
}

// answerOK answers "ok" to a Fast Open connection, reads it to its end and closes it.
func answerOK(s int) {
	buf := make([]byte, 64)
	_, _ = unix.Write(s, []byte("ok"))
	for {
		if k, err := unix.Read(s, buf); k <= 0 || err != nil {
			break
		}
	}
	unix.Close(s)
}

// fastOpenExchange connects with TCP_FASTOPEN_CONNECT (the request goes in the SYN), reads the
// answer and closes.
func fastOpenExchange(addr *unix.SockaddrInet4) bool {
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return false
	}
	defer unix.Close(c)
	if unix.SetsockoptInt(c, unix.IPPROTO_TCP, unix.TCP_FASTOPEN_CONNECT, 1) != nil || unix.Connect(c, addr) != nil {
		return false
	}
	if _, err := unix.Write(c, []byte("hello")); err != nil {
		return false
	}
	k, err := unix.Read(c, make([]byte, 16))
	return k > 0 && err == nil
}
