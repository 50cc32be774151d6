package kernel

import (
	"context"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// visitedBy is how many open connections one drain's live read looked at (every socket of the
// machine is counted: other tests' too).
func visitedBy(t *testing.T, tr *Tracer, drain func()) uint64 {
	t.Helper()
	before, err := tr.Counters()
	require.NoError(t, err)
	drain()
	after, err := tr.Counters()
	require.NoError(t, err)
	return after.ProgressVisited - before.ProgressVisited
}

// Marked reads (issue 12) visit the sockets that moved data, not the idle ones: with 1,000 idle
// connections and 5 busy ones open, a read looks at a few sockets where the walk looks at all
// 2,010, and the counts are the same: bytes exact, every connection active.
func TestMarkedReadsVisitOnlySocketsThatMovedData(t *testing.T) {
	for _, c := range []struct {
		name     string
		unmarked bool
		subnet   byte
	}{{"marked", false, 202}, {"walk", true, 203}} {
		t.Run(c.name, func(t *testing.T) {
			netw := netnstest.NewNetwork(t, c.subnet)
			clientPod, serverPod := netw.AddPod(), netw.AddPod()
			tr, err := Open(Options{
				Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 65536, AggregateInKernel: true, MaxAggregates: 1024,
				UnmarkedReads: c.unmarked,
			})
			require.NoError(t, err)
			defer tr.Close()
			requireMarked(t, tr, !c.unmarked)
			const idle, busy, payload = 1000, 5, 50_000
			clients, servers := connectPods(t, clientPod, serverPod, 7000+int(c.subnet), idle+busy)
			clientTotals, serverTotals := roleTotals{}, roleTotals{}
			watched := map[uint32]roleTotals{clientPod.NetnsInode(): clientTotals, serverPod.NetnsInode(): serverTotals}
			drain := func() { drainInto(t, tr, watched) }
			drain()
			for round := 1; round <= 3; round++ {
				for i := range busy {
					_, err := clients[i].Write(make([]byte, payload))
					require.NoError(t, err)
					_, err = io.ReadFull(servers[i], make([]byte, payload))
					require.NoError(t, err)
				}
				visited := visitedBy(t, tr, drain)
				cl, sv := clientTotals.get(roleClient), serverTotals.get(roleServer)
				assert.Equal(t, uint64(round*busy*payload), cl.BytesSent, "round %d: client bytes, counted while open", round)
				assert.Equal(t, uint64(round*busy*payload), sv.BytesReceived, "round %d: server bytes, counted while open", round)
				assert.Equal(t, uint64(idle+busy), cl.Active, "round %d: clients active", round)
				assert.Equal(t, uint64(idle+busy), sv.Active, "round %d: servers active", round)
				if c.unmarked {
					assert.GreaterOrEqual(t, visited, uint64(2*(idle+busy)), "round %d: the walk looks at every open socket", round)
				} else {
					assert.Less(t, visited, uint64(100), "round %d: a marked read looks at the sockets that moved data (10), not the 2,000 idle ones", round)
				}
			}
			hidden := watchHiddenCloses(t)
			for _, conn := range append(clients[busy:], servers[busy:]...) { // the idle ones go
				require.NoError(t, conn.Close())
			}
			// Closes the development VM hides from every BPF program (internal/hiddenclose)
			// leave their connections counted active, exactly those.
			var cl, sv uint64
			var hs, hc int
			left := assert.Eventually(t, func() bool {
				drain()
				hs, hc = hidden.count(7000 + int(c.subnet))
				cl, sv = clientTotals.get(roleClient).Active, serverTotals.get(roleServer).Active
				return cl == uint64(busy+hc) && sv == uint64(busy+hs)
			}, 5*time.Second, 20*time.Millisecond)
			if !left {
				require.FailNow(t, "closing the idle connections leaves the busy ones active",
					"active: %d clients, %d servers; want %d each, plus the closes hidden from BPF (%d client, %d server)", cl, sv, busy, hc, hs)
			}
		})
	}
}

// A socket that finds its marked set full is not lost: the next read walks every connection.
// With sets of 4 and 20 connections moving data, every byte is still counted at each read, and
// the full sets are counted.
func TestMarkedReadsWalkEveryConnectionWhenTheSetIsFull(t *testing.T) {
	netw := netnstest.NewNetwork(t, 204)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr := openMarkedSets(t, 4)
	countRounds(t, tr, clientPod, serverPod, 7204, 20, nil)
	c, err := tr.Counters()
	require.NoError(t, err)
	assert.NotZero(t, c.MarkFull, "marks that found the set full are counted")
}

// Sockets whose front slot another socket holds are marked in the hash set behind the front, and
// read from there: with sets of 32 (a front of 32 slots, a hash of 32) and 16 connections moving
// data, 32 sockets share 32 slots, so some always collide, and none finds the set full (the
// read then walks only the sets, not every connection). Every byte is counted at each read.
func TestMarkedReadsCountSocketsWhoseFrontSlotIsTaken(t *testing.T) {
	netw := netnstest.NewNetwork(t, 214)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr := openMarkedSets(t, 32)
	countRounds(t, tr, clientPod, serverPod, 7214, 16, func(round int) {
		assert.NotZero(t, setLen(t, tr.marks.maps[tr.marks.current]), "round %d: sockets marked behind the front", round)
	})
	c, err := tr.Counters()
	require.NoError(t, err)
	assert.Zero(t, c.MarkFull, "no set was full: the reads took the sets alone")
}

// countRounds opens n connections between the pods and, three rounds over, has every client send
// 10,000 bytes that its server reads, then drains tr (calling beforeDrain first, if set): each
// round's totals are exact, and all n connections are active.
func countRounds(t *testing.T, tr *Tracer, clientPod, serverPod *netnstest.Pod, port, n int, beforeDrain func(round int)) {
	t.Helper()
	const payload = 10_000
	clients, servers := connectPods(t, clientPod, serverPod, port, n)
	clientTotals, serverTotals := roleTotals{}, roleTotals{}
	watched := map[uint32]roleTotals{clientPod.NetnsInode(): clientTotals, serverPod.NetnsInode(): serverTotals}
	for round := 1; round <= 3; round++ {
		for i := range n {
			_, err := clients[i].Write(make([]byte, payload))
			require.NoError(t, err)
			_, err = io.ReadFull(servers[i], make([]byte, payload))
			require.NoError(t, err)
		}
		if beforeDrain != nil {
			beforeDrain(round)
		}
		drainInto(t, tr, watched)
		assert.Equal(t, uint64(round*n*payload), clientTotals.get(roleClient).BytesSent, "round %d: client bytes", round)
		assert.Equal(t, uint64(round*n*payload), serverTotals.get(roleServer).BytesReceived, "round %d: server bytes", round)
		assert.Equal(t, uint64(n), clientTotals.get(roleClient).Active, "round %d: active", round)
	}
}

// setLen is how many sockets a marked set holds.
func setLen(t *testing.T, set *ebpf.Map) int {
	t.Helper()
	var key uint64
	var value uint8
	n := 0
	it := set.Iterate()
	for it.Next(&key, &value) {
		n++
	}
	require.NoError(t, it.Err())
	return n
}

// A socket stays marked while it has data in flight: the rest of a send that the kernel
// transmits after the application's last send call (the peer's window was full) is counted by
// the read after it goes out, with no syscall on that socket to mark it.
func TestMarkedReadsFollowDataInFlight(t *testing.T) {
	netw := netnstest.NewNetwork(t, 205)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr := openMarked(t)
	clientTotals, serverTotals := roleTotals{}, roleTotals{}
	watched := map[uint32]roleTotals{clientPod.NetnsInode(): clientTotals, serverPod.NetnsInode(): serverTotals}

	client, server := slowReaderPair(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv4, 7205))

	const payload = 1 << 20
	_, err := client.Write(make([]byte, payload)) // queued whole: the call returns
	require.NoError(t, err)
	drainInto(t, tr, watched)
	sentEarly := clientTotals.get(roleClient).BytesSent
	require.Less(t, sentEarly, uint64(payload), "the peer's window holds back most of the payload")
	// A read that finds nothing new: the window is still full. The socket has moved nothing
	// since the last read, but its data is in flight, so it stays marked.
	drainInto(t, tr, watched)
	require.Equal(t, sentEarly, clientTotals.get(roleClient).BytesSent, "nothing more goes out while the server reads nothing")

	_, err = io.ReadFull(server, make([]byte, payload)) // the rest goes out as the server reads
	require.NoError(t, err)
	drainInto(t, tr, watched)
	assert.Equal(t, uint64(payload), clientTotals.get(roleClient).BytesSent, "the rest, sent after the last send call, counted by the next read (%d early)", sentEarly)
	assert.Equal(t, uint64(payload), serverTotals.get(roleServer).BytesReceived, "read by the server")
}

// Arriving data marks its socket: bytes the application has not read yet are counted by the next
// read all the same (the kernel counts them received when they arrive), with no call of the
// application on that socket.
func TestMarkedReadsCountBytesNotReadYet(t *testing.T) {
	netw := netnstest.NewNetwork(t, 210)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr := openMarked(t)
	clients, servers := connectPods(t, clientPod, serverPod, 7210, 1)
	clientTotals, serverTotals := roleTotals{}, roleTotals{}
	watched := map[uint32]roleTotals{clientPod.NetnsInode(): clientTotals, serverPod.NetnsInode(): serverTotals}
	drainInto(t, tr, watched)

	const payload = 10_000
	_, err := clients[0].Write(make([]byte, payload)) // the server reads none of it
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		drainInto(t, tr, watched)
		return serverTotals.get(roleServer).BytesReceived == payload
	}, 5*time.Second, 20*time.Millisecond, "the server's unread bytes counted while open")
	_, err = io.ReadFull(servers[0], make([]byte, payload))
	require.NoError(t, err)
	drainInto(t, tr, watched)
	assert.Equal(t, uint64(payload), serverTotals.get(roleServer).BytesReceived, "reading them adds nothing")
	assert.Equal(t, uint64(payload), clientTotals.get(roleClient).BytesSent)
}

// An MPTCP connection moves its data on TCP subflows that no send call names: the kernel's
// MPTCP layer queues onto a subflow itself (no tcp_sendmsg_locked). Its bytes must still be
// counted while it is open, at both ends.
func TestMarkedReadsCountMPTCPSubflows(t *testing.T) {
	netw := netnstest.NewNetwork(t, 212)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr := openMarked(t)

	client, server := mptcpPair(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv4, 7212))
	defer client.Close()
	defer server.Close()

	clientTotals, serverTotals := roleTotals{}, roleTotals{}
	watched := map[uint32]roleTotals{clientPod.NetnsInode(): clientTotals, serverPod.NetnsInode(): serverTotals}
	drainInto(t, tr, watched)
	// One way only: the client's subflow then receives nothing but ACKs, so no arrival marks it.
	const payload = 10_000
	_, err := client.Write(make([]byte, payload))
	require.NoError(t, err)
	_, err = io.ReadFull(server, make([]byte, payload))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		drainInto(t, tr, watched)
		return clientTotals.get(roleClient).BytesSent == payload && serverTotals.get(roleServer).BytesReceived == payload
	}, 5*time.Second, 50*time.Millisecond, "both ends' bytes counted while open")
}

// Connections that open and close without data mark nothing: the arrivals they cause (the
// listener's wakeup for accept, each end's FIN) carry no bytes to count early, and a connect/
// close workload pays no mark per end.
func TestMarkedReadsConnectCloseMarksNothing(t *testing.T) {
	netw := netnstest.NewNetwork(t, 213)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr := openMarked(t)
	if !tr.MarkedReads() {
		t.Skip("no marked reads on this kernel (needs the tcp_sendmsg_locked tracepoint, 6.12+): nothing marks")
	}
	marking := func() int { // sockets in the set the hooks mark now (every socket of the machine)
		n, it := 0, tr.marks.maps[tr.marks.current].Iterate()
		var k uint64
		var v uint8
		for it.Next(&k, &v) {
			n++
		}
		require.NoError(t, it.Err())
		return n
	}
	before := marking()
	const n = 500
	clients, servers := connectPods(t, clientPod, serverPod, 7213, n)
	for i := range n {
		require.NoError(t, clients[i].Close())
		require.NoError(t, servers[i].Close())
	}
	require.Eventually(t, func() bool { return len(clientPod.OpenTCPSockets()) == 0 }, 5*time.Second, 20*time.Millisecond, "every connection closed")
	marked := marking() - before
	assert.Less(t, marked, n/10, "%d sockets marked by %d connections that moved no data (other traffic on the machine may mark a few)", marked, n)
}

// A mark the kernel skipped (sk_data_ready in a softirq that interrupted the same program on
// that CPU: its recursion guard) is not a byte left for a later read: the read after the skip
// walks every connection. The skips are simulated: the sockets' marks are taken out of the set
// the hooks fill, and the mark programs' skip count is the test's. Without a skip counted, the
// read takes the set alone and misses those bytes (the round that shows the walk is what counts
// them); the next walk catches them up.
func TestMarkedReadsWalkEveryConnectionAfterASkippedMark(t *testing.T) {
	netw := netnstest.NewNetwork(t, 139)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr := openMarked(t)
	var skips uint64
	tr.marks.skips = func() (uint64, error) { return skips, nil }
	const n, payload = 5, 10_000
	clients, servers := connectPods(t, clientPod, serverPod, 7139, n)
	clientTotals, serverTotals := roleTotals{}, roleTotals{}
	watched := map[uint32]roleTotals{clientPod.NetnsInode(): clientTotals, serverPod.NetnsInode(): serverTotals}
	drainInto(t, tr, watched)
	for _, r := range []struct {
		unmark, skip bool
		counted      int // rounds of bytes the read has counted
		why          string
	}{
		{false, false, 1, "marked: the set has every socket"},
		{true, true, 2, "marks skipped and counted: the read walks every connection"},
		{true, false, 2, "marks gone with no skip counted: the read takes the set alone, this round's bytes wait"},
		{true, true, 4, "a skip again: the walk counts this round's bytes and the last one's"},
	} {
		for i := range n {
			_, err := clients[i].Write(make([]byte, payload))
			require.NoError(t, err)
			_, err = io.ReadFull(servers[i], make([]byte, payload))
			require.NoError(t, err)
		}
		if r.unmark {
			unmarkAll(t, tr)
		}
		if r.skip {
			skips++
		}
		drainInto(t, tr, watched)
		assert.Equal(t, uint64(r.counted*n*payload), clientTotals.get(roleClient).BytesSent, "client bytes: %s", r.why)
		assert.Equal(t, uint64(r.counted*n*payload), serverTotals.get(roleServer).BytesReceived, "server bytes: %s", r.why)
	}
	c, err := tr.Counters()
	require.NoError(t, err)
	assert.Zero(t, c.RecursionMisses, "no program run was skipped for good")
}

// unmarkAll empties the set and the half of the front that the hooks mark now, as if every mark
// since the last read had been skipped.
func unmarkAll(t *testing.T, tr *Tracer) {
	t.Helper()
	set := tr.marks.maps[tr.marks.current]
	var key uint64
	var value uint8
	var keys []uint64
	it := set.Iterate()
	for it.Next(&key, &value) {
		keys = append(keys, key)
	}
	require.NoError(t, it.Err())
	for _, k := range keys {
		require.NoError(t, set.Delete(k))
	}
	front := tr.coll.Maps[bpf.PodnetMapMarkedFront]
	half := front.MaxEntries() / 2
	for i := uint32(tr.marks.current) * half; i < uint32(tr.marks.current+1)*half; i++ {
		require.NoError(t, front.Update(i, uint64(0), ebpf.UpdateExist))
	}
}

// slowReaderPair connects clientPod to serverPod at addr: a server with a small receive buffer
// (inherited from the listener) that reads nothing yet, and a client whose send buffer takes a
// whole 1 MiB payload at once. Both are closed at cleanup.
func slowReaderPair(t *testing.T, clientPod, serverPod *netnstest.Pod, addr netip.AddrPort) (client, server net.Conn) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, serverPod.Do(func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
			if err != nil {
				return err
			}
			return serr
		}}
		ln, err = lc.Listen(context.Background(), "tcp", addr.String())
		return err
	}))
	defer ln.Close()
	require.NoError(t, clientPod.Do(func() (err error) { client, err = net.Dial("tcp", addr.String()); return err }))
	t.Cleanup(func() { _ = client.Close() })
	server, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.Close() })
	require.NoError(t, client.(*net.TCPConn).SetWriteBuffer(4<<20))
	return client, server
}
