package podnetreceiver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// A static pod's process, in a cgroup named by the kubelet's UID of the pod (its manifest's
// hash) as the kubelet lays it out, is named after its mirror pod at the local end, with the
// mirror pod's API UID: the one its peers name it by (the server's accept here) and
// k8s_attributes matches on. Found by an independent check: such ends had k8s.pod.uid=<hash>
// and no name, and the two ends of one connection disagreed on the UID.
func TestStaticPodNamedAtLocalEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	cluster, kubeconfig := startShopCluster(t)

	netw := netnstest.NewNetwork(t, 72)
	client, server := netw.AddPod(), netw.AddPod()
	cg := netnstest.NewKubeletCgroups(t)
	const hash = "6bf2e4b1c0a94d8e9f3a2b1c0d9e8f7a"
	cid := netnstest.NewContainerID()
	static := cluster.CreatePod(t, kubetest.Pod{
		Namespace: "kube-system", Name: "static-web-" + node, Node: node,
		IPs: []string{client.IPv4.String(), client.IPv6.String()}, Containers: map[string]string{"web": "containerd://" + cid},
		Annotations: map[string]string{"kubernetes.io/config.mirror": hash, "kubernetes.io/config.hash": hash, "kubernetes.io/config.source": "file"},
	})
	require.NotEqual(t, hash, string(static.UID))
	client.Cgroup = cg.Container(hash, cid) // kubepods-besteffort-pod<hash>.slice/cri-containerd-<id>.scope
	kubePod(t, cluster, cg, server, "web-0", "nginx", node)

	var names attribution.Attributor
	logs, _, stop := startReceiverOpts(t, &statusHost{}, func(cfg *Config) {
		cfg.NodeName = node
		cfg.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeKubeConfig, KubeConfig: kubeconfig}
	}, keepNames(&names))
	require.NotNil(t, names)
	require.Eventually(t, func() bool { return peerNow(names, client.IPv4).PodName != "" }, 30*time.Second, 20*time.Millisecond)

	srv := server.StartServer(t, "0.0.0.0:8080", 1)
	_, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, 8080).String(), "hi")
	require.Empty(t, res)
	srv.Wait(t)
	settle(t, logs, 3, client, server) // connect, accept, and the client's close at least
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode())
	conn := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.address": server.IPv4.String()})
	assert.Equal(t, "static-web-"+node, conn.res["k8s.pod.name"], "named from its mirror pod")
	assert.Equal(t, "kube-system", conn.res["k8s.namespace.name"])
	assert.Equal(t, string(static.UID), conn.res["k8s.pod.uid"], "the API's UID, not the kubelet's hash")
	assert.Equal(t, "web", conn.res["k8s.container.name"])
	assert.Equal(t, cid, conn.res["container.id"])

	acc := find(t, rs, "podnet.tcp.accept", map[string]any{"network.peer.port": conn.attrs["network.local.port"]})
	assert.Equal(t, "static-web-"+node, acc.attrs["podnet.peer.k8s.pod.name"])
	assert.Equal(t, conn.res["k8s.pod.uid"], acc.attrs["podnet.peer.k8s.pod.uid"], "both ends agree on the UID")
}
