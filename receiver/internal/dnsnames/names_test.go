//go:build linux

package dnsnames

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
)

// openNames attaches the program at the node's cgroup v2 root for the test.
func openNames(t *testing.T) *Names {
	t.Helper()
	netnstest.RequireRoot(t)
	root, err := netnstest.Cgroup2Mount()
	require.NoError(t, err)
	n, err := Open(Options{CgroupRoot: root, MaxNames: 1024, Poll: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	return n
}

// A pod's answers, A and AAAA through a CNAME, land in the table under the pod's network
// namespace and the queried name; the DNS server's own namespace and other pods learn nothing.
func TestNamesFromRealResponses(t *testing.T) {
	n := openNames(t)
	netw := netnstest.NewNetwork(t, 190)
	dnsPod, client, other := netw.AddPod(), netw.AddPod(), netw.AddPod()
	dns := dnsPod.StartDNSServer(t)
	v4, v6 := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")
	dns.Set("www", netnstest.DNSRecord{Target: "edge", TTL: 60})
	dns.Set("edge", netnstest.DNSRecord{Addr: v4, TTL: 300}, netnstest.DNSRecord{Addr: v6, TTL: 300})

	got := client.Resolve(t, dnsPod.IPv4, "www")
	require.ElementsMatch(t, []netip.Addr{v4, v6}, got)
	n.Refresh()
	now := time.Now().UnixNano()
	require.Equal(t, "www.podnet.test", n.Lookup(client.NetnsInode(), v4, now))
	require.Equal(t, "www.podnet.test", n.Lookup(client.NetnsInode(), v6, now))
	require.Empty(t, n.Lookup(other.NetnsInode(), v4, now), "another pod resolved nothing")
	require.Empty(t, n.Lookup(dnsPod.NetnsInode(), v4, now), "the server's own namespace asked nothing")
	require.Empty(t, n.Lookup(client.NetnsInode(), v4, now+61e9), "the chain's least TTL (the CNAME's) ran out")

	c, err := n.Counters()
	require.NoError(t, err)
	require.GreaterOrEqual(t, c.Seen, uint64(2))
	require.Equal(t, c.Seen, c.Responses)
	require.Zero(t, c.Lost+c.NoSocket+c.Malformed)
}
