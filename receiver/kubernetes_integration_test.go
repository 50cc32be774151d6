package podnetreceiver

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// statusHost records the component status events the receiver reports.
type statusHost struct {
	mu     sync.Mutex
	events []componentstatus.Status
}

func (h *statusHost) GetExtensions() map[component.ID]component.Component { return nil }

func (h *statusHost) Report(e *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e.Status())
}

func (h *statusHost) saw(s componentstatus.Status) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e == s {
			return true
		}
	}
	return false
}

const node = "node-a"

// keepNames makes the receiver hand its attribution to *names too: tests wait on what its
// informers know.
func keepNames(names *attribution.Attributor) func(*podnetReceiver) {
	return func(rcv *podnetReceiver) {
		start := rcv.startAttribution
		rcv.startAttribution = func(h component.Host, tb *metadata.TelemetryBuilder) (startedAttribution, error) {
			started, err := start(h, tb)
			*names = started.attr
			return started, err
		}
	}
}

// peerNow is who names addr now.
func peerNow(names attribution.Attributor, addr netip.Addr) attribution.Peer {
	p, _ := names.Peer(addr, time.Now().UnixNano())
	return p
}

// kubePod registers a namespace pod with the API server as the kubelet would, then lays out
// its cgroup with the UID the API server gave it.
// startShopCluster starts a real API server with namespace shop, and returns it and the
// kubeconfig of podnet's account under the examples' RBAC.
func startShopCluster(t *testing.T) (*kubetest.Cluster, string) {
	t.Helper()
	cluster := kubetest.Start(t)
	cluster.Namespace(t, "shop")
	return cluster, kubetest.ApplyRBAC(t, cluster, "../examples/rbac.yaml")
}

func kubePod(t *testing.T, c *kubetest.Cluster, cg *netnstest.KubeletCgroups, p *netnstest.Pod, name, container, onNode string) string {
	cid := netnstest.NewContainerID()
	created := c.CreatePod(t, kubetest.Pod{
		Namespace: "shop", Name: name, Node: onNode,
		IPs: []string{p.IPv4.String(), p.IPv6.String()}, Containers: map[string]string{container: "containerd://" + cid},
	})
	p.Cgroup = cg.Container(string(created.UID), cid)
	return cid
}

// Both ends named from a real API server, with the ClusterRole of examples/rbac.yaml: local
// pods (by cgroup, also hostNetwork), peer pods on this and other nodes, a Service ClusterIP
// (dialled before DNAT), an unknown peer, a pod deleted mid-test, and an API server outage.
func TestKubernetesNamesBothEnds(t *testing.T) {
	netnstest.RequireRoot(t)
	cluster, kubeconfig := startShopCluster(t)

	netw := netnstest.NewNetwork(t, 70)
	client, server, remote, stranger := netw.AddPod(), netw.AddPod(), netw.AddPod(), netw.AddPod()
	cg := netnstest.NewKubeletCgroups(t)
	clientCID := kubePod(t, cluster, cg, client, "client", "curl", node)
	kubePod(t, cluster, cg, server, "web-0", "nginx", node)
	kubePod(t, cluster, cg, remote, "db-0", "postgres", "node-b")
	hostCID := netnstest.NewContainerID()
	agent := cluster.CreatePod(t, kubetest.Pod{
		Namespace: "shop", Name: "agent", Node: node, HostNetwork: true,
		IPs: []string{"127.0.0.1"}, Containers: map[string]string{"agent": "containerd://" + hostCID},
	})
	hostPod := netnstest.HostPod(t, cg.Container(string(agent.UID), hostCID))
	svc := cluster.CreateService(t, kubetest.Service{Namespace: "shop", Name: "web"})
	clusterIP := kubetest.ClusterIPs(svc)[0]
	// kube-proxy's part: the ClusterIP is DNATed to the pod inside the client's namespace (the
	// route only lets connect() get as far as the NAT hook, as a node's default route does).
	client.DNATOutput(netip.AddrPortFrom(clusterIP, 80), netip.AddrPortFrom(server.IPv4, 8080))

	host := &statusHost{}
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	apiErrors := func() int64 { return counterSum(t, tt, "otelcol_podnet_kubernetes_api_errors") }
	var names attribution.Attributor // the receiver's own, to wait on what its informers know
	logs, metrics, stop := startReceiverOpts(t, host, func(cfg *Config) {
		cfg.NodeName = node
		cfg.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeKubeConfig, KubeConfig: kubeconfig}
	}, func(r *podnetReceiver) {
		keepNames(&names)(r)
		r.set.TelemetrySettings = tt.NewTelemetrySettings()
	})
	require.NotNil(t, names)
	_, err := tt.GetMetric("otelcol_podnet_kubernetes_api_errors")
	require.NoError(t, err, "the API errors counter exists from Start")
	require.Zero(t, apiErrors(), "no failed call while the API server answers")

	srv := server.StartServer(t, "0.0.0.0:8080", 3)
	remoteSrv := remote.StartServer(t, "0.0.0.0:8080", 2)
	strangerSrv := stranger.StartServer(t, "0.0.0.0:8080", 1)
	for _, to := range []netip.AddrPort{
		netip.AddrPortFrom(server.IPv4, 8080), netip.AddrPortFrom(clusterIP, 80),
		netip.AddrPortFrom(remote.IPv4, 8080), netip.AddrPortFrom(stranger.IPv4, 8080),
	} {
		_, res := client.Dial(t, to.String(), "hi")
		require.Empty(t, res, to)
	}
	strangerSrv.Wait(t)

	// A pod deleted mid-test: its IP names nobody for connections made since; the process still
	// runs (as a pod's sockets' last events outlive it), and its sockets keep its names.
	cluster.DeletePod(t, "shop", "web-0")
	serverNetns := server.NetnsInode()
	require.Eventually(t, func() bool { return peerNow(names, server.IPv4).PodName == "" }, 30*time.Second, 20*time.Millisecond,
		"the peer pods' watch delivers the deletion (the local pods' watch, the same deletion)")
	_, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, 8080).String(), "after delete")
	require.Empty(t, res)
	srv.Wait(t)
	port := dialHostPod(t, hostPod)

	// The API server goes away: events keep flowing with the names already known.
	cluster.Stop()
	require.Eventually(t, func() bool { return host.saw(componentstatus.StatusRecoverableError) }, 30*time.Second, 100*time.Millisecond,
		"an API server outage is a recoverable status")
	_, res = client.Dial(t, netip.AddrPortFrom(remote.IPv4, 8080).String(), "during outage")
	require.Empty(t, res)
	remoteSrv.Wait(t)
	require.Eventually(t, func() bool { return apiErrors() > 0 }, 30*time.Second, 100*time.Millisecond,
		"the failed calls during the outage are counted")
	cluster.Restart(t)
	require.Eventually(t, func() bool { return host.saw(componentstatus.StatusOK) }, 60*time.Second, 200*time.Millisecond,
		"recovery is reported")
	recovered := apiErrors()
	time.Sleep(2 * time.Second)
	assert.Equal(t, recovered, apiErrors(), "no failed calls once the API server answers again")
	hostNetns := hostPod.NetnsInode()
	assert.Eventually(t, func() bool {
		return has(records(logs.AllLogs(), hostNetns), "podnet.tcp.accept", map[string]any{"network.local.port": int64(port)})
	}, 10*time.Second, 10*time.Millisecond)
	// 6 connects from the client, 3 accepts in the server, and every one closed.
	settle(t, logs, 18, client, server)
	stop()

	// Each end in its own namespace's records: the host's holds other tests' loopback traffic
	// too, where any port number may recur.
	rs := records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode())
	var toServers []rec
	for _, r := range rs {
		if r.name == "podnet.tcp.connect" && r.attrs["network.peer.address"] == server.IPv4.String() {
			toServers = append(toServers, r)
		}
	}
	require.Len(t, toServers, 2)
	toServer, afterDelete := toServers[0], toServers[1]
	assert.NotContains(t, afterDelete.attrs, "podnet.peer.k8s.pod.name", "a deleted pod's IP names nobody")
	deletedAccept := find(t, rs, "podnet.tcp.accept", map[string]any{"network.peer.port": afterDelete.attrs["network.local.port"]})
	assert.Equal(t, "web-0", deletedAccept.res["k8s.pod.name"], "the deleted pod's sockets keep its names to the end")
	assert.Equal(t, "nginx", deletedAccept.res["k8s.container.name"])
	assert.NotEmpty(t, deletedAccept.res["k8s.pod.uid"])

	assert.Equal(t, "client", toServer.res["k8s.pod.name"])
	assert.Equal(t, "shop", toServer.res["k8s.namespace.name"])
	assert.Equal(t, "curl", toServer.res["k8s.container.name"])
	assert.Equal(t, clientCID, toServer.res["container.id"])
	assert.Equal(t, node, toServer.res["k8s.node.name"])
	assert.Equal(t, "web-0", toServer.attrs["podnet.peer.k8s.pod.name"])
	assert.Equal(t, "shop", toServer.attrs["podnet.peer.k8s.namespace.name"])

	// Its metrics keep the name to the end: renamed, its cumulative series would start over, with
	// the same start time, as second series under a Resource without the pod.
	var serverResources int
	for _, md := range metrics.AllMetrics() {
		for i := range md.ResourceMetrics().Len() {
			res := md.ResourceMetrics().At(i).Resource()
			if _, ok := inNetns(res, []uint32{serverNetns}); ok {
				serverResources++
				assert.Equal(t, "web-0", res.Attributes().AsRaw()["k8s.pod.name"], "the deleted pod's series")
			}
		}
	}
	assert.NotZero(t, serverResources, "the deleted pod's series are emitted")

	accepted := find(t, rs, "podnet.tcp.accept", map[string]any{"network.peer.port": toServer.attrs["network.local.port"]})
	assert.Equal(t, "web-0", accepted.res["k8s.pod.name"])
	assert.Equal(t, "nginx", accepted.res["k8s.container.name"])
	assert.Equal(t, "client", accepted.attrs["podnet.peer.k8s.pod.name"])

	toService := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.address": clusterIP.String()})
	assert.Equal(t, "web", toService.attrs["podnet.peer.k8s.service.name"], "connect() sees the ClusterIP, before DNAT")
	assert.NotContains(t, toService.attrs, "podnet.peer.k8s.pod.name")

	toRemote := records(logs.AllLogs(), client.NetnsInode())
	var remoteConnects int
	for _, r := range toRemote {
		if r.name == "podnet.tcp.connect" && r.attrs["network.peer.address"] == remote.IPv4.String() {
			remoteConnects++
			assert.Equal(t, "db-0", r.attrs["podnet.peer.k8s.pod.name"], "a pod on another node, also during the outage")
		}
	}
	assert.Equal(t, 2, remoteConnects)

	toStranger := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.address": stranger.IPv4.String()})
	for _, k := range []string{"podnet.peer.k8s.pod.name", "podnet.peer.k8s.namespace.name", "podnet.peer.k8s.service.name"} {
		assert.NotContains(t, toStranger.attrs, k, "nothing invented for an unknown peer")
	}

	agentAccept := find(t, records(logs.AllLogs(), hostPod.NetnsInode()), "podnet.tcp.accept", map[string]any{"network.local.port": int64(port)})
	assert.Equal(t, "agent", agentAccept.res["k8s.pod.name"], "a hostNetwork pod is named by its cgroup")
	assert.Equal(t, "agent", agentAccept.res["k8s.container.name"])
}

// An API server that is down when the collector starts delays nothing but the names:
// Start succeeds (after the bounded sync wait), the status and otelcol_podnet_kubernetes_api_errors
// say why, and events flow with what the node knows.
func TestKubernetesDownAtStart(t *testing.T) {
	netnstest.RequireRoot(t)
	netw := netnstest.NewNetwork(t, 71)
	client, server := netw.AddPod(), netw.AddPod()
	cg := netnstest.NewKubeletCgroups(t)
	uid := netnstest.NewUID()
	client.Cgroup = cg.Container(uid, netnstest.NewContainerID())

	host := &statusHost{}
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	logs, _, stop := startReceiverOpts(t, host, func(cfg *Config) {
		cfg.NodeName = node
		cfg.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeKubeConfig, KubeConfig: kubetest.UnreachableKubeconfig(t)}
	}, func(r *podnetReceiver) { r.set.TelemetrySettings = tt.NewTelemetrySettings() })
	assert.True(t, host.saw(componentstatus.StatusRecoverableError), "the outage is reported")
	failed := counterSum(t, tt, "otelcol_podnet_kubernetes_api_errors")
	assert.Positive(t, failed, "failed calls to the API server are counted")
	srv := server.StartServer(t, "0.0.0.0:8080", 1)
	_, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, 8080).String(), "hi")
	require.Empty(t, res)
	srv.Wait(t)
	require.Eventually(t, func() bool { return counterSum(t, tt, "otelcol_podnet_kubernetes_api_errors") > failed },
		10*time.Second, 50*time.Millisecond, "and keep being counted while it stays down")
	stop()

	c := find(t, records(logs.AllLogs(), client.NetnsInode()), "podnet.tcp.connect", map[string]any{"network.peer.port": int64(8080)})
	assert.Equal(t, uid, c.res["k8s.pod.uid"])
	assert.NotContains(t, c.res, "k8s.pod.name")
}
