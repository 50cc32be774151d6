package k8smeta

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/kubetest"
)

// An address reused by a new pod, against a real API server, in both modes that name remote
// pods: after a deletion, and while its owner is still terminating (its successor already has
// the IP, as happens when the CNI hands it on before the kubelet confirms the deletion). Each
// time is named by who held the address then; a Service's ClusterIP likewise.
func TestPeerAtFollowsAddressHandOvers(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	c.Namespace(t, "shop")
	const ip = "10.244.3.7"
	addr := netip.MustParseAddr(ip)
	owner := func(s *Store) string {
		p, _ := s.PeerByIP(addr)
		return p.Name
	}
	nameAt := func(s *Store, at time.Time) string {
		p, span, _ := s.PeerAt(addr, at.UnixNano())
		assert.True(t, span.Holds(at.UnixNano()), "the span holds the time asked")
		return p.Name
	}
	newPod := func(name string) *corev1.Pod {
		return c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: name, Node: "node-b", IPs: []string{ip}})
	}

	t.Run("all", func(t *testing.T) {
		newPod("db-1")
		s, _ := startCountedStore(t, kubeconfig, Options{NodeName: "node-a", PeerPods: PeerPodsAll})
		require.Equal(t, "db-1", owner(s))
		held1 := time.Now()

		c.DeletePod(t, "shop", "db-1")
		require.Eventually(t, func() bool { return owner(s) == "" }, settle, tick, "the deletion arrives")
		assert.Equal(t, "db-1", nameAt(s, held1), "a connection made before the deletion, read after it")
		gap := time.Now()
		time.Sleep(10 * time.Millisecond) // the successor comes after the connection to nobody
		newPod("db-2")
		require.Eventually(t, func() bool { return owner(s) == "db-2" }, settle, tick, "the successor arrives")
		held2 := time.Now()
		assert.Equal(t, "db-1", nameAt(s, held1), "still the first pod, now that the address is another's")
		assert.Empty(t, nameAt(s, gap), "a connection made while nobody held the address stays nobody's")
		assert.Equal(t, "db-2", nameAt(s, held2))

		// Terminating, and its successor already has the address.
		c.TerminatePod(t, "shop", "db-2")
		time.Sleep(10 * time.Millisecond) // the hand-over is after this, at the successor's arrival
		newPod("db-3")
		require.Eventually(t, func() bool { return owner(s) == "db-3" }, settle, tick, "the successor wins over the terminating pod")
		held3 := time.Now()
		assert.Equal(t, "db-2", nameAt(s, held2), "the terminating pod held it until its successor came")
		c.DeletePod(t, "shop", "db-2")
		require.Eventually(t, func() bool {
			objs, _ := s.peers.GetIndexer().ByIndex(ipIndex, ip)
			return len(objs) == 1
		}, settle, tick, "the terminating pod's deletion arrives")
		assert.Equal(t, "db-1", nameAt(s, held1))
		assert.Equal(t, "db-2", nameAt(s, held2), "its deletion does not move the hand-over")
		assert.Equal(t, "db-3", nameAt(s, held3))
		assert.Equal(t, "db-3", owner(s))

		// A terminating pod's successor goes first: the address is nobody's, not the terminating
		// pod's again (it gave it away).
		c.TerminatePod(t, "shop", "db-3")
		time.Sleep(10 * time.Millisecond)
		newPod("db-4")
		require.Eventually(t, func() bool { return owner(s) == "db-4" }, settle, tick)
		c.DeletePod(t, "shop", "db-4")
		require.Eventually(t, func() bool { return owner(s) == "" }, settle, tick, "nobody's once the successor is gone")
		assert.Equal(t, "db-3", nameAt(s, held3))
		c.DeletePod(t, "shop", "db-3")
	})

	t.Run("endpoints", func(t *testing.T) {
		s, _ := startCountedStore(t, kubeconfig, Options{NodeName: "node-a", PeerPods: PeerPodsEndpoints})
		a := newPod("api-1")
		putSlice(t, c, "api", false, sliceEndpoint{pod: a})
		require.Eventually(t, func() bool { return owner(s) == "api-1" }, settle, tick)
		held1 := time.Now()
		b := newPod("api-2")
		// The EndpointSlice controller lists the terminating pod beside its successor.
		putSlice(t, c, "api", false, sliceEndpoint{pod: a, terminating: true}, sliceEndpoint{pod: b})
		require.Eventually(t, func() bool { return owner(s) == "api-2" }, settle, tick)
		held2 := time.Now()
		putSlice(t, c, "api", false, sliceEndpoint{pod: b})
		// Listed by another Service's slice too, then left by the first: still the pod's.
		putSlice(t, c, "api-canary", false, sliceEndpoint{pod: b})
		putSlice(t, c, "api", false)
		require.Eventually(t, func() bool {
			objs, _ := s.slices.GetIndexer().ByIndex(ipIndex, ip)
			return len(objs) == 1 && objs[0].(*serviceSlice).service == "api-canary"
		}, settle, tick)
		assert.Equal(t, "api-1", nameAt(s, held1))
		assert.Equal(t, "api-2", nameAt(s, held2))
		assert.Equal(t, "api-2", owner(s))
		s.history.mu.RLock()
		held := s.history.byKey[ip]
		s.history.mu.RUnlock()
		require.Len(t, held, 2, "api-2 never let the address go")
		assert.Equal(t, int64(open), held[1].until)

		// The pod leaves every slice and comes back (its Service re-created): it holds the address
		// again, and its deletion ends that holding, not the first.
		putSlice(t, c, "api-canary", false)
		require.Eventually(t, func() bool { return owner(s) == "" }, settle, tick)
		putSlice(t, c, "api-canary", false, sliceEndpoint{pod: b})
		require.Eventually(t, func() bool { return owner(s) == "api-2" }, settle, tick)
		held3 := time.Now()
		c3 := newPod("api-3")
		putSlice(t, c, "api-canary", false, sliceEndpoint{pod: c3})
		require.Eventually(t, func() bool { return owner(s) == "api-3" }, settle, tick)
		assert.Equal(t, "api-2", nameAt(s, held3), "the second holding, ended by its successor")
		assert.Equal(t, "api-1", nameAt(s, held1))
	})

	t.Run("service", func(t *testing.T) {
		s, _ := startCountedStore(t, kubeconfig, Options{NodeName: "node-a", PeerPods: PeerPodsNone})
		vip := netip.MustParseAddr("10.96.0.77")
		c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "old", ClusterIPs: []string{vip.String()}})
		require.Eventually(t, func() bool { p, _ := s.PeerByIP(vip); return p.Name == "old" }, settle, tick)
		held := time.Now()
		c.DeleteService(t, "shop", "old")
		require.Eventually(t, func() bool { _, ok := s.PeerByIP(vip); return !ok }, settle, tick)
		c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "new", ClusterIPs: []string{vip.String()}})
		require.Eventually(t, func() bool { p, _ := s.PeerByIP(vip); return p.Name == "new" }, settle, tick)
		p, _, _ := s.PeerAt(vip, held.UnixNano())
		assert.Equal(t, Peer{Kind: PeerService, Name: "old", Namespace: "shop", UID: p.UID}, p)
	})
}

// A terminating pod whose address its successor took over is updated after (the kubelet writes
// its containers' terminated states; its status keeps its IPs): a connection made to the
// successor, looked up once the successor terminates in turn (its close, read as it shuts
// down), names the successor (found by an independent review: the earlier pod).
func TestAHandedOverAddressIsNotTakenBackByAnUpdate(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	c.Namespace(t, "shop")
	const ip = "10.244.3.9"
	addr := netip.MustParseAddr(ip)
	s, _ := startCountedStore(t, kubeconfig, Options{NodeName: "node-a", PeerPods: PeerPodsAll})
	owner := func() string { p, _ := s.PeerByIP(addr); return p.Name }
	holders := func(terminating bool) bool {
		objs, _ := s.peers.GetIndexer().ByIndex(ipIndex, ip)
		return len(objs) == 1 && (objs[0].(*addressOwner).DeletionTimestamp != nil) == terminating
	}

	c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "db-2", Node: "node-b", IPs: []string{ip}})
	require.Eventually(t, func() bool { return owner() == "db-2" }, settle, tick)
	c.TerminatePod(t, "shop", "db-2")
	c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "db-3", Node: "node-b", IPs: []string{ip}})
	require.Eventually(t, func() bool { return owner() == "db-3" }, settle, tick, "the successor takes over")

	p, err := c.Admin.CoreV1().Pods("shop").Get(context.Background(), "db-2", metav1.GetOptions{})
	require.NoError(t, err)
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.Now()}}
	p.Status.ContainerStatuses[0].Ready = false
	updated, err := c.Admin.CoreV1().Pods("shop").UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		obj, ok, _ := s.peers.GetIndexer().GetByKey("shop/db-2")
		return ok && obj.(*addressOwner).ResourceVersion == updated.ResourceVersion
	}, settle, tick, "the update seen")

	connected := time.Now() // a connection to db-3
	time.Sleep(20 * time.Millisecond)
	c.DeletePod(t, "shop", "db-2")
	require.Eventually(t, func() bool { return holders(false) }, settle, tick)
	c.TerminatePod(t, "shop", "db-3")
	require.Eventually(t, func() bool { return holders(true) }, settle, tick)
	got, _, _ := s.PeerAt(addr, connected.UnixNano())
	assert.Equal(t, "db-3", got.Name)
	c.DeletePod(t, "shop", "db-3")
}
