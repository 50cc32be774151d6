package kernel

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// Bytes received are exact at the close whichever end closes first and however. The peer's FIN
// takes a byte of sequence space that the kernel counts in bytes_received; it is taken out only
// when the FIN arrived. (It was taken out whenever RCV_SHUTDOWN was set, which close() sets too:
// the end that closed first, whose socket the kernel closes in FIN_WAIT2 before the peer's FIN,
// lost a real byte, as did an abortive close.) Both sinks: close events and the aggregates.
func TestBytesReceivedExactWhicheverEndClosesFirst(t *testing.T) {
	netw := netnstest.NewNetwork(t, 215)
	client, server := netw.AddPod(), netw.AddPod()
	cns, sns := client.NetnsInode(), server.NetnsInode()
	tr := openBothSinks(t, HooksTPBTF)
	ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool {
		return e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) && (e.NetnsIno == cns || e.NetnsIno == sns)
	})
	clientTotals, serverTotals := roleTotals{}, roleTotals{}
	watched := map[uint32]roleTotals{cns: clientTotals, sns: serverTotals}
	drainInto(t, tr, watched)

	var closes []bpf.PodnetEvent
	readCloses := func() { closes = append(closes, ring.take()...) }
	closed := func(role uint8, port uint16) bool {
		for _, e := range closes {
			if e.Role == role && (e.PeerPort == port || e.LocalPort == port) {
				return true
			}
		}
		return false
	}
	const up, down = 100, 200 // client to server, server to client, before any close
	exchange := func(port uint16) (c, s net.Conn) {
		c, s = pair(t, client, server, netip.AddrPortFrom(server.IPv4, port))
		_, err := c.Write(make([]byte, up))
		require.NoError(t, err)
		_, err = io.ReadFull(s, make([]byte, up))
		require.NoError(t, err)
		_, err = s.Write(make([]byte, down))
		require.NoError(t, err)
		_, err = io.ReadFull(c, make([]byte, down))
		require.NoError(t, err)
		return c, s
	}

	// 7401: the client closes first, and its socket is closed (FIN_WAIT2, handed to time-wait)
	// before the server sends its FIN.
	c, s := exchange(7401)
	require.NoError(t, c.Close())
	readEOF(t, s)
	require.Eventually(t, func() bool { readCloses(); return closed(roleClient, 7401) }, 5*time.Second, 10*time.Millisecond,
		"the client's close, before the server's FIN")
	require.NoError(t, s.Close())
	// 7402: the client aborts (SO_LINGER 0).
	c, s = exchange(7402)
	require.NoError(t, c.(*net.TCPConn).SetLinger(0))
	require.NoError(t, c.Close())
	_, err := s.Read(make([]byte, 1))
	require.Error(t, err)
	require.NoError(t, s.Close())
	// 7403: the server closes first; the client takes its FIN in.
	c, s = exchange(7403)
	require.NoError(t, s.Close())
	readEOF(t, c)
	require.NoError(t, c.Close())
	// 7404: half-close: the client shuts its side (FIN_WAIT2, not orphaned), the server sends
	// more after the client's FIN, then closes; the client reads it all and takes the FIN in.
	c, s = exchange(7404)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	readEOF(t, s)
	_, err = s.Write(make([]byte, down))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = io.ReadFull(c, make([]byte, down))
	require.NoError(t, err)
	readEOF(t, c)
	require.NoError(t, c.Close())

	received := map[uint8]map[uint16]uint64{
		roleClient: {7401: down, 7402: down, 7403: down, 7404: 2 * down},
		roleServer: {7401: up, 7402: up, 7403: up, 7404: up},
	}
	require.Eventually(t, func() bool {
		readCloses()
		drainInto(t, tr, watched)
		return len(closes) >= 8 && clientTotals.get(roleClient).Closed == 4 && serverTotals.get(roleServer).Closed == 4
	}, 10*time.Second, 20*time.Millisecond, "every connection's two closes, in the events and the aggregates")
	require.Len(t, closes, 8)
	for _, e := range closes {
		port := e.PeerPort
		if e.Role == roleServer {
			port = e.LocalPort
		}
		assert.Equal(t, received[e.Role][port], e.BytesReceived, "role %d, port %d: bytes received, at its close", e.Role, port)
	}
	assert.Equal(t, uint64(5*down), clientTotals.get(roleClient).BytesReceived, "the clients' bytes received, aggregated")
	assert.Equal(t, uint64(4*up), serverTotals.get(roleServer).BytesReceived, "the servers' bytes received, aggregated")
}

// Data a netfilter rule in the sender's own namespace drops before it leaves is sent again as
// new data, not as a retransmission, and the kernel's bytes_sent counts every attempt: the
// bytes sent are what the peer acknowledged, counted once (found by an independent check: 1800
// for 300 sent). Both ends' close records, both hook modes, and the in-kernel aggregates.
func TestBytesSentDroppedLocallyCountOnce(t *testing.T) {
	for i, hooks := range []HookMode{HooksTPBTF, HooksTracepoint} {
		t.Run(string(hooks), func(t *testing.T) { testBytesSentDroppedLocally(t, hooks, byte(236+i)) })
	}
}

func testBytesSentDroppedLocally(t *testing.T, hooks HookMode, subnet byte) {
	netw := netnstest.NewNetwork(t, subnet)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr, err := Open(Options{
		Hooks: hooks, RingBufferSize: 1 << 22, MaxTrackedConnections: 4096, Events: true,
		AggregateInKernel: true, MaxAggregates: 1024,
	})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRingWhere(t, tr, inNetns(clientPod.NetnsInode()))

	clients, servers := connectPods(t, clientPod, serverPod, 7236, 1)
	client, server := clients[0], servers[0]
	// The client's data packets are dropped on their way out for a while: the kernel sends
	// them again and again, counting each attempt in bytes_sent.
	out := clientPod.Filter("podnet_out", "output", "tcp dport 7236 tcp flags & (syn | fin) == 0 ip length > 52", "drop")
	const payload = 300
	_, err = client.Write(make([]byte, payload))
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond) // several attempts, each dropped
	out.Remove()
	_, err = io.ReadFull(server, make([]byte, payload))
	require.NoError(t, err)
	require.NoError(t, client.Close())
	readEOF(t, server)
	require.NoError(t, server.Close())

	closes := collect(ring, 2) // its connect and close
	var sent []uint64
	for _, e := range closes {
		if e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) {
			sent = append(sent, e.BytesSent)
		}
	}
	assert.Equal(t, []uint64{payload}, sent, "the client's close: the payload once")

	totals := roleTotals{}
	drainInto(t, tr, map[uint32]roleTotals{clientPod.NetnsInode(): totals})
	require.NotNil(t, totals[uint8(bpf.PodnetRoleROLE_CLIENT)])
	assert.Equal(t, uint64(payload), totals[uint8(bpf.PodnetRoleROLE_CLIENT)].BytesSent, "the client's aggregate: the payload once")
}
