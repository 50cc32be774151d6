//go:build linux

package procfound

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
)

// TestScanFindsPodConnections opens real connections between two pods and inside one, and
// expects each end exactly once, in its own namespace, with its tuple, role and holder.
func TestScanFindsPodConnections(t *testing.T) {
	network := netnstest.NewNetwork(t, 121)
	srv, cli := network.AddPod(), network.AddPod()
	startPause(t, srv)
	startPause(t, cli)
	srvNS, cliNS := srv.NetnsInode(), cli.NetnsInode()
	var want []Conn
	both := func(c, s *net.TCPConn, cState, sState uint8) {
		want = append(want, expect(t, cliNS, c, Client, cState), expect(t, srvNS, s, Server, sState))
	}

	ln4 := listen(t, srv, "tcp4", srv.IPv4.String()+":0")
	c, s := connect(t, cli, "tcp4", ln4.Addr().String(), ln4)
	both(c, s, stateEstablished, stateEstablished)

	ln6 := listen(t, srv, "tcp6", "["+srv.IPv6.String()+"]:0")
	c, s = connect(t, cli, "tcp6", ln6.Addr().String(), ln6)
	both(c, s, stateEstablished, stateEstablished)

	// A dual-stack listener: the accepted end of an IPv4 client is in tcp6, IPv4-mapped.
	lnDual := listen(t, srv, "tcp", "[::]:0")
	c, s = connect(t, cli, "tcp4", net.JoinHostPort(srv.IPv4.String(), itoa(portOf(lnDual))), lnDual)
	both(c, s, stateEstablished, stateEstablished)

	// Loopback inside one pod: both ends in the same namespace, told apart by the listener.
	for _, host := range []string{"127.0.0.1", "::1"} {
		ln := listen(t, srv, "tcp", net.JoinHostPort(host, "0"))
		c, s := connect(t, srv, "tcp", ln.Addr().String(), ln)
		want = append(want, expect(t, srvNS, c, Client, stateEstablished), expect(t, srvNS, s, Server, stateEstablished))
	}

	// Half-closed: the client is done sending, the server has not closed yet.
	c, s = connect(t, cli, "tcp4", ln4.Addr().String(), ln4)
	require.NoError(t, c.CloseWrite())
	both(c, s, stateFinWait2, stateCloseWait)

	// A listener alone is no connection.
	listen(t, cli, "tcp4", cli.IPv4.String()+":0")

	slices.SortFunc(want, compareConns)
	// The FIN's ACK crosses the bridge asynchronously: wait for FIN_WAIT2.
	var got []Conn
	var st Stats
	require.Eventually(t, func() bool {
		all, stats, err := Scan("/proc", 1<<20)
		require.NoError(t, err)
		got, st = inNamespaces(all, srvNS, cliNS), stats
		return slices.Equal(got, want)
	}, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, want, got)
	assert.Zero(t, st.Malformed)
	assert.Zero(t, st.Truncated)
	assert.GreaterOrEqual(t, st.Namespaces, 3, "host and both pods")
}

func inNamespaces(conns []Conn, ns ...uint32) []Conn {
	return slices.DeleteFunc(slices.Clone(conns), func(c Conn) bool { return !slices.Contains(ns, c.NetnsIno) })
}
