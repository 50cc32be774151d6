package kernel

import (
	"fmt"
	"io"
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

const (
	reasonNormal        = uint8(bpf.PodnetCloseReasonCLOSE_NORMAL)
	reasonResetReceived = uint8(bpf.PodnetCloseReasonCLOSE_RESET_RECEIVED)
	reasonResetSent     = uint8(bpf.PodnetCloseReasonCLOSE_RESET_SENT)
	reasonTimeout       = uint8(bpf.PodnetCloseReasonCLOSE_TIMEOUT)
)

// How connections end, each way, in the close events and the aggregates alike (issue 15): the FIN
// exchange, a reset by either end (SO_LINGER 0), and a retransmission timeout (TCP_USER_TIMEOUT
// against a peer that went silent); and how many SYNs a connect retransmitted (its first SYN
// dropped by the server's firewall).
//
// And how long each handshake took: exactly from the SYN sent where podnet sees it (process
// context), from the RTT sample and the kernel's default SYN timeouts where it does not; either
// way the dropped SYN's connect took the 1 s initial RTO, and no other handshake took long.
func TestCloseReasonsAndSYNRetransmits(t *testing.T) {
	netw := netnstest.NewNetwork(t, 131)
	client, server := netw.AddPod(), netw.AddPod()
	for _, noProcess := range []bool{false, true} {
		name := map[bool]string{false: "process context", true: "no process context"}[noProcess]
		// A run in which the development VM hid a state change of these connections from every
		// BPF program (hidden_test.go; it happened once in CI) is made again, at most twice.
		for run := 1; run <= 3; run++ {
			var disturbed string
			t.Run(fmt.Sprintf("%s/run%d", name, run), func(t *testing.T) {
				disturbed = closeReasonsAndSYNRetransmits(t, client, server, noProcess)
			})
			if disturbed == "" {
				break
			}
			require.Less(t, run, 3, "every run disturbed: %s", disturbed)
			t.Logf("%s run %d disturbed, again: %s", name, run, disturbed)
		}
	}
}

func closeReasonsAndSYNRetransmits(t *testing.T, client, server *netnstest.Pod, noProcess bool) (disturbed string) {
	cns, sns := client.NetnsInode(), server.NetnsInode()
	hiddenCloses, hiddenEstablished := watchHiddenCloses(t), watchHiddenEstablishments(t)
	tr, err := Open(Options{
		Hooks: HooksTPBTF, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true, NoProcessContext: noProcess,
	})
	require.NoError(t, err)
	defer tr.Close()
	// Read as the test goes: the ring takes every TCP event of the machine, other packages'
	// tests (run in parallel) included.
	ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool { return e.NetnsIno == cns || e.NetnsIno == sns })
	require.NoError(t, tr.DrainAggregates(func(*bpf.PodnetAggKey, *bpf.PodnetAggValue) {}))

	at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(server.IPv4, port) }
	// 7301: the FIN exchange, the client closing first.
	c, s := pair(t, client, server, at(7301))
	require.NoError(t, c.Close())
	readEOF(t, s)
	require.NoError(t, s.Close())
	// 7302: the server resets; the client gets the RST.
	c, s = pair(t, client, server, at(7302))
	require.NoError(t, s.(*net.TCPConn).SetLinger(0))
	require.NoError(t, s.Close())
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, syscall.ECONNRESET)
	require.NoError(t, c.Close())
	// 7303: the client resets.
	c, s = pair(t, client, server, at(7303))
	require.NoError(t, c.(*net.TCPConn).SetLinger(0))
	require.NoError(t, c.Close())
	_, err = s.Read(make([]byte, 1))
	require.ErrorIs(t, err, syscall.ECONNRESET)
	require.NoError(t, s.Close())
	// 7304: the server goes silent; the client's data is retransmitted until its user timeout.
	c, s = pair(t, client, server, at(7304))
	raw, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	require.NoError(t, raw.Control(func(fd uintptr) {
		require.NoError(t, unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 400))
	}))
	silent := server.Filter("podnet_silent", "input", "tcp dport 7304", "drop")
	_, err = c.Write([]byte("anyone?"))
	require.NoError(t, err)
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, syscall.ETIMEDOUT)
	require.NoError(t, c.Close())
	silent.Remove()
	require.NoError(t, s.(*net.TCPConn).SetLinger(0))
	require.NoError(t, s.Close())
	// 7306: a pooled connection left idle, which the server then closes (as servers do with
	// idle keep-alive connections): the client reads EOF and closes. Normal at both ends; the
	// client's connect stays an established one.
	c, s = pair(t, client, server, at(7306))
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, s.Close())
	readEOF(t, c)
	require.NoError(t, c.Close())
	// 7305: the first SYN dropped: one retransmission, ~1 s later.
	dropSYNs := server.DropSYNs(7305)
	go func() {
		time.Sleep(300 * time.Millisecond)
		dropSYNs.Remove()
	}()
	c, s = pair(t, client, server, at(7305))
	require.NoError(t, c.Close())
	readEOF(t, s)
	require.NoError(t, s.Close())

	// Every connection's four events: a socket leaves ss's list as its CLOSE is being reported,
	// so the ring is read until the last ones are in.
	var events []bpf.PodnetEvent
	for deadline := time.Now().Add(10 * time.Second); len(events) < 4*6 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		events = append(events, ring.take()...)
	}
	if len(events) < 4*6 {
		hidden := 0
		for port := 7301; port <= 7306; port++ {
			s, c := hiddenCloses.count(port)
			es, ec := hiddenEstablished.count(port)
			hidden += s + c + es + ec
		}
		if hidden > 0 {
			return fmt.Sprintf("%d of 24 events, %d state changes hidden from BPF", len(events), hidden)
		}
		got := make([]string, len(events))
		for i := range events {
			got[i] = fmt.Sprintf("type %d role %d %d->%d", events[i].Type, events[i].Role, events[i].LocalPort, events[i].PeerPort)
		}
		require.Failf(t, "every connection's connect, accept and closes", "%d of 24 events: %v", len(events), got)
	}
	type end struct {
		role uint8
		port uint16
	}
	reasons, synRetrans, handshake := map[end]uint8{}, map[end]uint32{}, map[end]time.Duration{}
	for i := range events {
		e := &events[i]
		port := e.PeerPort
		if e.Role == roleServer {
			port = e.LocalPort
		}
		switch e.Type {
		case uint8(bpf.PodnetEventTypeEVENT_CLOSE):
			reasons[end{e.Role, port}] = e.CloseReason
		case uint8(bpf.PodnetEventTypeEVENT_CONNECT), uint8(bpf.PodnetEventTypeEVENT_ACCEPT):
			synRetrans[end{e.Role, port}] = e.Retransmits
			handshake[end{e.Role, port}] = time.Duration(e.SrttUs) * time.Microsecond
		}
	}
	want := map[end]uint8{
		{roleClient, 7301}: reasonNormal, {roleServer, 7301}: reasonNormal,
		{roleClient, 7302}: reasonResetReceived, {roleServer, 7302}: reasonResetSent,
		{roleClient, 7303}: reasonResetSent, {roleServer, 7303}: reasonResetReceived,
		{roleClient, 7304}: reasonTimeout, {roleServer, 7304}: reasonResetSent,
		{roleClient, 7305}: reasonNormal, {roleServer, 7305}: reasonNormal,
		{roleClient, 7306}: reasonNormal, {roleServer, 7306}: reasonNormal,
	}
	assert.Equal(t, want, reasons, "close reasons in the events")
	assert.Equal(t, uint32(1), synRetrans[end{roleClient, 7305}], "the dropped SYN, retransmitted once")
	for _, p := range []uint16{7301, 7302, 7303, 7304, 7306} {
		assert.Zero(t, synRetrans[end{roleClient, p}], "port %d", p)
		assert.Zero(t, synRetrans[end{roleServer, p}], "port %d", p)
	}
	for e, d := range handshake {
		if e == (end{roleClient, 7305}) {
			t.Logf("the dropped SYN's connect: %v", d)
			assert.GreaterOrEqual(t, d, time.Second, "the initial RTO before the second SYN")
			assert.Less(t, d, 1500*time.Millisecond)
			continue
		}
		assert.Positive(t, d, "%v: measured", e)
		assert.Less(t, d, 200*time.Millisecond, "%v: a handshake between two local namespaces", e)
	}
	assert.Len(t, handshake, 12, "every connect and accept")
	for i := range events {
		if e := &events[i]; e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) {
			assert.Zero(t, e.Error, "no connect failed, the idle one's included")
		}
	}

	gotAgg, synAgg, slowest := map[end]uint8{}, map[end]uint64{}, map[end]int{}
	require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		if k.NetnsIno != cns && k.NetnsIno != sns {
			return
		}
		e := end{k.Role, k.ServerPort}
		synAgg[e] += v.SynRetransmits
		for b, n := range v.HandshakeBuckets {
			if cur, ok := slowest[e]; n > 0 && (!ok || b > cur) {
				slowest[e] = b
			}
		}
		for r, n := range v.ClosedBy {
			if n > 0 {
				assert.Equal(t, uint64(1), n, "%v", e)
				gotAgg[e] = uint8(r)
			}
		}
	}))
	assert.Equal(t, want, gotAgg, "close reasons in the aggregates")
	assert.Equal(t, uint64(1), synAgg[end{roleClient, 7305}])
	// The handshake histogram: the dropped SYN's connect in the bucket of 1-2.5 s, no other
	// above 250 ms.
	for e, b := range slowest {
		if e == (end{roleClient, 7305}) {
			assert.Equal(t, HandshakeBucket(1_200_000), b, "%v", e)
			continue
		}
		assert.LessOrEqual(t, b, HandshakeBucket(250_000), "%v", e)
	}
	assert.Len(t, slowest, 12, "every connect and accept has a handshake")
	return ""
}

// pair connects client to a fresh listener at addr in server and returns both ends.
func pair(t *testing.T, client, server *netnstest.Pod, addr netip.AddrPort) (c, s net.Conn) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, server.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }))
	defer ln.Close()
	require.NoError(t, client.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), 5*time.Second); return err }))
	s, err := ln.Accept()
	require.NoError(t, err)
	return c, s
}

func readEOF(t *testing.T, c net.Conn) {
	t.Helper()
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}
