package k8smeta

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/podnet/podnet/internal/kubetest"
)

const (
	// hardOutage is long enough for client-go's own retry backoff (x2 from 0.8 s, jittered
	// up to twice, capped at 30 s) to have grown past recoveryBound.
	hardOutage = 20 * time.Second
	// recoveryBound is how soon after the API server is ready again a pod created then must
	// be named: the Store's retry cap, a relist and the watch event, with room for a busy
	// machine.
	recoveryBound = 10 * time.Second
)

// TestNamesPodsSoonAfterHardRestart kills the API server (SIGKILL, as a crash or an OOM
// kill would), keeps it down for a while and starts it again on the same address and etcd.
// A pod created once it is ready must be named within recoveryBound, and the Store must
// report healthy again by then: no client-go backoff grown during the outage (up to a minute)
// may keep the names away once the API server is back.
func TestNamesPodsSoonAfterHardRestart(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	c.Namespace(t, "shop")
	c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "before", Node: "node-a", IPs: []string{"10.244.1.10"}})
	s, status, synced := startStore(t, kubeconfig, "node-a", 30*time.Second)
	require.True(t, synced)

	c.Stop()
	require.Error(t, status.next(t, 10*time.Second), "status once the API server is gone")
	time.Sleep(hardOutage)
	c.Restart(t)
	ready := time.Now()

	late := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "late", Node: "node-a", IPs: []string{"10.244.1.11"}})
	c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "svc-late", ClusterIPs: []string{"10.96.0.71"}})
	createSlice(t, c, "shop", "svc-late", "svc-late-v4", discoveryv1.AddressTypeIPv4, new(true))
	require.Eventually(t, func() bool {
		p, local := s.PodByUID(string(late.UID))
		peer, remote := s.PeerByIP(netip.MustParseAddr("10.244.1.11"))
		svc, named := s.PeerByIP(netip.MustParseAddr("10.96.0.71"))
		// The API server answers 403 until its authorizer has the RBAC objects: taken as
		// final, the EndpointSlices would be given up for good.
		endpoints, known := s.ServiceReadyEndpoints("shop", "svc-late", netip.MustParseAddrPort("10.96.0.71:80"))
		return local && p.Name == "late" && remote && peer.Name == "late" && named && svc.Name == "svc-late" && known && endpoints == 1
	}, recoveryBound, tick, "a pod, a Service and its EndpointSlice created after the restart are known")
	t.Logf("named %v after the API server was ready", time.Since(ready).Round(time.Millisecond))
	require.NoError(t, status.next(t, recoveryBound-time.Since(ready)), "status healthy again")
	t.Logf("healthy again %v after the API server was ready", time.Since(ready).Round(time.Millisecond))
}
