package k8smeta

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// With peer_pods endpoints a pod is named from the slices listing it: by any of its addresses,
// the successor winning over a terminating pod that had the same IP, and endpoints that are no
// pod (a Service without selector, written by hand) never named.
func TestEndpointPods(t *testing.T) {
	inf, err := newInformer(nil, &discoveryv1.EndpointSlice{}, transformEndpointSliceWithPods,
		cache.Indexers{serviceIndex: sliceService, ipIndex: endpointAddresses})
	require.NoError(t, err)
	endpoint := func(ip, pod string, terminating bool) discoveryv1.Endpoint {
		ep := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: new(!terminating), Terminating: new(terminating)}}
		if pod != "" {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod, UID: types.UID("uid-" + pod)}
		}
		return ep
	}
	history := newIPHistory()
	h := &handOvers{history: history, inf: inf, holdersOf: sliceHolders, now: func() int64 { return 1 }}
	for name, eps := range map[string][]discoveryv1.Endpoint{
		"old": {endpoint("10.244.2.7", "db-old", true)},
		"new": {endpoint("10.244.2.7", "db-new", false), endpoint("fd00::7", "db-v6", false)},
		"ext": {endpoint("10.244.2.9", "", false)},
	} {
		slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "shop",
			Labels: map[string]string{discoveryv1.LabelServiceName: "db"},
		}, Endpoints: eps}
		obj, err := transformEndpointSliceWithPods(slice)
		require.NoError(t, err)
		require.NoError(t, inf.GetIndexer().Add(obj))
		h.claim(sliceHolders(obj), true) // as the first listing does, in any order
	}
	services, err := newInformer(nil, &corev1.Service{}, transformService, cache.Indexers{ipIndex: addressIndex})
	require.NoError(t, err)
	s := &Store{peerPods: PeerPodsEndpoints, slices: inf, services: services, history: history}
	got, ok := s.PeerByIP(netip.MustParseAddr("10.244.2.7"))
	assert.True(t, ok)
	assert.Equal(t, Peer{Kind: PeerPod, Name: "db-new", Namespace: "shop", UID: "uid-db-new", Workload: "db-new"}, got, "the successor, not the terminating pod")
	got, ok = s.PeerByIP(netip.MustParseAddr("fd00:0::7"))
	assert.True(t, ok)
	assert.Equal(t, "db-v6", got.Name, "by canonical address")
	_, ok = s.PeerByIP(netip.MustParseAddr("10.244.2.9"))
	assert.False(t, ok, "an endpoint that is no pod")
	ready := 0
	for _, obj := range inf.GetIndexer().List() {
		ready += obj.(*serviceSlice).ready
	}
	assert.Equal(t, 3, ready, "ready counts are unchanged by keeping the pods")
}
