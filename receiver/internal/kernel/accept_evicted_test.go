package kernel

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A full `conns` table evicts connections whose handshake it counted before accept() returns
// them: accept() then finds no entry, as for a connection established before podnet loaded,
// and must not count the open a second time, nor count it open again (found by independent
// checks with max_tracked_connections 64: server opens counted twice, then active left +1 per
// such connection).
func TestAcceptAfterEvictionCountsNoSecondOpen(t *testing.T) {
	netw := netnstest.NewNetwork(t, 223)
	client, server := netw.AddPod(), netw.AddPod()
	sns := server.NetnsInode()
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 64, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true,
	})
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool { return e.NetnsIno == sns })
	totals := map[uint32]roleTotals{sns: {}}
	drainInto(t, tr, totals)
	_, err = tr.FindExisting(func(*bpf.PodnetEvent) {}) // the start-up scan, as Start runs it
	require.NoError(t, err)

	// n handshakes complete into the accept queue before any accept(): the table, of 64,
	// evicts the first ones' entries.
	const n = 400
	addr := netip.AddrPortFrom(server.IPv4, 7901)
	var ln *net.TCPListener
	require.NoError(t, server.Do(func() error {
		l, err := net.Listen("tcp", addr.String())
		if err == nil {
			ln = l.(*net.TCPListener)
		}
		return err
	}))
	defer ln.Close()
	clients := make([]net.Conn, 0, n)
	require.NoError(t, client.Do(func() error {
		for range n {
			c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
			if err != nil {
				return err
			}
			clients = append(clients, c)
		}
		return nil
	}))
	for range n {
		s, err := ln.Accept()
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
	for _, c := range clients {
		require.NoError(t, c.Close())
	}
	accepts := 0
	require.Eventually(t, func() bool {
		for _, e := range ring.take() {
			if e.Type == uint8(bpf.PodnetEventTypeEVENT_ACCEPT) {
				accepts++
				// Its handshake came after podnet loaded: a new connection for `events` metrics.
				assert.Zero(t, e.Flags&uint8(bpf.PodnetEventFlagEVENT_FLAG_OPEN_UNSEEN), "an evicted entry's accept is no queued one's")
			}
		}
		return accepts >= n
	}, 10*time.Second, 10*time.Millisecond, "every accept reported")
	drainInto(t, tr, totals)
	c := counters(t, tr)
	t.Logf("untracked closes %d", c.CloseUntracked)
	assert.Equal(t, uint64(n), totals[sns].get(roleServer).Connections, "each server open counted once")
	// Each connection whose close was seen (counted closed) took its one open away; only those
	// whose entry was evicted again before their close (untracked) are left open.
	srv := totals[sns].get(roleServer)
	t.Logf("server: %d closes seen, %d left open", srv.Closed, srv.Active)
	assert.Equal(t, uint64(n)-srv.Closed, srv.Active, "open left = connections whose close was not seen")
}
