package k8smeta

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/kubetest"
)

// TestRelistAfterWatchExpiry cuts the Store off, changes pods, Services and EndpointSlices
// behind its back, and restarts the API server so that its watch cache no longer reaches back
// to the Store's resource version. When the Store reconnects, each informer's watch is answered "410
// Expired" and client-go must relist: the Store must end up with the current state and
// report healthy.
func TestRelistAfterWatchExpiry(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	c.Namespace(t, "shop")
	stays := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "stays", Node: "node-a", IPs: []string{"10.244.1.10"}})
	goes := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "goes", Node: "node-a", IPs: []string{"10.244.1.11"}})
	c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "peer-goes", Node: "node-b", IPs: []string{"10.244.2.11"}})
	c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "svc-goes", ClusterIPs: []string{"10.96.0.61"}})

	g := newGate(t, c)
	cfg, err := APIConfig{AuthType: AuthTypeKubeConfig, KubeConfig: kubeconfig}.RESTConfig()
	require.NoError(t, err)
	status := make(statusLog, 64)
	s, err := NewStore(g.config(cfg), Options{NodeName: "node-a", SyncTimeout: 30 * time.Second, OnStatus: status.report})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	require.True(t, s.Start(), "initial sync through the gate")
	_, ok := s.PodByUID(string(goes.UID))
	require.True(t, ok)
	// An event on every watch first: client-go relists anyway after a watch that ended
	// within a second with no events, which would make the test pass without a 410.
	live := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "live", Node: "node-a", IPs: []string{"10.244.1.13"}})
	c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "svc-live", ClusterIPs: []string{"10.96.0.63"}})
	liveSlice := createSlice(t, c, "shop", "svc-live", "svc-live-v4", discoveryv1.AddressTypeIPv4, new(true))
	require.Eventually(t, func() bool {
		_, local := s.PodByUID(string(live.UID))
		_, peer := s.PeerByIP(netip.MustParseAddr("10.244.1.13"))
		_, svc := s.PeerByIP(netip.MustParseAddr("10.96.0.63"))
		ready, _ := s.ServiceReadyEndpoints("shop", "svc-live", netip.MustParseAddrPort("10.96.0.63:80"))
		return local && peer && svc && ready == 1
	}, settle, tick, "watches live before the cut")

	// Cut off: the watches end, their retries are refused.
	g.cut()
	require.Error(t, status.next(t, 30*time.Second), "status while cut off")
	// Later retries wait at the gate: retried every few seconds (outageRetry), they would
	// otherwise reach the API server before its restart and see the changes as watch events.
	g.hold(t)

	start := time.Now()
	arrives := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "arrives", Node: "node-a", IPs: []string{"10.244.1.12"}})
	c.DeletePod(t, "shop", "goes")
	c.DeletePod(t, "shop", "peer-goes")
	c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "peer-arrives", Node: "node-b", IPs: []string{"10.244.2.12"}})
	require.NoError(t, c.Admin.CoreV1().Services("shop").Delete(context.Background(), "svc-goes", metav1.DeleteOptions{}))
	c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "svc-arrives", ClusterIPs: []string{"10.96.0.62"}})
	liveSlice.Endpoints[0].Conditions.Ready = new(false)
	_, err = c.Admin.DiscoveryV1().EndpointSlices("shop").Update(context.Background(), liveSlice, metav1.UpdateOptions{})
	require.NoError(t, err)
	// A restarted API server's watch cache starts at the current revision: a watch from the
	// Store's older resource version can no longer be served.
	c.Stop()
	c.Restart(t)

	mark := g.count()
	g.open()
	require.NoError(t, status.next(t, 30*time.Second), "status once the gate is open")

	require.Eventually(t, func() bool {
		_, arrived := s.PodByUID(string(arrives.UID))
		p, ok := s.PodByUID(string(goes.UID))
		left := ok && p.Gone && p.Name == "goes" // still named for its sockets' last events
		return arrived && left
	}, settle, tick, "local pods: created and deleted during the gap")
	require.Eventually(t, func() bool {
		_, left := s.PeerByIP(netip.MustParseAddr("10.244.2.11"))
		p, arrived := s.PeerByIP(netip.MustParseAddr("10.244.2.12"))
		return !left && arrived && p.Name == "peer-arrives"
	}, settle, tick, "peer pods")
	require.Eventually(t, func() bool {
		_, left := s.PeerByIP(netip.MustParseAddr("10.96.0.61"))
		svc, arrived := s.PeerByIP(netip.MustParseAddr("10.96.0.62"))
		return !left && arrived && svc.Name == "svc-arrives"
	}, settle, tick, "services")
	eventuallyReady(t, s, "shop", "svc-live", netip.MustParseAddrPort("10.96.0.63:80"), 0)
	_, ok = s.PodByUID(string(stays.UID))
	assert.True(t, ok, "an untouched pod survives the relist")
	t.Logf("current again %v after the gap began", time.Since(start).Round(time.Millisecond))
	t.Logf("requests after reopening: %v", g.since(mark))

	// Each informer was told its resource version expired and then listed afresh.
	notes := g.since(mark)
	for _, informer := range []string{"/api/v1/pods?spec.nodeName=node-a", "/api/v1/pods?" + peerPodSelector, "/api/v1/services?" + serviceSelector, "/apis/discovery.k8s.io/v1/endpointslices"} {
		expired := slices.Index(notes, "expired "+informer)
		require.GreaterOrEqual(t, expired, 0, "%s: no 410 Expired after reconnecting; requests: %v", informer, notes)
		assert.Contains(t, notes[expired:], "list "+informer, "%s: relist after the 410; requests: %v", informer, notes)
	}
	select {
	case err := <-status:
		t.Errorf("status changed again after recovery: %v", err)
	default:
	}
}
