package kernel

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// accept() on an MPTCP listener returns the MPTCP socket when the client spoke MPTCP; the
// connection podnet tracks is its first TCP subflow, and its accept names the acceptor like any
// other (it had no pid: the hook took the MPTCP socket for no TCP one). Both ways the accept
// hook reads sockets: plain loads through bpf_rdonly_cast, and probe reads.
func TestMPTCPAcceptNamesTheAcceptor(t *testing.T) {
	netw := netnstest.NewNetwork(t, 219)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	for i, probed := range []bool{false, true} {
		t.Run(map[bool]string{false: "cast reads", true: "probe reads"}[probed], func(t *testing.T) {
			mptcpAcceptNamesTheAcceptor(t, clientPod, serverPod, probed, 7801+i)
		})
	}
}

func mptcpAcceptNamesTheAcceptor(t *testing.T, clientPod, serverPod *netnstest.Pod, probed bool, port int) {
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 4096, MaxAggregates: 16, ProbedReads: probed})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool {
		return e.NetnsIno == serverPod.NetnsInode() && e.LocalPort == uint16(port)
	})

	client, server := mptcpPair(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv4, uint16(port)))
	require.NoError(t, client.Close())
	readEOF(t, server)
	require.NoError(t, server.Close())

	var accepts, closes []bpf.PodnetEvent
	require.Eventually(t, func() bool {
		for _, e := range ring.take() {
			switch e.Type {
			case uint8(bpf.PodnetEventTypeEVENT_ACCEPT):
				accepts = append(accepts, e)
			case uint8(bpf.PodnetEventTypeEVENT_CLOSE):
				closes = append(closes, e)
			}
		}
		return len(accepts) >= 1 && len(closes) >= 1
	}, 5*time.Second, 10*time.Millisecond, "the server's accept and close")
	require.Len(t, accepts, 1, "accepted once")
	assert.Equal(t, uint32(os.Getpid()), accepts[0].Pid, "the accept names the acceptor")
	assert.Equal(t, uint32(os.Getpid()), closes[0].Pid, "and so does the close")
}

// mptcpPair connects clientPod to a listener of serverPod at addr, both ends MPTCP (as Go 1.24+
// listens by default, and dialers opt in), and returns both ends. The listener stays open until
// the test ends: a further subflow's join is made to it (closed, it refused the joins with a reset).
func mptcpPair(t *testing.T, clientPod, serverPod *netnstest.Pod, addr netip.AddrPort) (client, server net.Conn) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, serverPod.Do(func() (err error) {
		var lc net.ListenConfig
		lc.SetMultipathTCP(true)
		ln, err = lc.Listen(context.Background(), "tcp", addr.String())
		return err
	}))
	t.Cleanup(func() { _ = ln.Close() })
	require.NoError(t, clientPod.Do(func() (err error) {
		var d net.Dialer
		d.SetMultipathTCP(true)
		client, err = d.Dial("tcp", addr.String())
		return err
	}))
	server, err := ln.Accept()
	require.NoError(t, err)
	usesMPTCP, err := server.(*net.TCPConn).MultipathTCP()
	require.NoError(t, err)
	require.True(t, usesMPTCP, "the connection is MPTCP (net.mptcp.enabled on this kernel)")
	return client, server
}

// An MPTCP client's further subflows are connected by the kernel's path manager, in a kworker:
// their connects name no process (a checker saw `kworker/1:3`), as a server's further subflows
// do; the first subflow names the client process.
func TestMPTCPFurtherSubflowsNameNoKernelThread(t *testing.T) {
	first, further := furtherSubflowPids(t, 234, false)
	assert.Equal(t, map[uint32]int{uint32(os.Getpid()): 1}, first, "the first subflow: the client process")
	assert.Equal(t, map[uint32]int{0: 1}, further, "the further subflow: no process (a kworker connected it)")
}

// A subflow endpoint added while the connection is open (`ip mptcp endpoint add ... subflow`)
// has the path manager connect the further subflow in the context of the command that asked:
// its connect names no process either, not `ip`'s in the application's pod (found by an
// independent check).
func TestMPTCPFurtherSubflowsNameNoCommand(t *testing.T) {
	first, further := furtherSubflowPids(t, 43, true)
	assert.Equal(t, map[uint32]int{uint32(os.Getpid()): 1}, first, "the first subflow: the client process")
	assert.Equal(t, map[uint32]int{0: 1}, further, "the further subflow: no process")
}

// furtherSubflowPids makes an MPTCP connection with a further subflow (twoSubflows) and returns
// the pids of its subflows' connects: the first's, and the further one's from the second address.
func furtherSubflowPids(t *testing.T, subnet byte, whileOpen bool) (first, further map[uint32]int) {
	var ring *collector
	second := twoSubflows(t, subnet, whileOpen, func(clientPod, _ *netnstest.Pod) {
		ring = collectRingWhere(t, openEvents(t, 1<<22), func(e *bpf.PodnetEvent) bool {
			return e.NetnsIno == clientPod.NetnsInode() && e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT)
		})
	})
	return subflowConnectPids(t, ring, second)
}

// A server's handshake duration is the kernel's first RTT sample, which for an MP_JOIN subflow
// is not its SYN-ACK's time (the kernel drops the join's request before measuring it) but the
// echo of its timestamp, whole ms: it said 1 ms for ~10 µs on the wire, every join (found by an
// independent check). Unknown instead, as a SYN cookie's: the join's connection is counted and
// its handshake is not; the first subflow's is measured. Read from the in-kernel aggregates,
// which count a server's handshake as it ends (its accept record waits for its close, which
// MPTCP's close timeout can put a minute after the connection's).
func TestMPTCPJoinHasNoMillisecondHandshake(t *testing.T) {
	var tr *Tracer
	var server netip.Addr
	second := twoSubflows(t, 49, false, func(_, serverPod *netnstest.Pod) {
		tr = openBothSinks(t, HooksAuto)
		server = serverPod.IPv4
	})
	handshakes := map[netip.Addr]bpf.PodnetAggValue{} // the server's, by peer
	require.Eventually(t, func() bool {
		require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
			if k.Role != uint8(bpf.PodnetRoleROLE_SERVER) || k.ServerPort != 7049 {
				return
			}
			s := handshakes[netip.AddrFrom4([4]byte(k.PeerAddr[:4]))]
			s.Connections += v.Connections
			s.HandshakeUs += v.HandshakeUs
			for i, n := range v.HandshakeBuckets {
				s.HandshakeBuckets[i] += n
			}
			handshakes[netip.AddrFrom4([4]byte(k.PeerAddr[:4]))] = s
		}))
		return len(handshakes) == 2
	}, 5*time.Second, 50*time.Millisecond, "the server's two subflows, from %s and its second address %s", server, second)
	join := handshakes[second]
	assert.Equal(t, uint64(1), join.Connections, "the join: a connection")
	assert.Zero(t, join.HandshakeUs, "the join's handshake: unknown, not the timestamp echo's whole ms")
	assert.Zero(t, slices.Max(join.HandshakeBuckets[:]), "and not in the histogram")
	delete(handshakes, second)
	for _, first := range handshakes {
		assert.NotZero(t, first.HandshakeUs, "the first subflow's handshake is measured")
	}
}

// twoSubflows makes an MPTCP connection between two pods of network subnet whose client has a
// second address and a subflow endpoint on it, added before the connection or (whileOpen) once
// it is established, so that the path manager adds a further subflow from it; before runs
// once the pods are set up, before the connection (to load podnet). It returns the second
// address.
func twoSubflows(t *testing.T, subnet byte, whileOpen bool, before func(clientPod, serverPod *netnstest.Pod)) netip.Addr {
	netw := netnstest.NewNetwork(t, subnet)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	second := netip.AddrFrom4([4]byte{10, 213, subnet, 200}) // the client's second address, in the pods' subnet
	clientPod.Exec("ip", "addr", "add", second.String()+"/24", "dev", "eth0")
	for _, pod := range []*netnstest.Pod{clientPod, serverPod} {
		pod.Exec("ip", "mptcp", "limits", "set", "subflow", "2", "add_addr_accepted", "2")
	}
	addEndpoint := func() { clientPod.Exec("ip", "mptcp", "endpoint", "add", second.String(), "dev", "eth0", "subflow") }
	if !whileOpen {
		addEndpoint()
	}
	before(clientPod, serverPod)

	client, server := mptcpPair(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv4, 7000+uint16(subnet)))
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	// The path manager adds subflows once the connection is fully established: data both ways.
	_, err := client.Write([]byte("ping"))
	require.NoError(t, err)
	_, err = io.ReadFull(server, make([]byte, 4))
	require.NoError(t, err)
	_, err = server.Write([]byte("pong"))
	require.NoError(t, err)
	_, err = io.ReadFull(client, make([]byte, 4))
	require.NoError(t, err)
	if whileOpen {
		addEndpoint()
	}
	return second
}

// subflowConnectPids waits for the connects of a first subflow and of a further one from
// second, and counts each kind's by pid.
func subflowConnectPids(t *testing.T, ring *collector, second netip.Addr) (first, further map[uint32]int) {
	t.Helper()
	first, further = map[uint32]int{}, map[uint32]int{}
	require.Eventually(t, func() bool {
		for _, e := range ring.take() {
			if netip.AddrFrom4([4]byte(e.LocalAddr[:4])) == second {
				further[e.Pid]++
			} else {
				first[e.Pid]++
			}
		}
		return len(first) > 0 && len(further) > 0
	}, 5*time.Second, 20*time.Millisecond, "connects of the first subflow and of the one from %s", second)
	return first, further
}

// An MPTCP connection open before podnet loaded is found at Start like a TCP one: the scan
// meets the MPTCP socket in the descriptor table and tracks its first TCP subflow, at both
// ends (found by an independent check: the scan took only TCP sockets, so it found neither).
func TestMPTCPConnectionOpenBeforeStartIsFound(t *testing.T) {
	netw := netnstest.NewNetwork(t, 218)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	client, server := mptcpPair(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv4, 7803))
	defer client.Close()
	defer server.Close()

	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 4096, MaxAggregates: 16})
	require.NoError(t, err)
	defer tr.Close()
	found := map[uint32]bpf.PodnetEvent{}
	_, err = tr.FindExisting(func(e *bpf.PodnetEvent) {
		if e.NetnsIno == clientPod.NetnsInode() || e.NetnsIno == serverPod.NetnsInode() {
			found[e.NetnsIno] = *e
		}
	})
	require.NoError(t, err)
	require.Contains(t, found, clientPod.NetnsInode(), "the client's end")
	require.Contains(t, found, serverPod.NetnsInode(), "the server's end")
	assert.Equal(t, uint16(7803), found[clientPod.NetnsInode()].PeerPort)
	assert.Equal(t, uint16(7803), found[serverPod.NetnsInode()].LocalPort)
	assert.Equal(t, uint32(os.Getpid()), found[serverPod.NetnsInode()].Pid, "named by the process holding it")
}
