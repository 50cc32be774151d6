package podnetreceiver

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// Each connection is on exactly one edge across the cluster (podnet on every node), whichever
// end it is counted at, in every peer_pods mode; a connection with no pod at either end on none.
// Found by an independent check: with peer_pods all, the server end counted a client at a node's
// address (a hostNetwork pod, a pod hairpinning through its own Service) that its own node had
// counted already.
func TestServiceGraphCountsEachConnectionOnce(t *testing.T) {
	var (
		nodeA, nodeB   = netip.MustParseAddr("172.23.255.1"), netip.MustParseAddr("172.23.255.2")
		webIP, apiIP   = netip.MustParseAddr("10.244.1.5"), netip.MustParseAddr("10.244.2.7")
		cartIP, svcIP  = netip.MustParseAddr("10.244.1.6"), netip.MustParseAddr("10.96.0.10")
		cartSvc        = netip.MustParseAddr("10.96.0.11")
		outside, other = netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("10.9.0.9")
	)
	pod := func(name, workload string) *localEnd {
		return &localEnd{attr: attribution.Local{PodUID: "uid-" + name, PodName: name, Namespace: "shop", Workload: workload}}
	}
	web, api, cart := pod("web-6d4cf56db6-x7k2p", "web"), pod("api-7f8b9c6d5-bq2lz", "api"), pod("cart-5c9f7b8d4-qz2lk", "cart")
	agent := pod("node-agent-x7k2p", "node-agent") // hostNetwork: at nodeA
	process := &localEnd{nodeAddrs: nodeAddrsOf([]netip.Addr{nodeA})}
	stranger := &localEnd{} // no pod, in a network namespace of its own

	// peers is how a node names an address in each mode: every pod and node address with all,
	// the pods behind Services with endpoints (web is behind none), Services only with none.
	peers := func(mode k8smeta.PeerPods, a netip.Addr) attribution.Peer {
		switch a {
		case svcIP:
			return attribution.Peer{ServiceName: "backend", Namespace: "shop"}
		case cartSvc:
			return attribution.Peer{ServiceName: "cart-svc", Namespace: "shop"}
		case nodeA, nodeB:
			return attribution.Peer{Node: mode == k8smeta.PeerPodsAll}
		}
		named := map[netip.Addr]*localEnd{webIP: web, apiIP: api, cartIP: cart}[a]
		if named == nil || mode == k8smeta.PeerPodsNone || mode == k8smeta.PeerPodsEndpoints && named == web {
			return attribution.Peer{}
		}
		return attribution.Peer{PodName: named.attr.PodName, Namespace: "shop", Workload: named.attr.Workload}
	}
	type end struct {
		local *localEnd  // nil: not on a node running podnet
		peer  netip.Addr // as this end sees it
	}
	none := []string{}
	for _, c := range []struct {
		name           string
		client, server end
		// the edges with peer_pods all, endpoints and none; nil: as with all
		all, endpoints, none []string
	}{
		{"pod to pod", end{web, apiIP}, end{api, webIP}, []string{"shop/web -> shop/api"}, nil, []string{"shop/web -> 10.244.2.7"}},
		{"pod to Service", end{web, svcIP}, end{api, webIP}, []string{"shop/web -> shop/backend"}, nil, nil},
		{"pod to outside", end{web, outside}, end{}, []string{"shop/web -> 203.0.113.9"}, nil, nil},
		{"hostNetwork pod to pod", end{agent, apiIP}, end{api, nodeA}, []string{"shop/node-agent -> shop/api"}, nil, []string{"shop/node-agent -> 10.244.2.7"}},
		{"hairpin through its own Service, masqueraded", end{cart, cartSvc}, end{cart, nodeA}, []string{"shop/cart -> shop/cart-svc"}, nil, nil},
		{"node process to pod", end{process, apiIP}, end{api, nodeA}, []string{"172.23.255.1 -> shop/api"}, nil, none},
		{"node process to Service", end{process, svcIP}, end{api, nodeA}, []string{"172.23.255.1 -> shop/backend"}, nil, nil},
		{"outside to pod", end{}, end{api, outside}, []string{"203.0.113.9 -> shop/api"}, none, none},
		{"outside to hostNetwork pod", end{}, end{agent, outside}, []string{"203.0.113.9 -> shop/node-agent"}, none, none},
		{"no pod, not the node's, to pod", end{stranger, apiIP}, end{api, other}, []string{"10.9.0.9 -> shop/api"}, none, none},
		{"node process to node process", end{process, nodeB}, end{&localEnd{}, nodeA}, none, nil, nil},
		{"node process to hostNetwork pod: named by neither end", end{process, nodeB}, end{agent, nodeA}, none, nil, nil},
		{"node process to outside", end{process, outside}, end{}, none, nil, nil},
	} {
		for mode, want := range map[k8smeta.PeerPods][]string{k8smeta.PeerPodsAll: c.all, k8smeta.PeerPodsEndpoints: c.endpoints, k8smeta.PeerPodsNone: c.none} {
			if want == nil {
				want = c.all
			}
			t.Run(c.name+"/"+string(mode), func(t *testing.T) {
				g := serviceGraph{on: true, max: 100, serverEnds: mode == k8smeta.PeerPodsAll, edges: map[edgeKey]*edge{}}
				names := newStringCache()
				got := []string{}
				for role, e := range map[event.Role]end{event.Client: c.client, event.Server: c.server} {
					if e.local == nil {
						continue
					}
					k := seriesKey{role: role, peer: e.peer, peerID: peers(mode, e.peer)}
					if key, ok := g.edgeOf(&k, e.local, &names); ok {
						got = append(got, key.client+" -> "+key.server)
					}
				}
				assert.Equal(t, want, got)
			})
		}
	}
}

// A client pod whose address the server's node has not learned yet (its first seconds) is
// counted at both ends: the server cannot tell it from a client outside the cluster (the README
// says so).
func TestServiceGraphUnlearnedClientPodIsCountedTwice(t *testing.T) {
	g := serviceGraph{on: true, max: 100, serverEnds: true, edges: map[edgeKey]*edge{}}
	names := newStringCache()
	web := &localEnd{attr: attribution.Local{PodUID: "u1", PodName: "web-0", Namespace: "shop", Workload: "web"}}
	api := &localEnd{attr: attribution.Local{PodUID: "u2", PodName: "api-0", Namespace: "shop", Workload: "api"}}
	atClient := seriesKey{role: event.Client, peer: netip.MustParseAddr("10.244.2.7"), peerID: attribution.Peer{PodName: "api-0", Namespace: "shop", Workload: "api"}}
	atServer := seriesKey{role: event.Server, peer: netip.MustParseAddr("10.244.1.5")}
	c, okC := g.edgeOf(&atClient, web, &names)
	s, okS := g.edgeOf(&atServer, api, &names)
	assert.True(t, okC && okS)
	assert.Equal(t, edgeKey{"shop/web", "shop/api"}, c)
	assert.Equal(t, edgeKey{"10.244.1.5", "shop/api"}, s)
}

// The node's own processes (no pod, in the node's network namespace) are named by the node's
// address of the connection's family; a pod there (hostNetwork) and a process elsewhere are not,
// nor an IPv6 connection when the node has no IPv6 address.
func TestServiceGraphNodeProcessClient(t *testing.T) {
	cfg := NewDefaultConfig()
	node4 := netip.MustParseAddr("172.23.255.1")
	r := newResources(cfg, nodeOnly{addrs: []netip.Addr{node4}, pods: map[uint32]bool{7: true}})
	r.nodeNetns = 1
	assert.Equal(t, nodeAddrsOf([]netip.Addr{node4}), r.get(resourceKey{netnsIno: 1, cgroupID: 5}).nodeAddrs, "the node's process")
	assert.Zero(t, r.get(resourceKey{netnsIno: 1, cgroupID: 7}).nodeAddrs, "a hostNetwork pod")
	assert.Zero(t, r.get(resourceKey{netnsIno: 2, cgroupID: 5}).nodeAddrs, "another network namespace")

	g := serviceGraph{on: true, max: 100, edges: map[edgeKey]*edge{}}
	names := newStringCache()
	process := r.get(resourceKey{netnsIno: 1, cgroupID: 5})
	toSvc := seriesKey{role: event.Client, peer: netip.MustParseAddr("10.96.0.10"), peerID: attribution.Peer{ServiceName: "backend", Namespace: "shop"}}
	key, ok := g.edgeOf(&toSvc, process, &names)
	assert.True(t, ok)
	assert.Equal(t, edgeKey{"172.23.255.1", "shop/backend"}, key)
	toSvc.ipv6, toSvc.peer = true, netip.MustParseAddr("fd00:10:96::a")
	_, ok = g.edgeOf(&toSvc, process, &names)
	assert.False(t, ok, "no IPv6 address of the node to name it by: left to the server end")
}

// A server's series whose client address turns out to be a node's (podnet counts before the
// pods are listed) stops counting edges: the client's node counts them from then on (a kubelet's
// probes were otherwise counted at both ends for as long as the series lived).
func TestServiceGraphRenamesAnEdgeOnceItsClientIsANode(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Metrics.TracesServiceGraphRequestTotal.Enabled = true
	m := newConnectionMetrics(cfg, fixtureSettings)
	attr := &unnamedPeers{}
	res := newResources(cfg, attr) // one local end per workload throughout, as in the receiver
	events := shortConnections(8)  // two connections: their client ends (by address) and server ends
	m.add(enrichAll(res, events))
	before := edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(time.Now()))})
	assert.Equal(t, 4, total(before), "both ends, by address: the server knows no node yet")
	attr.node = true
	m.add(enrichAll(res, events))
	after := edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(time.Now()))})
	assert.Equal(t, 6, total(after), "the clients' ends only, once their addresses are known as nodes'")
}

// unnamedPeers names local ends as pods and no peer; node says whether every peer address is a
// node's.
type unnamedPeers struct {
	attribution.None
	node bool
}

func (u *unnamedPeers) Local(netns uint32, _ uint64) attribution.Local {
	return attribution.Local{PodUID: "u", PodName: fmt.Sprintf("p-%d", netns), Namespace: "shop", Workload: "p"}
}

func (u *unnamedPeers) Peer(netip.Addr, int64) (attribution.Peer, attribution.Span) {
	return attribution.Peer{Node: u.node}, attribution.Always
}

// nodeOnly names pods by cgroup and gives the node's addresses.
type nodeOnly struct {
	attribution.None
	addrs []netip.Addr
	pods  map[uint32]bool // by cgroup
}

func (n nodeOnly) Local(_ uint32, cgroup uint64) attribution.Local {
	if n.pods[uint32(cgroup)] {
		return attribution.Local{PodUID: "u", PodName: "agent", Namespace: "shop", Workload: "agent"}
	}
	return attribution.Local{}
}

func (n nodeOnly) NodeAddrs() []netip.Addr { return n.addrs }

// An edge idle past metric_series_idle_expiry is forgotten and starts again from zero with a
// new start time (a cumulative reset), also for series that still hold it.
func TestServiceGraphForgetsIdleEdges(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Metrics.TracesServiceGraphRequestTotal.Enabled = true
	m := newConnectionMetrics(cfg, fixtureSettings)
	batch := enrichAll(newResources(cfg, podsEverywhere{}), shortConnections(8)) // two connections
	m.add(batch)
	now := time.Now()
	first := edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(now))})
	assert.Equal(t, 2, total(first), "one open each, counted at the client")

	for _, s := range m.series {
		s.active = 1 // open connections: the series outlive their edges' expiry
	}
	later := now.Add(cfg.MetricSeriesIdleExpiry + time.Minute)
	assert.Empty(t, edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(later))}), "idle edges are forgotten")
	require.NotEmpty(t, m.series, "the series with open connections are kept")
	m.add(batch)
	again := edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(time.Now()))})
	assert.Equal(t, first, again, "counted from zero again, not on the forgotten edge")
}

func total(e map[string]edgeCounts) (n int) {
	for _, c := range e {
		n += int(c.opens)
	}
	return n
}

// Connections folded into the overflow series count on the overflow edge when their own series
// would have had an edge, failed ones as failed, and nowhere when it would not: a server end
// whose client is a pod (counted at the client), a connection with no pod at either end (found by
// an independent check: the overflow edge counted every folded connection, both ends, and none
// as failed).
func TestServiceGraphOverflowCountsWhatWouldHaveHadAnEdge(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Metrics.TracesServiceGraphRequestTotal.Enabled = true
	cfg.Metrics.TracesServiceGraphRequestFailedTotal.Enabled = true
	cfg.MaxMetricSeries = 1
	for _, tc := range []struct {
		name          string
		attr          attribution.Attributor
		opens, failed int
	}{
		{"pods", podsEverywhere{}, 21, 1},
		{"no pods", attribution.None{}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newConnectionMetrics(cfg, fixtureSettings)
			events := shortConnections(80) // 20 connections, 4 events each
			refused := events[0]
			refused.Errno = 111 // ECONNREFUSED
			m.add(enrichAll(newResources(cfg, tc.attr), append(events, refused)))
			got := edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(time.Now()))})
			failed := 0
			for _, c := range got {
				failed += int(c.failed)
			}
			assert.Equal(t, tc.opens, total(got), "one open per connection, at the client: %v", got)
			assert.Equal(t, tc.failed, failed)
		})
	}
}

// The bound counts named edges only: an overflow edge made first (a folded series' connections)
// leaves room for max_metric_series named ones, as the overflow series does for series.
func TestServiceGraphBoundLeavesOutTheOverflowEdge(t *testing.T) {
	g := serviceGraph{on: true, max: 2, edges: map[edgeKey]*edge{}}
	now := pcommon.NewTimestampFromTime(time.Now())
	overflow := g.get(overflowEdge, now)
	a, b := edgeKey{"ns/a", "ns/s"}, edgeKey{"ns/b", "ns/s"}
	assert.NotSame(t, overflow, g.get(a, now), "first named edge")
	assert.NotSame(t, overflow, g.get(b, now), "second named edge: within max_metric_series 2")
	assert.Same(t, overflow, g.get(edgeKey{"ns/c", "ns/s"}, now), "third: folded into the overflow edge")
	assert.Len(t, g.edges, 3, "two named edges and the overflow edge")
}

// With the peer's attributes dropped from the connection metrics (the README's cardinality
// example), one series holds connections to several peers: each is still counted on its own
// edge, in both aggregation modes (found by an independent review: all on the first peer's).
func TestServiceGraphEdgesWithPeerAttributesDropped(t *testing.T) {
	for _, mode := range []string{aggregationEvents, aggregationKernel} {
		t.Run(mode, func(t *testing.T) {
			cfg := NewDefaultConfig()
			cfg.MetricsAggregation = mode
			cfg.Kubernetes.AuthType, cfg.NodeName = k8smeta.AuthTypeServiceAccount, "node-1"
			cfg.Metrics.TracesServiceGraphRequestTotal.Enabled = true
			cfg.Metrics.PodnetTCPConnections.EnabledAttributes = []metadata.PodnetTCPConnectionsMetricAttributeKey{
				"podnet.connection.role", "server.port", "error.type",
			}
			require.NoError(t, cfg.Validate())
			m := newFixtureMetrics(cfg)
			res := newResources(cfg, graphWorkloads{})
			for _, c := range []struct {
				peer string
				n    int
			}{{"10.1.2.10", 3}, {"10.1.2.11", 5}} {
				events := enrichAll(res, graphConnects(c.peer, c.n))
				if mode == aggregationEvents {
					m.add(events)
					continue
				}
				e := events[0]
				k := &bpf.PodnetAggKey{NetnsIno: e.NetnsIno, CgroupId: e.CgroupID, Family: 2, PeerAddr: [16]byte{10, 1, 2, e.Peer.Addr().As4()[3]}, ServerPort: 8080, Role: uint8(event.Client)}
				now := pcommon.NewTimestampFromTime(time.Now())
				m.addAggregate(k, &bpf.PodnetAggValue{Connections: uint64(c.n)}, e.Peer.Addr(), e.local, e.peer, e.Peer.Addr(), attribution.Peer{}, "", now, now)
			}
			assert.Equal(t, map[string]edgeCounts{
				"shop/web -> shop/api": {opens: 3},
				"shop/web -> shop/db":  {opens: 5},
			}, edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(time.Now()))}))
		})
	}
}

// graphWorkloads names every local end a pod of shop/web, and peers by address: 10.1.2.10 is a
// pod of shop/api, 10.1.2.11 one of shop/db.
type graphWorkloads struct{ attribution.None }

func (graphWorkloads) Local(uint32, uint64) attribution.Local {
	return attribution.Local{PodUID: "uid-web", PodName: "web-0", Namespace: "shop", Workload: "web"}
}

func (graphWorkloads) Peer(a netip.Addr, _ int64) (attribution.Peer, attribution.Span) {
	switch a {
	case netip.MustParseAddr("10.1.2.10"):
		return attribution.Peer{PodName: "api-0", Namespace: "shop", Workload: "api"}, attribution.Always
	case netip.MustParseAddr("10.1.2.11"):
		return attribution.Peer{PodName: "db-0", Namespace: "shop", Workload: "db"}, attribution.Always
	}
	return attribution.Peer{}, attribution.Always
}

// graphConnects are n connects of shop/web's pod to peer:8080.
func graphConnects(peer string, n int) []event.Event {
	out := make([]event.Event, 0, n)
	for i := range n {
		out = append(out, event.Event{
			Type: event.Connect, Role: event.Client, Time: t0 + uint64(i), NetnsIno: 4026532100, CgroupID: 4026532100,
			Local: netip.AddrPortFrom(netip.MustParseAddr("10.1.1.10"), uint16(40000+i)),
			Peer:  netip.AddrPortFrom(netip.MustParseAddr(peer), 8080),
		})
	}
	return out
}
