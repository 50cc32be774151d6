package podnetreceiver

import (
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// dialFrom connects from pod to addr and closes; the error, if the connect failed.
func dialFrom(t *testing.T, pod *netnstest.Pod, addr netip.AddrPort) error {
	t.Helper()
	var dialErr error
	require.NoError(t, pod.Do(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			dialErr = err
			return nil
		}
		return c.Close()
	}))
	return dialErr
}

// A pod's connections through a node running kube-proxy's nftables rules, named from a real
// API server: each record to the Service names the Service and the backend pod whose accept
// proves it served it; a connection to a pod IP names no backend; a Service without ready
// endpoints (kube-proxy rejects) — from the start, or scaled to zero — says so on the failed
// connect. A backend pod in another namespace than its Service's is named by its uid alone.
func TestServiceRecordsNameTheBackendPod(t *testing.T) {
	netnstest.RequireRoot(t)
	cluster, kubeconfig := startShopCluster(t)

	node := netnstest.NewNode(t, 127)
	client, web0, web1 := node.AddPod(), node.AddPod(), node.AddPod()
	cg := netnstest.NewKubeletCgroups(t)
	kubePod(t, cluster, cg, client, "client", "curl", node.Name)
	kubePod(t, cluster, cg, web0, "web-0", "nginx", node.Name)
	kubePod(t, cluster, cg, web1, "web-1", "nginx", node.Name)
	web := kubetest.ClusterIPs(cluster.CreateService(t, kubetest.Service{Namespace: "shop", Name: "web"}))[0]
	empty := kubetest.ClusterIPs(cluster.CreateService(t, kubetest.Service{Namespace: "shop", Name: "empty"}))[0]
	cluster.SetEndpoints(t, "shop", "web", kubetest.Endpoint{Addr: web0.IPv4, Ready: true}, kubetest.Endpoint{Addr: web1.IPv4, Ready: true})
	cluster.SetEndpoints(t, "shop", "empty")
	// A selectorless Service of another namespace whose slice lists a pod of "shop" (found by
	// an independent check: the pod was named as if in the Service's namespace).
	cluster.Namespace(t, "edge")
	proxy := kubetest.ClusterIPs(cluster.CreateService(t, kubetest.Service{Namespace: "edge", Name: "proxy"}))[0]
	cluster.SetEndpoints(t, "edge", "proxy", kubetest.Endpoint{Addr: web1.IPv4, Ready: true})
	webVIP, emptyVIP, proxyVIP := netip.AddrPortFrom(web, 80), netip.AddrPortFrom(empty, 80), netip.AddrPortFrom(proxy, 80)
	backends := []netip.AddrPort{netip.AddrPortFrom(web0.IPv4, 8080), netip.AddrPortFrom(web1.IPv4, 8080)}
	proxied := netnstest.Service{Name: "proxy", VIP: proxyVIP, Backends: backends[1:]}
	node.Nft(netnstest.KubeProxyRules(
		netnstest.Service{Name: "web", VIP: webVIP, Backends: backends},
		netnstest.Service{Name: "empty", VIP: emptyVIP}, proxied))
	var stopServers []func()
	for i, b := range []*netnstest.Pod{web0, web1} {
		stopServers = append(stopServers, b.AcceptAll(t, backends[i], nil))
	}

	var names attribution.Attributor
	logs, _, stop := startReceiverOpts(t, &statusHost{}, func(cfg *Config) {
		cfg.NodeName = node.Name
		cfg.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeKubeConfig, KubeConfig: kubeconfig}
		cfg.ServiceBackends = ServiceBackendsConfig{Mode: backendsOn, NodeNetns: node.NetnsPath()}
	}, keepNames(&names))
	unready := func(vip netip.AddrPort) bool { return names.NoReadyEndpoints(peerNow(names, vip.Addr()), vip) }
	require.Eventually(t, func() bool {
		return peerNow(names, web).ServiceName == "web" && unready(emptyVIP) && !unready(webVIP) && !unready(proxyVIP)
	}, 30*time.Second, 20*time.Millisecond, "the informers know the Services and their endpoints: %+v %+v", peerNow(names, web), peerNow(names, empty))

	const n = 12
	for range n {
		require.NoError(t, dialFrom(t, client, webVIP))
	}
	const m = 3
	for range m {
		require.NoError(t, dialFrom(t, client, proxyVIP))
	}
	require.NoError(t, dialFrom(t, client, backends[0]), "a plain pod IP")
	require.ErrorIs(t, dialFrom(t, client, emptyVIP), syscall.ECONNREFUSED, "kube-proxy rejects a Service without endpoints")

	// Scaled to zero: the slice lists no ready endpoint, kube-proxy's rules reject.
	cluster.SetEndpoints(t, "shop", "web", kubetest.Endpoint{Addr: web0.IPv4}, kubetest.Endpoint{Addr: web1.IPv4})
	node.Nft(netnstest.KubeProxyRules(netnstest.Service{Name: "web", VIP: webVIP}, netnstest.Service{Name: "empty", VIP: emptyVIP}, proxied))
	require.Eventually(t, func() bool { return unready(webVIP) }, 30*time.Second, 20*time.Millisecond)
	require.ErrorIs(t, dialFrom(t, client, webVIP), syscall.ECONNREFUSED)

	for _, stopServer := range stopServers {
		stopServer()
	}
	// Client: n+m+1 connects and closes, 2 failed connects; servers: n+m+1 accepts and closes.
	settle(t, logs, 4*(n+m+1)+2, client, web0, web1)
	stop()

	podOf := map[string]string{web0.IPv4.String(): "web-0", web1.IPv4.String(): "web-1"}
	netnsOf := map[string]int64{web0.IPv4.String(): int64(web0.NetnsInode()), web1.IPv4.String(): int64(web1.NetnsInode())}
	clientRecs := records(logs.AllLogs(), client.NetnsInode())
	serverRecs := records(logs.AllLogs(), web0.NetnsInode(), web1.NetnsInode())
	api, err := kubernetes.NewForConfig(cluster.AdminConfig())
	require.NoError(t, err)
	web1Pod, err := api.CoreV1().Pods("shop").Get(t.Context(), "web-1", metav1.GetOptions{})
	require.NoError(t, err)
	web1UID := string(web1Pod.UID)
	served := map[string]int{}
	var toService, toProxy, refused int
	for _, r := range clientRecs {
		if r.name != "podnet.tcp.connect" && r.name != "podnet.tcp.close" {
			continue
		}
		switch r.attrs["network.peer.address"] {
		case backends[0].Addr().String():
			assert.NotContains(t, r.attrs, "podnet.peer.backend.address", "a pod IP is not translated")
			assert.Equal(t, "web-0", r.attrs["podnet.peer.k8s.pod.name"])
			continue
		case proxy.String():
			toProxy++
			assert.Equal(t, "proxy", r.attrs["podnet.peer.k8s.service.name"])
			assert.Equal(t, "edge", r.attrs["podnet.peer.k8s.namespace.name"], "the Service's namespace")
			assert.Equal(t, backends[1].Addr().String(), r.attrs["podnet.peer.backend.address"])
			assert.NotContains(t, r.attrs, "podnet.peer.k8s.pod.name", "web-1 is no pod of edge")
			assert.Equal(t, web1UID, r.attrs["podnet.peer.k8s.pod.uid"], "the backend pod, by its uid")
			continue
		case empty.String():
			refused++
			assert.Equal(t, "empty", r.attrs["podnet.peer.k8s.service.name"])
			assert.Equal(t, "ECONNREFUSED", r.attrs["error.type"])
			assert.Equal(t, true, r.attrs["podnet.peer.k8s.service.no_ready_endpoints"])
			continue
		}
		require.Equal(t, web.String(), r.attrs["network.peer.address"], "the socket sees the ClusterIP")
		assert.Equal(t, "web", r.attrs["podnet.peer.k8s.service.name"])
		assert.Equal(t, "shop", r.attrs["podnet.peer.k8s.namespace.name"])
		if r.attrs["error.type"] != nil {
			refused++
			assert.Equal(t, true, r.attrs["podnet.peer.k8s.service.no_ready_endpoints"], "scaled to zero")
			assert.NotContains(t, r.attrs, "podnet.peer.backend.address", "rejected before any translation")
			continue
		}
		assert.NotContains(t, r.attrs, "podnet.peer.k8s.service.no_ready_endpoints")
		backend, _ := r.attrs["podnet.peer.backend.address"].(string)
		require.Contains(t, podOf, backend, "a backend of the Service: %v", r.attrs)
		assert.Equal(t, int64(8080), r.attrs["podnet.peer.backend.port"])
		assert.Equal(t, podOf[backend], r.attrs["podnet.peer.k8s.pod.name"], "the backend pod beside the Service")
		// The accept that proves it: in that backend's namespace, from this client's port.
		// (A client port can serve twice, through two translations, when the server closed first.)
		assert.True(t, slices.ContainsFunc(serverRecs, func(a rec) bool {
			return a.netns == netnsOf[backend] && a.matches("podnet.tcp.accept", map[string]any{"network.peer.port": r.attrs["network.local.port"]})
		}), "served by the backend the record names: %v", r.attrs)
		if r.name == "podnet.tcp.connect" {
			toService++
			served[backend]++
		}
	}
	assert.Equal(t, n, toService)
	assert.Equal(t, 2*m, toProxy, "connect and close")
	assert.Equal(t, 2, refused)
	assert.Len(t, served, 2, "both backends served some: %v", served)
}
