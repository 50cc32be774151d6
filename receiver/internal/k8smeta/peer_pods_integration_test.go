package k8smeta

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/kubetest"
)

// TestPeerPods runs one Store per peer_pods mode against the same cluster: what each names,
// and that endpoints and none never list or watch the cluster's pods, only this node's.
func TestPeerPods(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	c.Namespace(t, "shop")
	local := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "web", Node: "node-a", IPs: []string{"10.244.1.5"}})
	db := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "db-0", Node: "node-b", IPs: []string{"10.244.2.7"}})
	job := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "job", Node: "node-b", IPs: []string{"10.244.2.9"}})
	peer := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "peer-0", Node: "node-b", IPs: []string{"10.244.2.10"}})
	svc := c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "db", ClusterIPs: []string{"10.96.0.50"}})
	c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "peers", ClusterIPs: []string{"None"}})
	writeSlice(t, c, "db", false, db)
	writeSlice(t, c, "peers", true, peer)

	named := func(uid string, name string) Peer {
		return Peer{Kind: PeerPod, Name: name, Namespace: "shop", UID: uid, Workload: name}
	}
	service := Peer{Kind: PeerService, Name: "db", Namespace: "shop", UID: string(svc.UID)}
	for _, tc := range []struct {
		mode PeerPods
		want map[string]Peer // by address; absent: not named
	}{
		{PeerPodsAll, map[string]Peer{
			"10.96.0.50": service, "10.244.1.5": named(string(local.UID), "web"),
			"10.244.2.7": named(string(db.UID), "db-0"), "10.244.2.9": named(string(job.UID), "job"), "10.244.2.10": named(string(peer.UID), "peer-0"),
		}},
		// The pod behind a Service and the one behind a headless Service; not the pod behind
		// none, not even this node's own pod as a peer.
		{PeerPodsEndpoints, map[string]Peer{
			"10.96.0.50": service,
			"10.244.2.7": named(string(db.UID), "db-0"), "10.244.2.10": named(string(peer.UID), "peer-0"),
		}},
		{PeerPodsNone, map[string]Peer{"10.96.0.50": service}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			s, traffic := startCountedStore(t, kubeconfig, Options{NodeName: "node-a", PeerPods: tc.mode})
			for _, addr := range []string{"10.96.0.50", "10.244.1.5", "10.244.2.7", "10.244.2.9", "10.244.2.10"} {
				got, ok := s.PeerByIP(netip.MustParseAddr(addr))
				want, named := tc.want[addr]
				assert.Equal(t, named, ok, "%s named", addr)
				assert.Equal(t, want, got, addr)
			}
			p, ok := s.PodByUID(string(local.UID))
			assert.True(t, ok, "this node's pod is named in every mode")
			assert.Equal(t, "web", p.Name)

			var podCalls []string
			for req := range traffic.Requests() {
				if req.Path == "/api/v1/pods" {
					podCalls = append(podCalls, req.Verb+" "+req.FieldSelector)
				}
			}
			if tc.mode == PeerPodsAll {
				assert.ElementsMatch(t, []string{"list spec.nodeName=node-a", "watch spec.nodeName=node-a", "list " + peerPodSelector, "watch " + peerPodSelector}, podCalls)
				return
			}
			assert.ElementsMatch(t, []string{"list spec.nodeName=node-a", "watch spec.nodeName=node-a"}, podCalls, "only this node's pods")
		})
	}

	t.Run("endpoints follows the slices", func(t *testing.T) {
		s, _ := startCountedStore(t, kubeconfig, Options{NodeName: "node-a", PeerPods: PeerPodsEndpoints})
		writeSlice(t, c, "db", false, db, job)
		require.Eventually(t, func() bool { p, ok := s.PeerByIP(netip.MustParseAddr("10.244.2.9")); return ok && p.Name == "job" }, settle, tick, "a pod added to a slice")
		writeSlice(t, c, "db", false, job)
		require.Eventually(t, func() bool { _, ok := s.PeerByIP(netip.MustParseAddr("10.244.2.7")); return !ok }, settle, tick, "a pod removed from its slice")
	})

	// A targetRef need not carry the pod's uid (any writer of slices may leave it out): the pod is
	// named, its UID left empty, which the receiver then omits.
	t.Run("endpoints: a targetRef without uid", func(t *testing.T) {
		s, _ := startCountedStore(t, kubeconfig, Options{NodeName: "node-a", PeerPods: PeerPodsEndpoints})
		noUID := peer.DeepCopy()
		noUID.UID = ""
		writeSlice(t, c, "peers", true, noUID)
		require.Eventually(t, func() bool {
			p, ok := s.PeerByIP(netip.MustParseAddr("10.244.2.10"))
			return ok && p.UID == ""
		}, settle, tick)
		p, _ := s.PeerByIP(netip.MustParseAddr("10.244.2.10"))
		assert.Equal(t, Peer{Kind: PeerPod, Name: "peer-0", Namespace: "shop", Workload: "peer-0"}, p)
	})
}

// writeSlice creates or replaces a Service's EndpointSlice listing pods as the EndpointSlice
// controller does: each endpoint with the pod as targetRef.
func writeSlice(t *testing.T, c *kubetest.Cluster, service string, headless bool, pods ...*corev1.Pod) {
	t.Helper()
	eps := make([]sliceEndpoint, len(pods))
	for i, p := range pods {
		eps[i] = sliceEndpoint{pod: p}
	}
	putSlice(t, c, service, headless, eps...)
}

// sliceEndpoint is a pod in an EndpointSlice, terminating or not.
type sliceEndpoint struct {
	pod         *corev1.Pod
	terminating bool
}

// putSlice is writeSlice with each endpoint's terminating condition.
func putSlice(t *testing.T, c *kubetest.Cluster, service string, headless bool, eps ...sliceEndpoint) {
	t.Helper()
	labels := map[string]string{discoveryv1.LabelServiceName: service}
	if headless {
		labels[corev1.IsHeadlessService] = ""
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: service + "-x", Namespace: "shop", Labels: labels},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, e := range eps {
		p := e.pod
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{p.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: new(!e.terminating), Terminating: new(e.terminating)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		})
	}
	api, ctx := c.Admin.DiscoveryV1().EndpointSlices("shop"), context.Background()
	old, err := api.Get(ctx, slice.Name, metav1.GetOptions{})
	if err == nil {
		slice.ResourceVersion = old.ResourceVersion
		_, err = api.Update(ctx, slice, metav1.UpdateOptions{})
	} else {
		_, err = api.Create(ctx, slice, metav1.CreateOptions{})
	}
	require.NoError(t, err)
}
