package k8smeta

import (
	"context"
	"mime"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/podnet/podnet/internal/kubetest"
)

// startCountedStore runs a Store as the podnet account, counting what the API server sends it.
func startCountedStore(t *testing.T, kubeconfig string, opts Options) (*Store, *kubetest.Traffic) {
	t.Helper()
	cfg, err := APIConfig{AuthType: AuthTypeKubeConfig, KubeConfig: kubeconfig}.RESTConfig()
	require.NoError(t, err)
	cfg, traffic := kubetest.Count(cfg)
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = 30 * time.Second
	}
	s, err := NewStore(cfg, opts)
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	require.True(t, s.Start(), "synced")
	return s, traffic
}

// TestWatchesSendOnlyWhatIsKept: the API server speaks protobuf to the Store and leaves out, by
// field selector, the pods and Services that could never be named, so no node pays for them.
func TestWatchesSendOnlyWhatIsKept(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	c.Namespace(t, "shop")
	ctx := context.Background()
	c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "web", Node: "node-b", IPs: []string{"10.244.2.5"}})
	c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "agent", Node: "node-b", IPs: []string{"192.0.2.20"}, HostNetwork: true})
	done := c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "job", Node: "node-b", IPs: []string{"10.244.2.6"}})
	done.Status.Phase = corev1.PodSucceeded
	_, err := c.Admin.CoreV1().Pods("shop").UpdateStatus(ctx, done, metav1.UpdateOptions{})
	require.NoError(t, err)
	pending, err := c.Admin.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: "shop"},
		Spec:       corev1.PodSpec{NodeName: "node-b", Containers: []corev1.Container{{Name: "main", Image: "registry.invalid/main"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "db"})
	c.CreateService(t, kubetest.Service{Namespace: "shop", Name: "peers", ClusterIPs: []string{"None"}})
	_, err = c.Admin.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "external", Namespace: "shop"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.invalid"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	s, traffic := startCountedStore(t, kubeconfig, Options{NodeName: "node-a"})
	assert.ElementsMatch(t, []string{"shop/web", "shop/agent"}, s.peers.GetStore().ListKeys(),
		"only running pods with an IP are sent: hostNetwork ones too, for their node's address")
	assert.True(t, s.NodeAddress(netip.MustParseAddr("192.0.2.20")), "a node's address, from its hostNetwork pod")
	assert.False(t, s.NodeAddress(netip.MustParseAddr("10.244.2.5")), "a pod's address")
	_, named := s.PeerByIP(netip.MustParseAddr("192.0.2.20"))
	assert.False(t, named, "a hostNetwork pod is not named by its node's address")
	services := s.services.GetStore().ListKeys()
	assert.Contains(t, services, "shop/db")
	assert.NotContains(t, services, "shop/peers", "headless")
	assert.NotContains(t, services, "shop/external", "ExternalName")

	// A pending pod arrives once it has an IP; a pod that finishes leaves.
	pending.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.2.7", PodIPs: []corev1.PodIP{{IP: "10.244.2.7"}}}
	_, err = c.Admin.CoreV1().Pods("shop").UpdateStatus(ctx, pending, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return slices.Contains(s.peers.GetStore().ListKeys(), "shop/pending") }, settle, tick)
	web, err := c.Admin.CoreV1().Pods("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	web.Status.Phase = corev1.PodFailed
	_, err = c.Admin.CoreV1().Pods("shop").UpdateStatus(ctx, web, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !slices.Contains(s.peers.GetStore().ListKeys(), "shop/web") }, settle, tick, "failed pod removed")

	types := traffic.ContentTypes()
	require.NotEmpty(t, types)
	for req, got := range types {
		for _, typ := range got {
			media, _, err := mime.ParseMediaType(typ) // a watch adds ";stream=watch"
			require.NoError(t, err)
			assert.Equal(t, runtime.ContentTypeProtobuf, media, "%v", req)
		}
	}
}
