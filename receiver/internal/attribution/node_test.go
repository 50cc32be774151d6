package attribution

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/receiver/internal/procscan"
)

type fakeResolver map[uint32]procscan.Ref

func (f fakeResolver) Lookup(netns uint32, _ uint64) (procscan.Ref, bool) {
	r, ok := f[netns]
	return r, ok
}

type fakeMeta struct{}

// staticHash is a static pod's UID inside the kubelet (its cgroups'), whose mirror pod has
// UID u-static in the API.
const staticHash = "8f2b1f0c3d9e4a5b6c7d8e9fa0b1c2d3"

func (fakeMeta) Pod(uid string) (PodID, bool) {
	switch uid {
	case "u1":
		return PodID{"u1", "web-0", "shop", "web"}, true
	case staticHash:
		return PodID{"u-static", "etcd-node-a", "kube-system", "etcd-node-a"}, true
	}
	return PodID{}, false
}

func (fakeMeta) NodeAddrs() []netip.Addr { return nil }

func (fakeMeta) ContainerName(podUID, id string) (string, bool) {
	switch {
	case podUID == "u1" && id == "c1":
		return "nginx", true
	case podUID == staticHash && id == "c2":
		return "etcd", true
	}
	return "", false
}

// Services by ClusterIP, and their ready endpoints: dns has some, down none, and the
// readiness of unlisted is unknown (no EndpointSlice access).
var fakeServices = map[netip.Addr]Peer{
	netip.MustParseAddr("10.96.0.10"): {ServiceName: "dns", Namespace: "kube-system"},
	netip.MustParseAddr("10.96.0.20"): {ServiceName: "down", Namespace: "shop"},
	netip.MustParseAddr("10.96.0.30"): {ServiceName: "unlisted", Namespace: "shop"},
}

func (fakeMeta) Peer(a netip.Addr, _ int64) (Peer, Span, bool) {
	if a == netip.MustParseAddr("10.244.0.7") {
		return Peer{PodName: "db-0", Namespace: "shop"}, Always, true
	}
	p, ok := fakeServices[a]
	return p, Always, ok
}

// ServiceReadyEndpoints: dns has 2 on port 53 and none on 9153; down has none.
func (fakeMeta) ServiceReadyEndpoints(namespace, service string, dialled netip.AddrPort) (int, bool) {
	switch namespace + "/" + service {
	case "kube-system/dns":
		if dialled.Port() == 53 {
			return 2, true
		}
		return 0, true
	case "shop/down":
		return 0, true
	}
	return 0, false
}

func TestNodeCombinesResolverAndMetadata(t *testing.T) {
	res := fakeResolver{1: {PodUID: "u1", ContainerID: "c1"}, 2: {PodUID: "u2"}, 3: {}, 5: {PodUID: staticHash, ContainerID: "c2"}}
	n := NewNode(res, fakeMeta{})
	assert.Equal(t, Local{PodUID: "u1", PodName: "web-0", Namespace: "shop", Workload: "web", ContainerName: "nginx", ContainerID: "c1"}, n.Local(1, 0))
	assert.Equal(t, Local{PodUID: "u2"}, n.Local(2, 0), "a pod the API server does not (yet) know keeps its UID")
	assert.Equal(t, Local{PodUID: "u-static", PodName: "etcd-node-a", Namespace: "kube-system", Workload: "etcd-node-a", ContainerName: "etcd", ContainerID: "c2"}, n.Local(5, 0),
		"a static pod, found by its cgroups' UID, carries its mirror pod's API UID")
	assert.Equal(t, Local{PodUID: staticHash, ContainerID: "c2"}, NewNode(res, nil).Local(5, 0), "unnamed: the cgroups' UID")
	assert.Equal(t, Local{}, n.Local(3, 0), "a process outside any pod gets the node's identity only")
	assert.Equal(t, Local{}, n.Local(4, 0), "unknown")
	assert.Equal(t, Peer{ServiceName: "dns", Namespace: "kube-system"}, peerNow(n, "10.96.0.10"))
	assert.Equal(t, Peer{}, peerNow(n, "10.0.0.1"), "nothing invented for unknown peers")

	assert.Equal(t, Local{PodUID: "u1", ContainerID: "c1"}, NewNode(res, nil).Local(1, 0), "no API server: UID and container id")
	assert.Equal(t, Local{}, NewNode(nil, fakeMeta{}).Local(1, 0))
}

func TestNodeNoReadyEndpoints(t *testing.T) {
	n := NewNode(nil, fakeMeta{})
	for _, tc := range []struct {
		dialled string
		want    bool
	}{
		{"10.96.0.10:53", false},
		{"10.96.0.10:9153", true},
		{"10.96.0.20:80", true},
		{"10.96.0.30:80", false},   // readiness unknown: not said
		{"10.244.0.7:5432", false}, // a pod
	} {
		d := netip.MustParseAddrPort(tc.dialled)
		p := peerNow(n, d.Addr().String())
		assert.False(t, p.NoReadyEndpoints, "Peer does not ask: only failed connects do")
		assert.Equal(t, tc.want, n.NoReadyEndpoints(p, d), tc.dialled)
	}
	assert.False(t, NewNode(nil, nil).NoReadyEndpoints(Peer{ServiceName: "down", Namespace: "shop"}, netip.MustParseAddrPort("10.96.0.20:80")))
}

func peerNow(n *Node, addr string) Peer {
	p, _ := n.Peer(netip.MustParseAddr(addr), time.Now().UnixNano())
	return p
}
