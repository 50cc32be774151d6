package kernel

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A connection whose handshake ended before podnet loaded, waiting in its listener's accept
// queue (no process holds it, so the start-up scan cannot find it), is tracked from its
// accept() where the accept hook runs (events are sent: a metrics-only podnet attaches no
// syscall hook, and sees it only as an untracked close): its bytes count from there while it is
// open, as a found connection's do, and the live reads count it active — in every live-read
// mode. Found by an independent check: its server end counted no bytes while open, then at its
// close everything it moved since its handshake, before podnet loaded included; the walk and
// event modes left it out of active.
func TestConnectionQueuedBeforeLoadCountsFromItsAccept(t *testing.T) {
	for i, m := range liveReadModes {
		o := m.options
		o.Events = true
		t.Run(m.name, func(t *testing.T) { testQueuedBeforeLoad(t, o, byte(238+i)) })
	}
}

func testQueuedBeforeLoad(t *testing.T, o Options, subnet byte) {
	netw := netnstest.NewNetwork(t, subnet)
	client, server := netw.AddPod(), netw.AddPod()
	sns := server.NetnsInode()
	addr := netip.AddrPortFrom(server.IPv4, 7931)
	var ln net.Listener
	require.NoError(t, server.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }))
	defer ln.Close()
	var c net.Conn
	require.NoError(t, client.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), 5*time.Second); return err }))
	defer c.Close()
	_, err := c.Write(make([]byte, 1000)) // before podnet: queued for the server, not counted
	require.NoError(t, err)

	o.Hooks, o.RingBufferSize, o.MaxTrackedConnections, o.MaxAggregates = HooksAuto, 1<<20, 4096, 1024
	tr, err := Open(o)
	require.NoError(t, err)
	defer tr.Close()
	requireMarked(t, tr, o.AggregateInKernel && !o.UnmarkedReads)
	_, err = tr.FindExisting(func(*bpf.PodnetEvent) {}) // the start-up scan, as Start runs it
	require.NoError(t, err)
	totals := map[uint32]roleTotals{sns: {}}
	drainInto(t, tr, totals)

	s, err := ln.Accept()
	require.NoError(t, err)
	defer s.Close()
	_, err = io.ReadFull(s, make([]byte, 1000))
	require.NoError(t, err)
	_, err = s.Write(make([]byte, 2000))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 2000))
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		drainInto(t, tr, totals)
		return totals[sns].get(roleServer).BytesSent >= 2000
	}, 5*time.Second, 50*time.Millisecond, "the server's bytes counted while it is open")
	open := totals[sns].get(roleServer)
	assert.Equal(t, uint64(2000), open.BytesSent, "sent since its accept")
	assert.Zero(t, open.BytesReceived, "received before podnet loaded: not counted")
	if !tr.MarkedReads() {
		assert.Equal(t, uint64(1), open.Active, "counted active by the walk")
	}

	require.NoError(t, s.Close())
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool {
		drainInto(t, tr, totals)
		return !o.AggregateInKernel || totals[sns].get(roleServer).Closed == 1
	}, 5*time.Second, 50*time.Millisecond, "its close")
	closed := totals[sns].get(roleServer)
	assert.Equal(t, uint64(2000), closed.BytesSent, "its close adds nothing it counted already")
	assert.Zero(t, closed.BytesReceived)
	assert.Zero(t, closed.Connections, "its open is not counted: it predates podnet")
	assert.Zero(t, closed.Active)
}

// A connection whose handshake podnet did not see (queued before it loaded here; an evicted
// entry, or a handshake the kernel ran no program for, alike) is tracked from its accept(). Left
// out by sampling there, and reset later (abnormal: kept after all), its accept record is written
// at its close, dated when accept() returned it. Found by an independent check: dated 0, the
// machine's boot, in the logs.
func TestSampledOutAcceptOfAnUnseenHandshakeKeepsItsTime(t *testing.T) {
	netw := netnstest.NewNetwork(t, 119)
	pod := netw.AddPod()
	addr := netip.AddrPortFrom(pod.IPv4, 7919)
	const n = 8
	ln, clients := queuedConnections(t, pod, addr, n)
	ring := sampledOutRing(t, pod)

	before, after := acceptAndReset(t, ln, clients)
	accepts := acceptsAt(ring.settled(t, pod), addr.Port())
	for _, e := range accepts {
		assert.NotZero(t, e.Flags&uint8(bpf.PodnetEventFlagEVENT_FLAG_OPEN_UNSEEN), "established before podnet loaded: no new connection")
		assert.Equal(t, uint32(1), e.SampleOneIn, "kept for its reset")
		assert.GreaterOrEqual(t, e.TimestampNs, before, "dated at its accept, not %d", e.TimestampNs)
		assert.LessOrEqual(t, e.TimestampNs, after, "dated at its accept, not at its close")
	}
	assert.Len(t, accepts, n, "every reset connection's accept, written at its close")
}

// sampledOutRing loads podnet with logs sampled so that every normal connection is left out
// (and metrics in the kernel), and collects the pod's events.
func sampledOutRing(t *testing.T, pod *netnstest.Pod) *collector {
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 20, MaxTrackedConnections: 4096, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true, SampleOneIn: 1 << 30,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() }) // after the collector's (cleanups run last first)
	return collectRing(t, tr, pod.NetnsInode())
}

// acceptsAt is the accept events of the server at port.
func acceptsAt(events []bpf.PodnetEvent, port uint16) []bpf.PodnetEvent {
	var out []bpf.PodnetEvent
	for _, e := range events {
		if e.Type == uint8(bpf.PodnetEventTypeEVENT_ACCEPT) && e.LocalPort == port {
			out = append(out, e)
		}
	}
	return out
}

// queuedConnections listens at addr in pod and connects n clients to it, left in its accept
// queue; both are closed when the test ends.
func queuedConnections(t *testing.T, pod *netnstest.Pod, addr netip.AddrPort, n int) (net.Listener, []net.Conn) {
	var ln net.Listener
	require.NoError(t, pod.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }))
	t.Cleanup(func() { _ = ln.Close() })
	clients := make([]net.Conn, 0, n)
	for range n {
		var c net.Conn
		require.NoError(t, pod.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), 5*time.Second); return err }))
		t.Cleanup(func() { _ = c.Close() })
		clients = append(clients, c)
	}
	return ln, clients
}

// acceptAndReset accepts every client's connection from ln, then resets each (abnormal: kept
// whatever the sampling) and closes the clients; before and after bracket the accepts.
func acceptAndReset(t *testing.T, ln net.Listener, clients []net.Conn) (before, after uint64) {
	before = boottime(t)
	servers := make([]net.Conn, 0, len(clients))
	for range clients {
		s, err := ln.Accept()
		require.NoError(t, err)
		servers = append(servers, s)
	}
	after = boottime(t)
	for _, s := range servers {
		require.NoError(t, s.(*net.TCPConn).SetLinger(0))
		require.NoError(t, s.Close())
	}
	for _, c := range clients {
		_ = c.Close()
	}
	return before, after
}

// boottime is CLOCK_BOOTTIME now, the clock of the events' timestamps.
func boottime(t *testing.T) uint64 {
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts))
	return uint64(ts.Nano())
}

// The same with the handshake seen: a connection left out by sampling that waited in the accept
// queue and was reset after accept() is kept after all, and its accept record, written at its
// close, is dated when accept() returned it, not when its handshake ended (as the record of a
// kept connection is). Found by an independent check: dated at the handshake, the queue's wait
// early.
func TestSampledOutAcceptIsDatedAtAccept(t *testing.T) {
	netw := netnstest.NewNetwork(t, 120)
	pod := netw.AddPod()
	addr := netip.AddrPortFrom(pod.IPv4, 7918)
	ring := sampledOutRing(t, pod)
	const n = 8
	ln, clients := queuedConnections(t, pod, addr, n)
	queued := boottime(t)
	// Queued long enough that the handshake's time and accept()'s cannot be confused.
	for boottime(t) < queued+uint64(200*time.Millisecond) {
		time.Sleep(10 * time.Millisecond)
	}
	before, after := acceptAndReset(t, ln, clients)
	accepts := acceptsAt(ring.settled(t, pod), addr.Port())
	for _, e := range accepts {
		assert.Equal(t, uint32(1), e.SampleOneIn, "kept for its reset")
		assert.Less(t, e.StartNs, queued, "its handshake ended before it was queued")
		assert.GreaterOrEqual(t, e.TimestampNs, before, "dated at its accept, not at its handshake (%d)", e.StartNs)
		assert.LessOrEqual(t, e.TimestampNs, after, "dated at its accept, not at its close")
	}
	assert.Len(t, accepts, n, "every reset connection's accept, written at its close")
}
