//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/dnsnames"
)

// podsAt names some peer addresses as pods, as the Kubernetes informers would, over the node's
// own attribution.
type podsAt struct {
	attribution.Attributor
	pods map[netip.Addr]string
}

func (p podsAt) Peer(a netip.Addr, at int64) (attribution.Peer, attribution.Span) {
	if name, ok := p.pods[a]; ok {
		return attribution.Peer{PodName: name, PodUID: "uid-" + name, Namespace: "shop"}, attribution.Always
	}
	return p.Attributor.Peer(a, at)
}

func withPods(pods map[netip.Addr]string) func(*podnetReceiver) {
	return func(r *podnetReceiver) {
		start := r.startAttribution
		r.startAttribution = func(h component.Host, tb *metadata.TelemetryBuilder) (startedAttribution, error) {
			started, err := start(h, tb)
			started.attr = podsAt{started.attr, pods}
			return started, err
		}
	}
}

// serving listens on port 8080 of each pod's two addresses, closing what it accepts.
func serving(t *testing.T, pods ...*netnstest.Pod) {
	t.Helper()
	for _, p := range pods {
		p.AcceptAll(t, netip.AddrPortFrom(p.IPv4, 8080), nil)
		p.AcceptAll(t, netip.AddrPortFrom(p.IPv6, 8080), nil)
	}
}

// clientRecords are the connect and close records of pod's connections to addr.
func clientRecords(t *testing.T, rs []rec, addr netip.Addr) []rec {
	t.Helper()
	return clientRecordsN(t, rs, addr, 1)
}

// clientRecordsN is clientRecords for n connections to addr.
func clientRecordsN(t *testing.T, rs []rec, addr netip.Addr, n int) []rec {
	t.Helper()
	var out []rec
	for _, r := range rs {
		if (r.name == "podnet.tcp.connect" || r.name == "podnet.tcp.close") && r.attrs["network.peer.address"] == addr.String() &&
			r.attrs["podnet.connection.role"] == "client" {
			out = append(out, r)
		}
	}
	require.Lenf(t, out, 2*n, "a connect and a close of %d connections to %v:\n%s", n, addr, dump(rs))
	return out
}

// A pod resolves api.podnet.test (A and AAAA, over UDP) and another name over TCP, from a DNS
// server in another pod, and connects to each address: the client's connect and close records
// carry server.address, IPv4 and IPv6 alike, and so do its connection metrics (in-kernel
// aggregation, the name looked up at the drain). The servers' records, the DNS connections and
// the DNS server itself carry none.
func TestServerAddressIsTheNameThePodResolved(t *testing.T) {
	netw := netnstest.NewNetwork(t, 191)
	dnsPod, client, api, api2 := netw.AddPod(), netw.AddPod(), netw.AddPod(), netw.AddPod()
	dns := dnsPod.StartDNSServer(t)
	dns.Set("api", netnstest.DNSRecord{Addr: api.IPv4, TTL: 300}, netnstest.DNSRecord{Addr: api.IPv6, TTL: 300})
	dns.Set("tcp-only", netnstest.DNSRecord{Addr: api2.IPv4, TTL: 300})
	serving(t, api, api2)

	var dnsProgram ebpf.ProgramID
	logs, metrics, stop := startReceiverOpts(t, componenttest.NewNopHost(), func(cfg *Config) {
		cfg.DNSNames.MetricAttribute = true
	}, func(r *podnetReceiver) {
		open := r.openNames
		r.openNames = func(o dnsnames.Options) (dnsSource, error) {
			s, err := open(o)
			if n, ok := s.(*dnsnames.Names); ok {
				dnsProgram = n.ProgramID()
			}
			return s, err
		}
	})
	require.NotZero(t, dnsProgram, "dns_names attached")
	require.ElementsMatch(t, []netip.Addr{api.IPv4, api.IPv6}, client.Resolve(t, dnsPod.IPv4, "api"))
	require.NoError(t, dialFrom(t, client, netip.AddrPortFrom(api.IPv4, 8080)))
	require.NoError(t, dialFrom(t, client, netip.AddrPortFrom(api.IPv6, 8080)))
	require.Equal(t, []netip.Addr{api2.IPv4}, client.ResolveTCP(t, dnsPod.IPv6, "tcp-only"))
	require.NoError(t, dialFrom(t, client, netip.AddrPortFrom(api2.IPv4, 8080)))
	// Client: 3 connections and 2 to the DNS server over TCP, a connect and a close each.
	settle(t, logs, 10, client)
	stop()
	assert.Empty(t, leftLoaded(t, []ebpf.ProgramID{dnsProgram}), "Shutdown unloads the DNS program")

	rs := records(logs.AllLogs(), client.NetnsInode())
	for _, addr := range []netip.Addr{api.IPv4, api.IPv6} {
		for _, r := range clientRecords(t, rs, addr) {
			assert.Equal(t, "api.podnet.test", r.attrs["server.address"], "%s to %v", r.name, addr)
		}
	}
	for _, r := range clientRecords(t, rs, api2.IPv4) {
		assert.Equal(t, "tcp-only.podnet.test", r.attrs["server.address"], "answered over TCP: %s", r.name)
	}
	for _, r := range rs {
		if r.attrs["network.peer.port"] == int64(53) {
			assert.NotContains(t, r.attrs, "server.address", "the DNS server was dialled by address: %v", r.attrs)
		}
	}
	for _, r := range records(logs.AllLogs(), api.NetnsInode(), api2.NetnsInode(), dnsPod.NetnsInode()) {
		assert.NotContains(t, r.attrs, "server.address", "a server's records name no server: %v", r.attrs)
	}

	for _, c := range []struct {
		addr     netip.Addr
		netType  string
		name     string
		expected float64
	}{
		{api.IPv4, "ipv4", "api.podnet.test", 1},
		{api.IPv6, "ipv6", "api.podnet.test", 1},
		{api2.IPv4, "ipv4", "tcp-only.podnet.test", 1},
	} {
		v, ok := point(t, metrics.AllMetrics(), client.NetnsInode(), "podnet.tcp.connections", map[string]any{
			"podnet.connection.role": "client", "network.type": c.netType, "network.peer.address": c.addr.String(),
			"server.port": int64(8080), "server.address": c.name,
		})
		assert.True(t, ok, "a connections series of %v named %s", c.addr, c.name)
		assert.Equal(t, c.expected, v)
	}
}

// The queried name, not the CNAME chain's end, names a connection; a name whose TTL ran out
// before the connection is not used, in its records nor in its metrics (the address's earlier
// connection, named, does not lend its name: each event counts under its own); two pods that resolved different names to one address
// each get their own; a peer that is a pod keeps its Kubernetes name and gets no server.address.
// Metrics from events (metrics_aggregation: events) with at most two names: the third is _OTHER.
func TestServerAddressChainsExpiryPerPodAndPods(t *testing.T) {
	netw := netnstest.NewNetwork(t, 192)
	dnsPod, client, client2 := netw.AddPod(), netw.AddPod(), netw.AddPod()
	edge, short, shared, web := netw.AddPod(), netw.AddPod(), netw.AddPod(), netw.AddPod()
	dns := dnsPod.StartDNSServer(t)
	dns.Set("www", netnstest.DNSRecord{Target: "www.cdn", TTL: 300})
	dns.Set("www.cdn", netnstest.DNSRecord{Target: "edge-7.cdn", TTL: 300})
	dns.Set("edge-7.cdn", netnstest.DNSRecord{Addr: edge.IPv4, TTL: 300})
	dns.Set("short", netnstest.DNSRecord{Addr: short.IPv4, TTL: 1})
	dns.Set("alpha", netnstest.DNSRecord{Addr: shared.IPv4, TTL: 300})
	dns.Set("beta", netnstest.DNSRecord{Addr: shared.IPv4, TTL: 300})
	dns.Set("web", netnstest.DNSRecord{Addr: web.IPv4, TTL: 300})
	serving(t, edge, short, shared, web)

	logs, metrics, stop := startReceiverOpts(t, componenttest.NewNopHost(), func(cfg *Config) {
		cfg.MetricsAggregation = aggregationEvents
		cfg.DNSNames.MetricAttribute = true
		cfg.DNSNames.MaxMetricNames = 2
	}, withPods(map[netip.Addr]string{web.IPv4: "web-0"}))

	require.Equal(t, []netip.Addr{edge.IPv4}, client.Resolve(t, dnsPod.IPv4, "www"))
	require.NoError(t, dialFrom(t, client, netip.AddrPortFrom(edge.IPv4, 8080)))
	require.Equal(t, []netip.Addr{shared.IPv4}, client.Resolve(t, dnsPod.IPv4, "alpha"))
	require.NoError(t, dialFrom(t, client, netip.AddrPortFrom(shared.IPv4, 8080)))
	require.Equal(t, []netip.Addr{shared.IPv4}, client2.Resolve(t, dnsPod.IPv4, "beta"))
	require.NoError(t, dialFrom(t, client2, netip.AddrPortFrom(shared.IPv4, 8080)))
	require.Equal(t, []netip.Addr{web.IPv4}, client.Resolve(t, dnsPod.IPv4, "web"))
	require.NoError(t, dialFrom(t, client, netip.AddrPortFrom(web.IPv4, 8080)))
	require.Equal(t, []netip.Addr{short.IPv4}, client.Resolve(t, dnsPod.IPv4, "short"))
	require.NoError(t, dialFrom(t, client, netip.AddrPortFrom(short.IPv4, 8080)))
	time.Sleep(2500 * time.Millisecond) // past the 1 s TTL
	require.NoError(t, dialFrom(t, client, netip.AddrPortFrom(short.IPv4, 8080)))
	settle(t, logs, 12, client, client2)
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode())
	for _, r := range clientRecords(t, rs, edge.IPv4) {
		assert.Equal(t, "www.podnet.test", r.attrs["server.address"], "the name asked, two CNAMEs before the address: %s", r.name)
	}
	for _, r := range clientRecords(t, rs, shared.IPv4) {
		assert.Equal(t, "alpha.podnet.test", r.attrs["server.address"], r.name)
	}
	for _, r := range clientRecords(t, records(logs.AllLogs(), client2.NetnsInode()), shared.IPv4) {
		assert.Equal(t, "beta.podnet.test", r.attrs["server.address"], "the other pod's own name for the address: %s", r.name)
	}
	for _, r := range clientRecords(t, rs, web.IPv4) {
		assert.Equal(t, "web-0", r.attrs["podnet.peer.k8s.pod.name"])
		assert.NotContains(t, r.attrs, "server.address", "a pod peer keeps its Kubernetes name only: %s", r.name)
	}
	shortNames := map[any]int{}
	for _, r := range clientRecordsN(t, rs, short.IPv4, 2) {
		shortNames[r.attrs["server.address"]]++
	}
	assert.Equal(t, map[any]int{"short.podnet.test": 2, nil: 2}, shortNames,
		"the first connection's connect and close named, the second's not: the TTL ran out before it")

	series := func(peer netip.Addr, name string) map[string]any {
		m := map[string]any{"podnet.connection.role": "client", "network.type": "ipv4", "network.peer.address": peer.String(), "server.port": int64(8080)}
		if name != "" {
			m["server.address"] = name
		}
		return m
	}
	for _, c := range []struct {
		netns uint32
		peer  netip.Addr
		name  string
	}{
		{client.NetnsInode(), edge.IPv4, "www.podnet.test"},
		{client.NetnsInode(), shared.IPv4, "alpha.podnet.test"},
		{client2.NetnsInode(), shared.IPv4, dnsOtherName}, // a third name: beyond max_metric_names
		{client.NetnsInode(), short.IPv4, dnsOtherName},   // the first: named, beyond max_metric_names
		{client.NetnsInode(), short.IPv4, ""},             // the second: its own name, none
	} {
		v, ok := point(t, metrics.AllMetrics(), c.netns, "podnet.tcp.connections", series(c.peer, c.name))
		assert.True(t, ok && v == 1, "one connection of %v named %q: %v %v", c.peer, c.name, v, ok)
	}
}

// One pod resolves two hosts of one CDN address: a connection opened after the first answer
// and closed after the second keeps the first name at its close, and one opened after the
// second gets the second (the two most recent names per address are kept).
func TestServerAddressTwoHostsOfOneAddress(t *testing.T) {
	netw := netnstest.NewNetwork(t, 193)
	dnsPod, client, cdn := netw.AddPod(), netw.AddPod(), netw.AddPod()
	dns := dnsPod.StartDNSServer(t)
	dns.Set("img", netnstest.DNSRecord{Addr: cdn.IPv4, TTL: 300})
	dns.Set("static", netnstest.DNSRecord{Addr: cdn.IPv4, TTL: 300})
	serving(t, cdn)
	logs, _, stop := startReceiverOpts(t, componenttest.NewNopHost(), func(*Config) {}, func(*podnetReceiver) {})

	dial := func() (conn net.Conn, port int64) {
		require.NoError(t, client.Do(func() (err error) {
			conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(cdn.IPv4, 8080).String(), 5*time.Second)
			return err
		}))
		return conn, int64(conn.LocalAddr().(*net.TCPAddr).Port)
	}
	require.Equal(t, []netip.Addr{cdn.IPv4}, client.Resolve(t, dnsPod.IPv4, "img"))
	first, firstPort := dial()
	require.Equal(t, []netip.Addr{cdn.IPv4}, client.Resolve(t, dnsPod.IPv4, "static"))
	second, secondPort := dial()
	require.NoError(t, first.Close()) // after the second name was resolved
	require.NoError(t, second.Close())
	settle(t, logs, 4, client)
	stop()

	named := map[int64]string{firstPort: "img.podnet.test", secondPort: "static.podnet.test"}
	n := 0
	for _, r := range records(logs.AllLogs(), client.NetnsInode()) {
		if r.attrs["network.peer.address"] != cdn.IPv4.String() || r.attrs["podnet.connection.role"] != "client" {
			continue
		}
		port, _ := r.attrs["network.local.port"].(int64)
		assert.Equal(t, named[port], r.attrs["server.address"], "%s of the connection from port %d", r.name, port)
		n++
	}
	assert.Equal(t, 4, n, "a connect and a close for each connection")
}
