package k8smeta

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podnet/podnet/internal/kubetest"
)

// TestServiceReadyEndpoints runs the Store as the examples/rbac.yaml account: ready endpoints
// summed over a Service's slices, per address family and per Service port (matched to slice
// ports by name, as kube-proxy does), changes by watch, and a Service without slices. No
// controller-manager runs here: the test writes the slices, as the EndpointSlice controller
// would. An independent check found the count summed over both families and every port: a
// dual-stack Service with no IPv6 endpoint, or a port no slice lists, was not said to have none.
func TestServiceReadyEndpoints(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	c.Namespace(t, "shop")
	api := c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "api"})
	idle := c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "idle"})
	multi := createMultiPortService(t, c, "shop", "multi")
	v4 := createSlice(t, c, "shop", "api", "api-v4", discoveryv1.AddressTypeIPv4, new(true), nil, new(false))
	createNamedPortSlice(t, c, "shop", "multi", "multi-v4", "http")

	s, status, synced := startStore(t, kubeconfig, "node-a", 30*time.Second)
	require.True(t, synced)
	apiV4 := dialled(api, 80)
	apiV6 := netip.AddrPortFrom(netip.MustParseAddr("fd00:96::a"), 80) // its family is what counts

	t.Run("2 ready, 1 not", func(t *testing.T) {
		ready, known := s.ServiceReadyEndpoints("shop", "api", apiV4)
		assert.True(t, known)
		assert.Equal(t, 2, ready, "ready true and ready unset count, ready false does not")
	})
	t.Run("per family", func(t *testing.T) {
		ready, known := s.ServiceReadyEndpoints("shop", "api", apiV6)
		assert.True(t, known)
		assert.Zero(t, ready, "no IPv6 slice: kube-proxy rejects IPv6 connects")
		createSlice(t, c, "shop", "api", "api-v6", discoveryv1.AddressTypeIPv6, new(true))
		eventuallyReady(t, s, "shop", "api", apiV6, 1)
		ready, _ = s.ServiceReadyEndpoints("shop", "api", apiV4)
		assert.Equal(t, 2, ready, "IPv4 unchanged")
	})
	t.Run("per port", func(t *testing.T) {
		ready, known := s.ServiceReadyEndpoints("shop", "multi", dialled(multi, 80))
		assert.True(t, known)
		assert.Equal(t, 1, ready, "http: its slice port")
		ready, known = s.ServiceReadyEndpoints("shop", "multi", dialled(multi, 9090))
		assert.True(t, known)
		assert.Zero(t, ready, "metrics: no slice lists the port")
		_, known = s.ServiceReadyEndpoints("shop", "multi", dialled(multi, 81))
		assert.False(t, known, "not a port of the Service: rejected for another reason")
	})
	t.Run("none ready", func(t *testing.T) {
		for i := range v4.Endpoints {
			v4.Endpoints[i].Conditions.Ready = new(false)
		}
		_, err := c.Admin.DiscoveryV1().EndpointSlices("shop").Update(context.Background(), v4, metav1.UpdateOptions{})
		require.NoError(t, err)
		eventuallyReady(t, s, "shop", "api", apiV4, 0)
	})
	t.Run("no slices", func(t *testing.T) {
		ready, known := s.ServiceReadyEndpoints("shop", "idle", dialled(idle, 80))
		assert.True(t, known, "synced: no slice means none")
		assert.Equal(t, 0, ready)
	})
	select {
	case err := <-status:
		t.Errorf("status report while healthy: %v", err)
	default:
	}
}

// dialled is a Service's first ClusterIP at port.
func dialled(svc *corev1.Service, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(svc.Spec.ClusterIPs[0]), port)
}

// createMultiPortService creates a Service with two named TCP ports, http (80) and metrics (9090).
func createMultiPortService(t *testing.T, c *kubetest.Cluster, namespace, name string) *corev1.Service {
	t.Helper()
	svc, err := c.Admin.CoreV1().Services(namespace).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
			{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9090)},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return svc
}

// createNamedPortSlice writes an IPv4 EndpointSlice of service with one ready endpoint and
// one port, named port.
func createNamedPortSlice(t *testing.T, c *kubetest.Cluster, namespace, service, name, port string) {
	t.Helper()
	_, err := c.Admin.DiscoveryV1().EndpointSlices(namespace).Create(context.Background(), &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &port, Port: new(int32(8080))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.4.1"}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// TestStoreWithoutEndpointSliceAccess runs the Store as accounts that may not read
// EndpointSlices (examples/rbac.yaml without its endpointslices rule; with list but not watch):
// Start syncs without waiting out its timeout, pods and Services are named, readiness is
// unknown, the reason is told once, the Store's status stays healthy, and the denied request
// is not retried.
func TestStoreWithoutEndpointSliceAccess(t *testing.T) {
	c := kubetest.Start(t)
	c.Namespace(t, "shop")
	pod := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "web", Node: "node-a", IPs: []string{"10.244.1.5"}})
	svc := c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "api", ClusterIPs: []string{"10.96.0.50"}})
	createSlice(t, c, "shop", "api", "api-v4", discoveryv1.AddressTypeIPv4, new(true))

	for _, tc := range []struct {
		name  string
		rbac  kubetest.RBAC
		verb  string // the call denied
		calls int    // to the EndpointSlice API, all told
	}{
		{"no endpointslices rule", sliceRBAC(t, "podnet"), "list", 1},
		{"list but not watch", sliceRBAC(t, "podnet-list-only", "list"), "watch", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := APIConfig{AuthType: AuthTypeKubeConfig, KubeConfig: tc.rbac.Apply(t, c)}.RESTConfig()
			require.NoError(t, err)
			calls := &listCalls{at: map[string][]time.Time{}}
			cfg.WrapTransport = calls.wrap
			status := make(statusLog, 64)
			denied := make(statusLog, 64)
			s, err := NewStore(cfg, Options{NodeName: "node-a", SyncTimeout: 30 * time.Second, OnStatus: status.report, OnOptionalDenied: denied.report})
			require.NoError(t, err)
			t.Cleanup(s.Stop)

			start := time.Now()
			require.True(t, s.Start(), "pods and Services sync without EndpointSlices")
			assert.Less(t, time.Since(start), 5*time.Second, "Start does not wait for EndpointSlices it may not read")
			err = denied.next(t, 10*time.Second)
			t.Logf("denied: %v", err)
			assert.ErrorContains(t, err, tc.verb+" endpointslices")
			assert.ErrorContains(t, err, "forbidden")
			assert.ErrorContains(t, err, "examples/rbac.yaml")

			_, known := s.ServiceReadyEndpoints("shop", "api", netip.MustParseAddrPort("10.96.0.50:80"))
			assert.False(t, known)
			_, ok := s.PodByUID(string(pod.UID))
			assert.True(t, ok, "local pod")
			p, ok := s.PeerByIP(netip.MustParseAddr("10.244.1.5"))
			assert.True(t, ok)
			assert.Equal(t, Peer{Kind: PeerPod, Name: "web", Namespace: "shop", UID: string(pod.UID), Workload: "web"}, p)
			p, ok = s.PeerByIP(netip.MustParseAddr("10.96.0.50"))
			assert.True(t, ok)
			assert.Equal(t, Peer{Kind: PeerService, Name: "api", Namespace: "shop", UID: string(svc.UID)}, p)

			// Several of client-go's retry periods (0.8 s, doubling): nothing more is asked or told.
			time.Sleep(4 * time.Second)
			calls.mu.Lock()
			assert.Len(t, calls.at["/apis/discovery.k8s.io/v1/endpointslices?"], tc.calls, "requests for EndpointSlices")
			calls.mu.Unlock()
			select {
			case err := <-denied:
				t.Errorf("told twice: %v", err)
			case err := <-status:
				t.Errorf("status report for an optional resource: %v", err)
			default:
			}
		})
	}
}

// sliceRBAC is examples/rbac.yaml for an account called name, its endpointslices rule
// granting verbs; none drops the rule.
func sliceRBAC(t *testing.T, name string, verbs ...string) kubetest.RBAC {
	t.Helper()
	r := loadRBAC(t)
	i := slices.IndexFunc(r.Role.Rules, func(rule rbacv1.PolicyRule) bool { return slices.Contains(rule.Resources, "endpointslices") })
	require.GreaterOrEqual(t, i, 0, "examples/rbac.yaml has an endpointslices rule")
	if len(verbs) == 0 {
		r.Role.Rules = slices.Delete(r.Role.Rules, i, i+1)
	} else {
		r.Role.Rules[i].Verbs = verbs
	}
	r.Account.Name, r.Role.Name, r.Binding.Name, r.Binding.RoleRef.Name = name, name, name, name
	r.Binding.Subjects[0].Name = name
	return r
}

// createSlice writes an EndpointSlice of service with one endpoint per ready condition.
func createSlice(t *testing.T, c *kubetest.Cluster, namespace, service, name string, family discoveryv1.AddressType, ready ...*bool) *discoveryv1.EndpointSlice {
	t.Helper()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: family,
		Ports:       []discoveryv1.EndpointPort{{Port: new(int32(8080))}},
	}
	for i, r := range ready {
		addr := fmt.Sprintf("10.244.3.%d", i+1)
		if family == discoveryv1.AddressTypeIPv6 {
			addr = fmt.Sprintf("fd00:244::3:%d", i+1)
		}
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: r}})
	}
	created, err := c.Admin.DiscoveryV1().EndpointSlices(namespace).Create(context.Background(), slice, metav1.CreateOptions{})
	require.NoError(t, err)
	return created
}

// eventuallyReady waits until the Store knows that service has want ready endpoints at dialled.
func eventuallyReady(t *testing.T, s *Store, namespace, service string, at netip.AddrPort, want int) {
	t.Helper()
	require.Eventually(t, func() bool {
		ready, known := s.ServiceReadyEndpoints(namespace, service, at)
		return known && ready == want
	}, settle, tick, "%s/%s at %v: want %d ready endpoints", namespace, service, at, want)
}

// peer_pods endpoints with an account that may list EndpointSlices but not watch them: the
// listing's pods are no longer followed once the watch is refused, so they are named no more.
// Their holdings stayed open: a pod deleted since was named at its address for good, over the
// pod given that address after it (found by an independent check).
func TestSlicesDeniedAfterTheirListingNameNoPodForGood(t *testing.T) {
	c := kubetest.Start(t)
	c.Namespace(t, "shop")
	addr := netip.MustParseAddr("10.244.5.8")
	a := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "api-1", Node: "node-b", IPs: []string{addr.String()}})
	putSlice(t, c, "api", false, sliceEndpoint{pod: a})
	cfg, err := APIConfig{AuthType: AuthTypeKubeConfig, KubeConfig: sliceRBAC(t, "podnet-list-only", "list").Apply(t, c)}.RESTConfig()
	require.NoError(t, err)
	s, err := NewStore(cfg, Options{NodeName: "node-a", PeerPods: PeerPodsEndpoints, SyncTimeout: 30 * time.Second})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	require.True(t, s.Start())
	require.Eventually(t, func() bool { return s.slicesDenied.Load() }, 30*time.Second, 100*time.Millisecond, "the watch refused")

	c.DeletePod(t, "shop", "api-1")
	putSlice(t, c, "api", false)
	b := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "web-1", Node: "node-b", IPs: []string{addr.String()}})
	putSlice(t, c, "web", false, sliceEndpoint{pod: b})
	time.Sleep(time.Second) // what a watch would have delivered meanwhile (none is open)
	p, _, ok := s.PeerAt(addr, time.Now().Add(time.Hour).UnixNano())
	assert.False(t, ok, "an hour from now, the deleted pod %q is named at an address web-1 has", p.Name)
}
