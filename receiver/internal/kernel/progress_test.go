package kernel

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

var (
	roleClient = uint8(bpf.PodnetRoleROLE_CLIENT)
	roleServer = uint8(bpf.PodnetRoleROLE_SERVER)
)

// connectPods opens n connections from client to a listener in server's IPv4 address at
// port, returning both ends (connectPodsAt).
func connectPods(t testing.TB, client, server *netnstest.Pod, port, n int) (clients, servers []net.Conn) {
	t.Helper()
	return connectPodsAt(t, client, server, netip.AddrPortFrom(server.IPv4, uint16(port)), n)
}

// roleTotals are the drained aggregates of one namespace, by role; active is the last drain's.
type roleTotals map[uint8]*bpf.PodnetAggValue

// drainInto drains once and adds each namespace's keys to its totals; active is replaced, as
// it is a snapshot. (A drain takes every key: all namespaces watched are drained together.)
func drainInto(t *testing.T, tr *Tracer, totals map[uint32]roleTotals) {
	t.Helper()
	active := map[uint32]map[uint8]uint64{}
	require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		byRole, ok := totals[k.NetnsIno]
		if !ok {
			return
		}
		s := byRole[k.Role]
		if s == nil {
			s = &bpf.PodnetAggValue{}
			byRole[k.Role] = s
		}
		s.Connections += v.Connections
		s.Closed += v.Closed
		s.BytesSent += v.BytesSent
		s.BytesReceived += v.BytesReceived
		s.Retransmits += v.Retransmits
		s.DurationNs += v.DurationNs
		s.HandshakeUs += v.HandshakeUs
		for i, n := range v.HandshakeBuckets {
			s.HandshakeBuckets[i] += n
		}
		if active[k.NetnsIno] == nil {
			active[k.NetnsIno] = map[uint8]uint64{}
		}
		active[k.NetnsIno][k.Role] += v.Active
	}))
	for ns, byRole := range totals {
		for role, s := range byRole {
			s.Active = active[ns][role]
		}
	}
}

func (r roleTotals) get(role uint8) bpf.PodnetAggValue {
	if v := r[role]; v != nil {
		return *v
	}
	return bpf.PodnetAggValue{}
}

// A long-lived connection's bytes are counted while it is open, a read at a time, and over its
// life add up exactly to what was sent, in both aggregation modes: the close adds only the rest.
// In-kernel aggregation takes marked reads where the kernel has the hooks (this one does), and
// the walk of every connection elsewhere: both are tested here.
func TestLiveProgressOfAnOpenConnectionIsExact(t *testing.T) {
	for i, m := range liveReadModes {
		t.Run(m.name, func(t *testing.T) { testLiveProgress(t, m.options, [...]byte{100, 101, 200}[i]) })
	}
}

// liveReadModes are the ways open connections are read: for metrics from events (the walk), and
// with in-kernel aggregation by marked reads or by the walk of every connection.
var liveReadModes = []struct {
	name    string
	options Options
}{
	{"events", Options{}},
	{"aggregate", Options{AggregateInKernel: true}},
	{"aggregate-walk", Options{AggregateInKernel: true, UnmarkedReads: true}},
}

// requireMarked checks that tr's live reads are marked exactly when wanted, on a kernel that has
// the hooks.
func requireMarked(t testing.TB, tr *Tracer, want bool) {
	t.Helper()
	require.Equal(t, want && markHooksExist(), tr.MarkedReads(), "marked reads")
}

// openMarked opens a tracer that aggregates in the kernel, closed when tb ends: marked reads
// wherever the kernel has their hooks.
func openMarked(tb testing.TB) *Tracer {
	tb.Helper()
	return openMarkedSets(tb, 0)
}

// openMarkedSets is openMarked with marked sets (and their front) of size sockets; 0 for the
// default.
func openMarkedSets(tb testing.TB, size uint32) *Tracer {
	tb.Helper()
	return openMarkedWith(tb, Options{markedSet: size})
}

// openMarkedWith is openMarked with opts' other settings (events, marked set sizes) kept.
func openMarkedWith(tb testing.TB, opts Options) *Tracer {
	tb.Helper()
	opts.Hooks, opts.RingBufferSize, opts.MaxTrackedConnections = HooksAuto, 1<<16, 4096
	opts.AggregateInKernel, opts.MaxAggregates = true, 1024
	tr, err := Open(opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = tr.Close() })
	requireMarked(tb, tr, true)
	return tr
}

func testLiveProgress(t *testing.T, o Options, subnet byte) {
	aggregate := o.AggregateInKernel
	netw := netnstest.NewNetwork(t, subnet)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	o.Hooks, o.RingBufferSize, o.MaxTrackedConnections, o.MaxAggregates = HooksAuto, 1<<20, 4096, 1024
	tr, err := Open(o)
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, tr.IteratorsUnavailable())
	requireMarked(t, tr, aggregate && !o.UnmarkedReads)
	clients, servers := connectPods(t, clientPod, serverPod, 7100, 1)
	client, server := clients[0], servers[0]
	clientTotals, serverTotals := roleTotals{}, roleTotals{}
	watched := map[uint32]roleTotals{clientPod.NetnsInode(): clientTotals, serverPod.NetnsInode(): serverTotals}

	const up, down, steps = 100_000, 1_000, 4
	for step := 1; step <= steps; step++ {
		_, err := client.Write(make([]byte, up))
		require.NoError(t, err)
		_, err = io.ReadFull(server, make([]byte, up))
		require.NoError(t, err)
		_, err = server.Write(make([]byte, down))
		require.NoError(t, err)
		_, err = io.ReadFull(client, make([]byte, down))
		require.NoError(t, err)
		drainInto(t, tr, watched)
		c, s := clientTotals.get(roleClient), serverTotals.get(roleServer)
		assert.Equal(t, uint64(step*up), c.BytesSent, "step %d: client sent, counted while open", step)
		assert.Equal(t, uint64(step*down), c.BytesReceived, "step %d: client received", step)
		assert.Equal(t, uint64(step*up), s.BytesReceived, "step %d: server received", step)
		assert.Equal(t, uint64(step*down), s.BytesSent, "step %d: server sent", step)
		assert.Equal(t, uint64(1), c.Active, "step %d: client active", step)
		assert.Equal(t, uint64(1), s.Active, "step %d: server active", step)
	}

	require.NoError(t, client.Close())
	_, err = io.ReadAll(server) // the client's FIN
	require.NoError(t, err)
	require.NoError(t, server.Close())
	var closes []bpf.PodnetEvent
	require.Eventually(t, func() bool {
		drainInto(t, tr, watched)
		if aggregate {
			return clientTotals.get(roleClient).Closed == 1 && serverTotals.get(roleServer).Closed == 1
		}
		events, _ := readAll(t, tr, func(e *bpf.PodnetEvent) bool {
			return e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) &&
				(e.NetnsIno == clientPod.NetnsInode() || e.NetnsIno == serverPod.NetnsInode())
		})
		closes = append(closes, events...)
		return len(closes) == 2
	}, 5*time.Second, 20*time.Millisecond, "both closes reported")
	for _, e := range closes { // events mode: the metrics add what the reads did not count
		add := clientTotals
		if e.Role == roleServer {
			add = serverTotals
		}
		s := add[e.Role]
		s.BytesSent += e.BytesSent - e.CountedBytesSent
		s.BytesReceived += e.BytesReceived - e.CountedBytesReceived
		want := map[uint8][2]uint64{roleClient: {steps * up, steps * down}, roleServer: {steps * down, steps * up}}[e.Role]
		assert.Equal(t, want, [2]uint64{e.BytesSent, e.BytesReceived}, "a close record carries the connection's totals")
	}
	c, s := clientTotals.get(roleClient), serverTotals.get(roleServer)
	assert.Equal(t, [2]uint64{steps * up, steps * down}, [2]uint64{c.BytesSent, c.BytesReceived}, "client totals, over the connection's life")
	assert.Equal(t, [2]uint64{steps * down, steps * up}, [2]uint64{s.BytesSent, s.BytesReceived}, "server totals, over the connection's life")
	assert.Zero(t, c.Active, "closed: not active")
	assert.Zero(t, s.Active, "closed: not active")
}

// Reads of open connections while they close count every byte once: each connection's bytes
// are either read live, at its close, or split between the two, never both.
func TestProgressReadsDuringClosesCountEveryByteOnce(t *testing.T) {
	t.Run("marked", func(t *testing.T) { testReadsDuringCloses(t, false, 102) })
	t.Run("walk", func(t *testing.T) { testReadsDuringCloses(t, true, 201) })
}

func testReadsDuringCloses(t *testing.T, unmarked bool, subnet byte) {
	netw := netnstest.NewNetwork(t, subnet)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 65536, AggregateInKernel: true, MaxAggregates: 1024,
		UnmarkedReads: unmarked,
	})
	require.NoError(t, err)
	defer tr.Close()
	requireMarked(t, tr, !unmarked)
	const n, payload = 3000, 10_000
	clients, servers := connectPods(t, clientPod, serverPod, 7000+int(subnet), n)
	clientTotals, serverTotals := roleTotals{}, roleTotals{}
	watched := map[uint32]roleTotals{clientPod.NetnsInode(): clientTotals, serverPod.NetnsInode(): serverTotals}
	var mu sync.Mutex // the totals, between the draining goroutine and the test's checks
	drain := func() {
		mu.Lock()
		defer mu.Unlock()
		drainInto(t, tr, watched)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	reads := 0
	go func() { // read continuously while the connections send and close
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				drain()
				reads++
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, payload)
			for i := w; i < n; i += 4 {
				_, err := clients[i].Write(buf)
				assert.NoError(t, err)
				_, err = io.ReadFull(servers[i], buf)
				assert.NoError(t, err)
				_ = clients[i].Close()
				_, _ = io.Copy(io.Discard, servers[i])
				_ = servers[i].Close()
			}
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return clientTotals.get(roleClient).Closed == n && serverTotals.get(roleServer).Closed == n
	}, 5*time.Second, 10*time.Millisecond)
	close(stop)
	<-done
	drain()
	c, s := clientTotals.get(roleClient), serverTotals.get(roleServer)
	t.Logf("%d reads of open connections while %d connections sent %d bytes each and closed", reads, n, payload)
	assert.Equal(t, uint64(n*payload), c.BytesSent, "client bytes sent")
	assert.Equal(t, uint64(n*payload), s.BytesReceived, "server bytes received")
	assert.Zero(t, c.Active+s.Active)
}

// found collects the start-up scan's records of the given namespaces.
func found(t *testing.T, tr *Tracer, netns ...uint32) []bpf.PodnetEvent {
	t.Helper()
	var out []bpf.PodnetEvent
	_, err := tr.FindExisting(func(e *bpf.PodnetEvent) {
		for _, ns := range netns {
			if e.NetnsIno == ns {
				out = append(out, *e)
			}
		}
	})
	require.NoError(t, err)
	return out
}

// Connections opened before podnet are found at start in every namespace, with the role their
// listener gives them, counted active, and their closes tracked (reported, not untracked).
func TestConnectionsOpenBeforeStartAreFound(t *testing.T) {
	netw := netnstest.NewNetwork(t, 103)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	const n, closing = 2000, 800
	clients, servers := connectPods(t, clientPod, serverPod, 7103, n)

	tr := openEvents(t, 1<<22)
	require.NoError(t, tr.IteratorsUnavailable())
	cns, sns := clientPod.NetnsInode(), serverPod.NetnsInode()
	records := found(t, tr, cns, sns)
	byRole := map[uint8]int{}
	for _, e := range records {
		byRole[e.Role]++
		assert.Equal(t, uint8(bpf.PodnetEventTypeEVENT_FOUND), e.Type)
		assert.Equal(t, uint32(os.Getpid()), e.Pid, "the process holding it")
		assert.NotZero(t, e.Flags&uint8(bpf.PodnetEventFlagEVENT_FLAG_ROLE_GUESSED))
		want := map[uint8]uint32{roleClient: cns, roleServer: sns}[e.Role]
		assert.Equal(t, want, e.NetnsIno, "role %d in the wrong namespace", e.Role)
	}
	assert.Equal(t, map[uint8]int{roleClient: n, roleServer: n}, byRole, "every connection found once per end")
	assert.Empty(t, found(t, tr, cns, sns), "a second scan finds nothing new: they are tracked")

	clientTotals, serverTotals := roleTotals{}, roleTotals{}
	watched := map[uint32]roleTotals{cns: clientTotals, sns: serverTotals}
	drainInto(t, tr, watched)
	assert.Equal(t, uint64(n), clientTotals.get(roleClient).Active)
	assert.Equal(t, uint64(n), serverTotals.get(roleServer).Active)

	for i := range closing {
		_ = clients[i].Close()
		_ = servers[i].Close()
	}
	closes := map[uint8]int{}
	require.Eventually(t, func() bool {
		events, _ := readAll(t, tr, func(e *bpf.PodnetEvent) bool {
			return e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) && (e.NetnsIno == cns || e.NetnsIno == sns)
		})
		for _, e := range events {
			closes[e.Role]++
			assert.NotZero(t, e.Flags&uint8(bpf.PodnetEventFlagEVENT_FLAG_FOUND), "a found connection's close says so")
			assert.Zero(t, e.StartNs, "its start is unknown")
		}
		return closes[roleClient] >= closing && closes[roleServer] >= closing
	}, 5*time.Second, 20*time.Millisecond, "the closes of found connections are reported")
	assert.Equal(t, map[uint8]int{roleClient: closing, roleServer: closing}, closes)
	drainInto(t, tr, watched)
	assert.Equal(t, uint64(n-closing), clientTotals.get(roleClient).Active)
	assert.Equal(t, uint64(n-closing), serverTotals.get(roleServer).Active)
}

// A connection that closes while the start-up scan runs is reported once or not at all: found
// and its close reported, or closed before the scan reached it (untracked); never found without
// a close, never closed twice.
func TestConnectionClosingDuringTheScanIsCountedOnce(t *testing.T) {
	netw := netnstest.NewNetwork(t, 104)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	const n = 4000
	clients, servers := connectPods(t, clientPod, serverPod, 7104, n)
	tr := openEvents(t, 1<<22)
	cns := clientPod.NetnsInode()
	hidden := watchHiddenCloses(t)
	ring := collectRing(t, tr, cns)

	// The scan visits descriptors in increasing order; closing from the last one down while
	// it runs makes the two meet: some ends are found before they close, the others close
	// before the scan reaches them, and a few close right as it does.
	started := make(chan struct{})
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-started
		for i := len(clients) - 1; i >= 0; i-- {
			_ = clients[i].Close()
			_ = servers[i].Close()            // both ends: the client's socket reaches CLOSE now, not after FIN_WAIT2 times out
			time.Sleep(10 * time.Microsecond) // paced: the scan must start before the last close
		}
	}()
	var records []bpf.PodnetEvent
	close(started)
	_, err := tr.FindExisting(func(e *bpf.PodnetEvent) {
		if e.NetnsIno == cns {
			records = append(records, *e)
		}
	})
	require.NoError(t, err)
	<-closed
	foundPorts := map[uint16]int{}
	for _, e := range records {
		foundPorts[e.LocalPort]++
	}
	closePorts := map[uint16]int{}
	require.Eventually(t, func() bool {
		for _, e := range ring.take() {
			if e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) {
				closePorts[e.LocalPort]++
			}
		}
		_, hiddenClient := hidden.count(7104)
		return len(closePorts) >= len(foundPorts)-hiddenClient
	}, 5*time.Second, 20*time.Millisecond)
	// Closes the kernel ran while a thread of PID 1 was current are hidden from every BPF
	// program on the development VM (internal/hiddenclose): those found ends miss their close.
	_, hiddenClient := hidden.count(7104)
	assert.Zero(t, counters(t, tr).ReserveFailed, "the ring never overflowed")
	t.Logf("%d client ends closing during the scan: %d found (their closes reported), %d closed before it reached them", n, len(foundPorts), n-len(foundPorts))
	assert.NotEmpty(t, foundPorts, "the scan and the closes overlapped (some found)")
	assert.Less(t, len(foundPorts), n, "the scan and the closes overlapped (some closed first)")
	unclosed := 0
	for port, k := range foundPorts {
		assert.Equal(t, 1, k, "port %d found once", port)
		assert.LessOrEqual(t, closePorts[port], 1, "port %d: a found connection's close is reported once", port)
		if closePorts[port] == 0 {
			unclosed++
		}
	}
	assert.Equal(t, hiddenClient, unclosed, "found ends whose close was not reported: only those hidden from BPF")
	for port, k := range closePorts {
		assert.Equal(t, 1, foundPorts[port], "port %d: closed %d times, but not found", port, k)
	}
}

// A found connection whose record did not fit the scan's output buffer, closed before the next
// read: its record is written all the same, since its close is reported. The kernel retries
// such an object in the next read, but by then it is closed (or its descriptor gone) and the
// retry reported nothing, so one close came with no record of the connection (an independent
// check's flaky run of the test above). Here every connection closes between the first read
// and the second, so the connection whose record first overflowed always does.
func TestConnectionClosedBetweenScanReadsHasItsRecord(t *testing.T) {
	netw := netnstest.NewNetwork(t, 162)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	const n = 1000 // several output buffers' worth (32 KiB each)
	clients, servers := connectPods(t, clientPod, serverPod, 7162, n)
	tr := openEvents(t, 1<<22)
	cns, sns := clientPod.NetnsInode(), serverPod.NetnsInode()
	hidden := watchHiddenCloses(t)
	ours := func(e *bpf.PodnetEvent) bool { return e.NetnsIno == cns || e.NetnsIno == sns }
	ring := collectRingWhere(t, tr, ours)
	// An end: its role and the client's port.
	type end struct {
		role uint8
		port uint16
	}
	endOf := func(e *bpf.PodnetEvent) end {
		if e.Role == roleServer {
			return end{roleServer, e.PeerPort}
		}
		return end{roleClient, e.LocalPort}
	}
	reads := 0
	tr.readScan = func(l *link.Iter) ([]byte, error) {
		rd, err := l.Open()
		if err != nil {
			return nil, err
		}
		defer rd.Close()
		var out []byte
		buf := make([]byte, 1<<20) // more than the kernel's buffer: one read, one buffer
		for {
			k, err := rd.Read(buf)
			out = append(out, buf[:k]...)
			if reads++; reads == 1 {
				for i := range clients {
					_ = clients[i].Close()
					_ = servers[i].Close()
				}
			}
			if errors.Is(err, io.EOF) || (err == nil && k == 0) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
		}
	}
	found := map[end]int{}
	_, err := tr.FindExisting(func(e *bpf.PodnetEvent) {
		if ours(e) {
			found[endOf(e)]++
		}
	})
	require.NoError(t, err)
	require.NotEmpty(t, found)
	// Fewer than all: the first buffer did not hold every record (the rest closed after it).
	require.Less(t, len(found), 2*n, "the scan's output took more than one buffer")
	closed := map[end]int{}
	require.Eventually(t, func() bool {
		for _, e := range ring.take() {
			if e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) {
				closed[endOf(&e)]++
			}
		}
		hiddenServer, hiddenClient := hidden.count(7162)
		return len(closed) >= len(found)-hiddenServer-hiddenClient
	}, 5*time.Second, 20*time.Millisecond, "the found connections' closes")
	t.Logf("%d of %d ends found in %d reads, %d closes reported", len(found), 2*n, reads, len(closed))
	for e, k := range closed {
		assert.Equal(t, 1, found[e], "%+v: closed %d times; found once", e, k)
	}
	for e, k := range found {
		assert.Equal(t, 1, k, "%+v found once", e)
	}
}

// Without live reads (logs alone), a drain reads no open connection and a close carries its
// totals with nothing counted before: there is nothing for the close to claim.
func TestNoLiveReads(t *testing.T) {
	netw := netnstest.NewNetwork(t, 118)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 4096, MaxAggregates: 64, NoLiveReads: true})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRing(t, tr, clientPod.NetnsInode())
	clients, servers := connectPods(t, clientPod, serverPod, 7118, 1)
	_, err = clients[0].Write(make([]byte, 5000))
	require.NoError(t, err)
	_, err = io.ReadFull(servers[0], make([]byte, 5000))
	require.NoError(t, err)
	totals := map[uint32]roleTotals{clientPod.NetnsInode(): {}}
	drainInto(t, tr, totals)
	assert.Zero(t, totals[clientPod.NetnsInode()].get(roleClient).Active, "no live read")
	_ = clients[0].Close()
	_ = servers[0].Close()
	closes := 0
	for _, e := range ring.settled(t, clientPod, serverPod) {
		if e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) {
			closes++
			assert.Equal(t, uint64(5000), e.BytesSent)
			assert.Zero(t, e.CountedBytesSent)
		}
	}
	assert.Equal(t, 1, closes)
}

// A server whose listener closed before podnet started (draining its connections, or about to
// listen again) still has server ends: accepted sockets do not keep their listener's explicit
// bind, so the port ranges say it — a local port outside the ephemeral range facing a peer's
// inside it (found by an independent check: such ends were found as clients, a series each).
func TestFoundServerEndsWithTheirListenerClosed(t *testing.T) {
	netw := netnstest.NewNetwork(t, 224)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	addr := netip.AddrPortFrom(serverPod.IPv4, 7030)
	withListenerClosed(t, clientPod, serverPod, addr, func(int) *net.Dialer { return &net.Dialer{} })

	byRole := foundRoles(t, clientPod, serverPod, func(e *bpf.PodnetEvent, serverEnd bool) {
		if serverEnd {
			assert.Equal(t, uint16(7030), e.LocalPort)
		}
	})
	assert.Equal(t, map[string]map[uint8]int{"client pod": {roleClient: 2}, "server pod": {roleServer: 2}}, byRole)
}

// A client that bound its port before connect() is a client, and a server end whose listener
// (with SO_REUSEADDR, as Go's, Python's and nginx's are) closed before podnet started is a
// server, whichever side of the ephemeral range their ports are on: only a client can hold the
// bind lock (accepted sockets never inherit it), and accepted sockets inherit their listener's
// SO_REUSEADDR. The found bytes do not depend on the guess (found by an independent check:
// bound clients were found as servers, in series of their own, each a byte too many - the SYN -,
// and a server whose port was inside the ephemeral range as a client, a byte short). Here both
// ends would be guessed wrong by the port ranges alone: the client's port 5555 is outside the
// range, the server's 40001 inside it.
func TestFoundRolesOfBoundClientsAndReusableListeners(t *testing.T) {
	netw := netnstest.NewNetwork(t, 37)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	addr := netip.AddrPortFrom(serverPod.IPv4, 40001)
	clients, servers := withListenerClosed(t, clientPod, serverPod, addr, func(i int) *net.Dialer {
		return &net.Dialer{LocalAddr: &net.TCPAddr{IP: clientPod.IPv4.AsSlice(), Port: 5555 + i}}
	})
	for i := range clients {
		_, err := clients[i].Write(make([]byte, 100))
		require.NoError(t, err)
		_, err = servers[i].Write(make([]byte, 50))
		require.NoError(t, err)
		_, err = io.ReadFull(servers[i], make([]byte, 100))
		require.NoError(t, err)
		_, err = io.ReadFull(clients[i], make([]byte, 50))
		require.NoError(t, err)
	}

	byRole := foundRoles(t, clientPod, serverPod, func(e *bpf.PodnetEvent, serverEnd bool) {
		sent, received := uint64(100), uint64(50)
		if serverEnd {
			assert.Equal(t, uint16(40001), e.LocalPort)
			sent, received = received, sent
		}
		assert.Equal(t, sent, e.BytesSent, "payload bytes sent, whatever the role")
		assert.Equal(t, received, e.BytesReceived)
	})
	assert.Equal(t, map[string]map[uint8]int{"client pod": {roleClient: 2}, "server pod": {roleServer: 2}}, byRole)
}

// withListenerClosed makes two connections from clientPod to a listener at addr (each dialled
// with dialer(i)), then closes the listener: their server ends drain with no listener on their
// port. Closed at the end of the test.
func withListenerClosed(t *testing.T, clientPod, serverPod *netnstest.Pod, addr netip.AddrPort, dialer func(i int) *net.Dialer) (clients, servers []net.Conn) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, serverPod.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }))
	require.NoError(t, clientPod.Do(func() error {
		for i := range 2 {
			c, err := dialer(i).Dial("tcp", addr.String())
			if err != nil {
				return err
			}
			s, err := ln.Accept()
			if err != nil {
				return err
			}
			clients, servers = append(clients, c), append(servers, s)
		}
		return nil
	}))
	require.NoError(t, ln.Close())
	t.Cleanup(func() {
		for i := range clients {
			_ = clients[i].Close()
			_ = servers[i].Close()
		}
	})
	return clients, servers
}

// foundRoles loads podnet, scans for the connections open in the two pods, checks each found
// end (serverEnd: the server pod's), and counts their roles per pod.
func foundRoles(t *testing.T, clientPod, serverPod *netnstest.Pod, check func(e *bpf.PodnetEvent, serverEnd bool)) map[string]map[uint8]int {
	t.Helper()
	tr := openEvents(t, 1<<22)
	require.NoError(t, tr.IteratorsUnavailable())
	cns, sns := clientPod.NetnsInode(), serverPod.NetnsInode()
	byRole := map[string]map[uint8]int{"client pod": {}, "server pod": {}}
	for _, e := range found(t, tr, cns, sns) {
		pod := "client pod"
		if e.NetnsIno == sns {
			pod = "server pod"
		}
		byRole[pod][e.Role]++
		check(&e, e.NetnsIno == sns)
	}
	return byRole
}
