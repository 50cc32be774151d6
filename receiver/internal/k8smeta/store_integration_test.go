package k8smeta

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/kubetest"
)

const (
	settle = 20 * time.Second // for a watch event to reach the cache
	tick   = 50 * time.Millisecond
)

// TestStore runs the Store as the examples/rbac.yaml account against a real API server:
// node filtering, lookups by UID, container ID and IP, deletions, and an API server outage.
func TestStore(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	c.Namespace(t, "shop")

	local := c.CreatePod(t, kubetest.Pod{
		Namespace: "shop", Name: "web", Node: "node-a",
		IPs:        []string{"10.244.1.5", "fd00:244::5"},
		Containers: map[string]string{"web": "containerd://aaa111", "sidecar": "containerd://bbb222"},
	})
	remote := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "db", Node: "node-b", IPs: []string{"10.244.2.7"}, Containers: map[string]string{"db": "containerd://ccc333"}})
	hostNet := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "agent", Node: "node-b", IPs: []string{"192.0.2.20"}, Containers: map[string]string{"agent": "containerd://ddd444"}, HostNetwork: true})
	svc := c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "db", ClusterIPs: []string{"10.96.0.50"}})
	dual := c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "web", DualStack: true})
	require.Len(t, dual.Spec.ClusterIPs, 2, "dual-stack service CIDRs")

	start := time.Now()
	s, status, synced := startStore(t, kubeconfig, "node-a", 30*time.Second)
	require.True(t, synced, "initial sync as the examples/rbac.yaml account")
	t.Logf("store synced in %v", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-status:
		t.Fatalf("status report while healthy: %v", err)
	default:
	}

	t.Run("local pods are this node's only", func(t *testing.T) {
		p, ok := s.PodByUID(string(local.UID))
		require.True(t, ok)
		assert.Equal(t, Pod{
			Name: "web", Namespace: "shop", UID: string(local.UID), Workload: "web",
			Containers: map[string]string{"aaa111": "web", "bbb222": "sidecar"},
		}, p)
		name, ok := s.ContainerName(string(local.UID), "bbb222")
		assert.True(t, ok)
		assert.Equal(t, "sidecar", name)
		_, ok = s.ContainerName(string(local.UID), "ccc333")
		assert.False(t, ok, "another pod's container")

		_, ok = s.PodByUID(string(remote.UID))
		assert.False(t, ok, "pod on node-b")
		_, ok = s.ContainerName(string(remote.UID), "ccc333")
		assert.False(t, ok, "pod on node-b")
	})

	t.Run("peers by IP", func(t *testing.T) {
		for addr, want := range map[string]Peer{
			"10.244.1.5":  {Kind: PeerPod, Name: "web", Namespace: "shop", UID: string(local.UID), Workload: "web"},
			"fd00:244::5": {Kind: PeerPod, Name: "web", Namespace: "shop", UID: string(local.UID), Workload: "web"},
			"10.244.2.7":  {Kind: PeerPod, Name: "db", Namespace: "shop", UID: string(remote.UID), Workload: "db"},
			"10.96.0.50":  {Kind: PeerService, Name: "db", Namespace: "shop", UID: string(svc.UID)},
		} {
			got, ok := s.PeerByIP(netip.MustParseAddr(addr))
			assert.True(t, ok, addr)
			assert.Equal(t, want, got, addr)
		}
		for _, addr := range kubetest.ClusterIPs(dual) {
			got, ok := s.PeerByIP(addr)
			assert.True(t, ok, "dual-stack ClusterIP %v", addr)
			assert.Equal(t, Peer{Kind: PeerService, Name: "web", Namespace: "shop", UID: string(dual.UID)}, got)
		}
		got, ok := s.PeerByIP(netip.MustParseAddr("::ffff:10.244.2.7"))
		assert.True(t, ok, "IPv4-mapped IPv6, as a dual-stack socket reports it")
		assert.Equal(t, "db", got.Name)

		_, ok = s.PeerByIP(netip.MustParseAddr("192.0.2.20"))
		assert.False(t, ok, "hostNetwork pod %s: its IP is the node's", hostNet.Name)
		_, ok = s.PeerByIP(netip.MustParseAddr("10.244.9.9"))
		assert.False(t, ok)
	})

	t.Run("changes arrive by watch", func(t *testing.T) {
		later := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "late", Node: "node-a", IPs: []string{"10.244.1.6"}, Containers: map[string]string{"late": "containerd://eee555"}})
		require.Eventually(t, func() bool { _, ok := s.PodByUID(string(later.UID)); return ok }, settle, tick)

		c.DeletePod(t, "shop", "db")
		require.Eventually(t, func() bool { _, ok := s.PeerByIP(netip.MustParseAddr("10.244.2.7")); return !ok }, settle, tick, "deleted peer")
		p, ok := s.PodByUID(string(later.UID))
		require.True(t, ok)
		require.False(t, p.Gone)
		c.DeletePod(t, "shop", "late")
		require.Eventually(t, func() bool { p, ok := s.PodByUID(string(later.UID)); return ok && p.Gone }, settle, tick, "deleted local pod")
		p, _ = s.PodByUID(string(later.UID))
		assert.Equal(t, "late", p.Name, "named still, for its sockets' last events")
		name, ok := s.ContainerName(string(later.UID), "eee555")
		assert.True(t, ok)
		assert.Equal(t, "late", name)
	})

	t.Run("API server outage", func(t *testing.T) {
		c.Stop()
		err := status.next(t, time.Minute)
		require.Error(t, err, "status while the API server is down")
		t.Logf("status while down: %v", err)

		// The cache keeps answering from what it had.
		_, ok := s.PodByUID(string(local.UID))
		assert.True(t, ok, "local pod during the outage")
		_, ok = s.PeerByIP(netip.MustParseAddr("10.96.0.50"))
		assert.True(t, ok, "service during the outage")

		downFor := time.Now()
		c.Restart(t)
		require.NoError(t, status.next(t, time.Minute), "status once the API server is back")
		t.Logf("healthy again %v after the restart began", time.Since(downFor).Round(time.Millisecond))

		// The watches resumed: a change made after the outage arrives.
		back := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "back", Node: "node-a", IPs: []string{"10.244.1.7"}})
		require.Eventually(t, func() bool { _, ok := s.PodByUID(string(back.UID)); return ok }, settle, tick)
		_, ok = s.PodByUID(string(local.UID))
		assert.True(t, ok, "pods from before the outage are still there")
	})
	t.Run("started while the API server is down", func(t *testing.T) {
		c.Stop()
		late, lateStatus, synced := startStore(t, kubeconfig, "node-a", time.Second)
		assert.False(t, synced)
		require.Error(t, lateStatus.next(t, time.Minute))
		_, ok := late.PodByUID(string(local.UID))
		assert.False(t, ok, "nothing listed yet")

		c.Restart(t)
		require.NoError(t, lateStatus.next(t, time.Minute), "status once the API server is up")
		require.Eventually(t, func() bool { _, ok := late.PodByUID(string(local.UID)); return ok }, settle, tick)
	})
}
