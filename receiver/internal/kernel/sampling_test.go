package kernel

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// connEvents are one connection's records, both ends (the client's local port names it).
type connEvents struct {
	kinds map[kind]int
	oneIn map[kind]uint32
}

// byConnection groups a namespace's records by connection: the client end's local port, the
// server end's peer port.
func byConnection(events []bpf.PodnetEvent, server uint16, into map[uint16]*connEvents) {
	for _, e := range events {
		port := e.LocalPort
		if e.Role == roleServer {
			port = e.PeerPort
		}
		if e.Role == roleServer && e.LocalPort != server || e.Role == roleClient && e.PeerPort != server {
			continue
		}
		c := into[port]
		if c == nil {
			c = &connEvents{kinds: map[kind]int{}, oneIn: map[kind]uint32{}}
			into[port] = c
		}
		c.kinds[kind{e.Type, e.Role}]++
		c.oneIn[kind{e.Type, e.Role}] = e.SampleOneIn
	}
}

// Logs sampling keeps 1 in N normal connections, decided from the tuple so both ends agree,
// every record of a kept one, and every abnormal one (aborted with a reset here) whole, its
// open reported late; the aggregates count every connection.
func TestSamplingKeepsWholeConnectionsAndEveryAbnormalOne(t *testing.T) {
	netw := netnstest.NewNetwork(t, 110)
	pod := netw.AddPod()
	const oneIn, normal, aborted = 4, 400, 40
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true, SampleOneIn: oneIn,
	})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRing(t, tr, pod.NetnsInode())

	addr := netip.MustParseAddrPort("127.0.0.1:7110")
	clients, servers := connectPodsAt(t, pod, pod, addr, normal+aborted)
	for i := range clients {
		if i >= normal { // aborted: the client resets (SO_LINGER 0), the server sees the reset
			require.NoError(t, clients[i].(*net.TCPConn).SetLinger(0))
		}
		_ = clients[i].Close()
		_ = servers[i].Close()
	}
	conns := map[uint16]*connEvents{}
	abortedPorts := map[uint16]bool{}
	for _, c := range clients[normal:] {
		abortedPorts[uint16(c.LocalAddr().(*net.TCPAddr).Port)] = true
	}
	byConnection(ring.settled(t, pod), addr.Port(), conns)

	whole := map[kind]int{connected: 1, accepted: 1, clientEnd: 1, serverEnd: 1}
	keptNormal := 0
	for port, c := range conns {
		assert.Equal(t, whole, c.kinds, "port %d: a kept connection is kept whole, both ends", port)
		if abortedPorts[port] {
			// Its closes say 1 in 1 (abnormal ones are all kept); its opens too if they were
			// held back by sampling, 1 in N if sampling had kept it anyway.
			assert.Equal(t, uint32(1), c.oneIn[clientEnd], "port %d: an abnormal connection's close is 1 in 1", port)
			assert.Equal(t, uint32(1), c.oneIn[serverEnd], "port %d", port)
			assert.Equal(t, c.oneIn[connected], c.oneIn[accepted], "port %d: both opens alike", port)
			continue
		}
		keptNormal++
		assert.Equal(t, map[kind]uint32{connected: oneIn, accepted: oneIn, clientEnd: oneIn, serverEnd: oneIn}, c.oneIn,
			"port %d: kept by sampling, 1 in %d", port, oneIn)
	}
	for port := range abortedPorts {
		assert.Contains(t, conns, port, "every aborted connection is kept")
	}
	t.Logf("kept %d of %d normal connections at 1 in %d; %d aborted, all kept", keptNormal, normal, oneIn, aborted)
	assert.InDelta(t, normal/oneIn, keptNormal, normal/oneIn/2, "about 1 in %d normal connections kept", oneIn)

	// Drained until the counts are whole or 5 s: an interval's last adds may fall into the next
	// drain (seen once in CI under full load: 878 closes of 880 in the first); none may be lost.
	var opens, closes uint64
	want := uint64(2 * (normal + aborted))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
			if k.NetnsIno == pod.NetnsInode() && k.ServerPort == addr.Port() {
				opens += v.Connections
				closes += v.Closed
			}
		}))
		if (opens >= want && closes >= want) || time.Now().After(deadline) {
			break
		}
	}
	assert.Equal(t, want, opens, "metrics count every connection, both ends")
	assert.Equal(t, want, closes)
}

// Sampling keeps about 1 in N of any run of one client's connections, not whole runs or none:
// the decision must depend on every bit of the tuple. Found by an independent check: with the
// FNV hash alone, modulo a power of two followed a few low bits of each byte, and a client's
// connections from consecutive even ports (as connect() picks them) were kept or dropped in
// runs of 128. The client binds each port here, so the run is exact.
func TestSamplingIsEvenOverConsecutivePorts(t *testing.T) {
	netw := netnstest.NewNetwork(t, 113)
	pod := netw.AddPod()
	const oneIn, n, window, first = 4, 768, 64, 40000
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true, SampleOneIn: oneIn,
	})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRing(t, tr, pod.NetnsInode())

	addr := netip.MustParseAddrPort("127.0.0.1:7113")
	clients, servers := connectPodsFrom(t, pod, pod, addr, n, func(i int) *net.TCPAddr {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: first + 2*i}
	})
	for i := range clients {
		_ = clients[i].Close()
		_ = servers[i].Close()
	}
	conns := map[uint16]*connEvents{}
	byConnection(ring.settled(t, pod), addr.Port(), conns)
	keptAt := func(i int) int {
		if _, ok := conns[uint16(first+2*i)]; ok {
			return 1
		}
		return 0
	}
	kept := 0
	for i := range n {
		kept += keptAt(i)
		if i >= window {
			kept -= keptAt(i - window)
		}
		if i >= window-1 {
			// Binomial(64, 1/4): outside [2, 40] once in ~10⁸ windows.
			require.Truef(t, kept >= 2 && kept <= 40, "%d of the %d connections from ports %d–%d kept at 1 in %d",
				kept, window, first+2*(i-window+1), first+2*i, oneIn)
		}
	}
	t.Logf("kept %d of %d at 1 in %d", len(conns), n, oneIn)
}

// Failed connects are abnormal: every one is kept, 1 in 1.
func TestSamplingKeepsEveryFailedConnect(t *testing.T) {
	netw := netnstest.NewNetwork(t, 111)
	pod := netw.AddPod()
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true, SampleOneIn: 1000,
	})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRing(t, tr, pod.NetnsInode())
	const n = 50
	require.NoError(t, pod.Do(func() error {
		for range n {
			if c, err := net.Dial("tcp", "127.0.0.1:7111"); err == nil { // nothing listens: refused
				_ = c.Close()
			}
		}
		return nil
	}))
	events := ring.settled(t, pod)
	failed := 0
	for _, e := range events {
		if e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) && e.Error != 0 {
			failed++
			assert.Equal(t, uint32(1), e.SampleOneIn)
		}
	}
	dialPods(t, pod, pod, netip.MustParseAddrPort("127.0.0.1:7111"), 5)
	for _, e := range ring.settled(t, pod) {
		assert.NotZero(t, e.SampleOneIn, "sampling on: every record says its rate")
	}
	assert.Equal(t, n, failed)
}

// Without process context, no syscall hook is loaded (the kernel holds none of those programs
// for this process), and passive opens still reach the ring, when the handshake ends.
func TestNoProcessContextLoadsNoSyscallHook(t *testing.T) {
	netw := netnstest.NewNetwork(t, 112)
	pod := netw.AddPod()
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true, NoProcessContext: true,
	})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRing(t, tr, pod.NetnsInode())
	syscallNames := map[string]bool{}
	for _, h := range syscallHooks {
		syscallNames[h.prog] = true
		if h.cast != "" {
			syscallNames[h.cast] = true
		}
	}
	for _, id := range tr.ProgramIDs() {
		p, err := ebpf.NewProgramFromID(id)
		require.NoError(t, err)
		info, err := p.Info()
		require.NoError(t, err)
		_ = p.Close()
		assert.False(t, syscallNames[info.Name], "program %s is a syscall hook", info.Name)
	}
	assert.Len(t, tr.links, stateHooks(tr.Mode())+markHooks(tr), "only the state programs (and the live reads' marks) are attached")

	dialPods(t, pod, pod, netip.MustParseAddrPort("127.0.0.1:7112"), 10)
	got := map[kind]int{}
	for _, e := range ring.settled(t, pod) {
		got[kind{e.Type, e.Role}]++
		assert.Zero(t, e.Pid, "no process context")
		assert.Zero(t, e.SampleOneIn, "sampling off: no rate")
	}
	assert.Equal(t, map[kind]int{connected: 10, accepted: 10, clientEnd: 10, serverEnd: 10}, got)
}

// Two podnet instances (two nodes' agents, here on one machine), one seeing each end of the
// same connections between two pods, keep the same connections.
func TestSamplingDecisionsAgreeAcrossInstances(t *testing.T) {
	netw := netnstest.NewNetwork(t, 114)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	open := func() *Tracer {
		tr, err := Open(Options{
			Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
			AggregateInKernel: true, Events: true, SampleOneIn: 5,
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	first, second := open(), open()
	firstRing, secondRing := collectRing(t, first, clientPod.NetnsInode()), collectRing(t, second, serverPod.NetnsInode())
	addr := netip.AddrPortFrom(serverPod.IPv6, 7114) // IPv6 between pods this time
	dialPods(t, clientPod, serverPod, addr, 300)
	clients := map[uint16]*connEvents{}
	byConnection(firstRing.settled(t, clientPod, serverPod), addr.Port(), clients) // the first sees the client ends
	serversSeen := map[uint16]*connEvents{}
	byConnection(secondRing.settled(t, clientPod, serverPod), addr.Port(), serversSeen) // the second the server ends
	require.NotEmpty(t, clients)
	assert.Less(t, len(clients), 300, "sampling left some out")
	for port := range clients {
		assert.Contains(t, serversSeen, port, "client end of %d kept, so is its server end", port)
	}
	for port := range serversSeen {
		assert.Contains(t, clients, port, "server end of %d kept, so is its client end", port)
	}
	t.Logf("%d of 300 connections kept by both instances", len(clients))
}

// A connect() that fails before a SYN is built (here: an unreachable route) is reported by the
// syscall hook, kept whatever the sampling, 1 in 1.
func TestSamplingKeepsConnectFailuresBeforeSynSent(t *testing.T) {
	netw := netnstest.NewNetwork(t, 117)
	client, server := netw.AddPod(), netw.AddPod()
	client.Exec("ip", "route", "add", "unreachable", server.IPv4.String()+"/32")
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true, SampleOneIn: 1000,
	})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRing(t, tr, client.NetnsInode())
	const n = 5
	require.NoError(t, client.Do(func() error {
		for range n {
			if c, err := net.Dial("tcp", netip.AddrPortFrom(server.IPv4, 7117).String()); err == nil {
				_ = c.Close()
			}
		}
		return nil
	}))
	failed := 0
	for _, e := range ring.settled(t, client) {
		if e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) && e.Error != 0 {
			failed++
			assert.Equal(t, uint32(1), e.SampleOneIn, "kept 1 in 1")
		}
	}
	assert.Equal(t, n, failed, "every early connect failure kept")
}

// Under load, with sampling and `exclude` on, the selection runs in process context (connect,
// accept) and in softirq (the server's handshake) on the same CPUs, interrupting each other:
// each run takes its own scratch slot (bpf/scratch.h), so both ends of every connection still
// decide alike and the aggregates count every connection.
func TestSamplingUnderLoadKeepsWholeConnections(t *testing.T) {
	netw := netnstest.NewNetwork(t, 123)
	pod := netw.AddPod()
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 25, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true, SampleOneIn: 3, ExcludePorts: []uint16{9},
	})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRing(t, tr, pod.NetnsInode())
	var l load
	l.run(t, pod, 4, time.Second)
	conns := map[uint16]*connEvents{}
	byConnection(ring.settled(t, pod), uint16(l.port), conns)
	kept, oneSided, missingCloses := 0, 0, 0
	for port, c := range conns {
		// A port may carry several connections (loopback reuses TIME_WAIT ports): alike tuples,
		// alike decisions.
		clients, servers := c.kinds[connected], c.kinds[accepted]
		if clients != servers {
			// Only where one end alone saw it go wrong (a SYN-ACK retransmitted after the
			// accept queue dropped the client's ACK, say): that end is kept 1 in 1, the other
			// by the hash (README, logs.sampling.one_in).
			lone := map[bool]kind{true: accepted, false: connected}[servers > clients]
			assert.Equal(t, uint32(1), c.oneIn[lone], "port %d: an end kept alone was abnormal (%v, 1 in: %v)", port, c.kinds, c.oneIn)
			oneSided++
		}
		assert.LessOrEqual(t, c.kinds[clientEnd], clients, "port %d: no close without its open", port)
		assert.LessOrEqual(t, c.kinds[serverEnd], servers, "port %d: no close without its open", port)
		missingCloses += clients - c.kinds[clientEnd] + servers - c.kinds[serverEnd]
		kept += min(clients, servers)
	}
	// A close the kernel ran no program for (this VM runs none while its init's thread is
	// current: README, Performance) is the only close missing, each one counted when its socket
	// is reused, or still in the table.
	unseen, err := tr.sumCounter(bpf.PodnetCounterCOUNTER_CLOSE_UNSEEN)
	require.NoError(t, err)
	var tracked uint64
	it := tr.coll.Maps[bpf.PodnetMapConns].Iterate()
	var key uint64
	var value []byte
	for it.Next(&key, &value) {
		tracked++
	}
	require.NoError(t, it.Err())
	assert.LessOrEqual(t, uint64(missingCloses), unseen+tracked, "every close record missing is one the kernel ran no program for")
	t.Logf("%d connections, %d kept by both ends at 1 in 3, %d by one abnormal end; %d closes unseen", l.ok.Load(), kept, oneSided, missingCloses)
	assert.InDelta(t, float64(l.ok.Load())/3, float64(kept), float64(l.ok.Load())/6, "about 1 in 3 kept")

	var opens uint64
	require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		if k.NetnsIno == pod.NetnsInode() && k.ServerPort == uint16(l.port) {
			opens += v.Connections
		}
	}))
	assert.Equal(t, uint64(2*l.ok.Load()), opens, "metrics count every connection, both ends")
}
