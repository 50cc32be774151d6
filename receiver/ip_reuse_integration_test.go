//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// A pod's IP reused by its successor while a connection to the first is still open: the
// connection's close, read after the hand-over, names the pod it reached, and the next
// connection its successor (real kernel, real API server; the server namespace stands in for
// both pods, whose API objects change hands). So is a connect begun before the hand-over that
// fails after it (its SYNs dropped, given up): found by an independent check, it named the
// successor, as of its failure.
func TestKubernetesNamesAReusedIPByItsHolderThen(t *testing.T) {
	netnstest.RequireRoot(t)
	cluster, kubeconfig := startShopCluster(t)
	netw := netnstest.NewNetwork(t, 222)
	client, server := netw.AddPod(), netw.AddPod()
	cg := netnstest.NewKubeletCgroups(t)
	kubePod(t, cluster, cg, client, "client", "psql", node)
	kubePod(t, cluster, cg, server, "db-1", "postgres", "node-b")

	logs, stop, names := startNamedReceiver(t, kubeconfig)
	to := netip.AddrPortFrom(server.IPv4, 5432)
	server.DiscardAll(t, to)
	dial := dialer(t, client, to)
	held := dial()
	dropped := server.DropSYNs(5433)
	pending := -1 // a connect under way across the hand-over
	require.NoError(t, client.Do(func() (err error) {
		if pending, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0); err != nil {
			return err
		}
		if err := unix.Connect(pending, &unix.SockaddrInet4{Port: 5433, Addr: server.IPv4.As4()}); !errors.Is(err, unix.EINPROGRESS) {
			return err
		}
		return nil
	}))
	require.Eventually(t, func() bool { return dropped.Packets() > 0 }, 10*time.Second, 10*time.Millisecond, "its SYN is dropped")
	local, err := unix.Getsockname(pending)
	require.NoError(t, err)

	cluster.DeletePod(t, "shop", "db-1")
	require.Eventually(t, func() bool { return peerNow(names, server.IPv4).PodName == "" }, 30*time.Second, 20*time.Millisecond, "the deletion arrives")
	kubePod(t, cluster, cg, server, "db-2", "postgres", "node-b")
	require.Eventually(t, func() bool { return peerNow(names, server.IPv4).PodName == "db-2" }, 30*time.Second, 20*time.Millisecond, "the successor arrives")
	require.NoError(t, unix.Close(pending)) // given up after the hand-over
	require.NoError(t, held.Close())
	next := dial()
	require.NoError(t, next.Close())
	settle(t, logs, 5, client)
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode())
	port := func(c net.Conn) int64 { return int64(c.LocalAddr().(*net.TCPAddr).Port) }
	for _, tc := range []struct {
		conn net.Conn
		want string
	}{{held, "db-1"}, {next, "db-2"}} {
		for _, name := range []string{"podnet.tcp.connect", "podnet.tcp.close"} {
			r := find(t, rs, name, map[string]any{"network.local.port": port(tc.conn)})
			assert.Equal(t, tc.want, r.attrs["podnet.peer.k8s.pod.name"], "%s of the connection to %s", name, tc.want)
		}
	}
	failed := find(t, rs, "podnet.tcp.connect", map[string]any{"network.local.port": int64(local.(*unix.SockaddrInet4).Port)})
	assert.Equal(t, "cancelled", failed.attrs["error.type"])
	assert.Equal(t, "db-1", failed.attrs["podnet.peer.k8s.pod.name"], "the failed connect, named as of its SYN")
}

// A new pod's first connections begin before the API shows its IP: the kubelet starts its
// containers, then posts the IP with a later status sync, and an application's pool opened at
// start keeps those connections. The address is the pod's from its creation (the history
// allowing: nobody held it since), so the close of such a connection names it, as connections
// made after its IP was posted do (found by an independent review: the server's close named no
// peer). The early accept, converted before anyone could know, stays unnamed.
func TestANewPodsConnectionsBeforeItsIPIsPostedAreNamedAtTheirClose(t *testing.T) {
	netnstest.RequireRoot(t)
	cluster, kubeconfig := startShopCluster(t)
	netw := netnstest.NewNetwork(t, 19)
	client, server := netw.AddPod(), netw.AddPod()
	cg := netnstest.NewKubeletCgroups(t)
	kubePod(t, cluster, cg, server, "db-0", "postgres", node)
	// Scheduled on another node, its containers started, no IP in its status yet.
	created := cluster.CreatePod(t, kubetest.Pod{
		Namespace: "shop", Name: "api-new", Node: "node-b",
		Containers: map[string]string{"app": "containerd://" + netnstest.NewContainerID()},
	})
	createdAt := time.Now()

	logs, stop, names := startNamedReceiver(t, kubeconfig)
	to := netip.AddrPortFrom(server.IPv4, 5432)
	server.DiscardAll(t, to)
	dial := dialer(t, client, to)
	// A creation timestamp has whole seconds: the holding starts a second after it at the
	// earliest, and a real pod's sandbox takes longer than that.
	time.Sleep(time.Until(createdAt.Add(2100 * time.Millisecond)))
	early := dial()
	time.Sleep(300 * time.Millisecond)

	created.Status.PodIP = client.IPv4.String()
	created.Status.PodIPs = []corev1.PodIP{{IP: client.IPv4.String()}, {IP: client.IPv6.String()}}
	_, err := cluster.Admin.CoreV1().Pods("shop").UpdateStatus(context.Background(), created, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return peerNow(names, client.IPv4).PodName == "api-new" }, 30*time.Second, 20*time.Millisecond)

	later := dial()
	require.NoError(t, later.Close())
	require.NoError(t, early.Close())
	settle(t, logs, 4, client)
	require.Eventually(t, func() bool {
		n := 0
		for _, r := range records(logs.AllLogs(), server.NetnsInode()) {
			if r.name == "podnet.tcp.close" {
				n++
			}
		}
		return n >= 2
	}, 5*time.Second, 20*time.Millisecond, "the server end's closes")
	stop()

	rs := records(logs.AllLogs(), server.NetnsInode())
	port := func(c net.Conn) int64 { return int64(c.LocalAddr().(*net.TCPAddr).Port) }
	for _, tc := range []struct {
		conn net.Conn
		name string
	}{{early, "podnet.tcp.close"}, {later, "podnet.tcp.accept"}, {later, "podnet.tcp.close"}} {
		r := find(t, rs, tc.name, map[string]any{"network.peer.port": port(tc.conn)})
		assert.Equal(t, "api-new", r.attrs["podnet.peer.k8s.pod.name"], "%s of port %d", tc.name, port(tc.conn))
	}
}

// startNamedReceiver starts podnet as this node's, naming pods and Services from kubeconfig's
// API server; it returns its logs, its stop and what names its peers.
func startNamedReceiver(t *testing.T, kubeconfig string) (*consumertest.LogsSink, func(), attribution.Attributor) {
	t.Helper()
	var names attribution.Attributor
	logs, _, stop := startReceiverOpts(t, &statusHost{}, func(cfg *Config) {
		cfg.NodeName = node
		cfg.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeKubeConfig, KubeConfig: kubeconfig}
	}, keepNames(&names))
	require.NotNil(t, names)
	return logs, stop, names
}

// dialer dials to from the pod, a new connection per call.
func dialer(t *testing.T, from *netnstest.Pod, to netip.AddrPort) func() net.Conn {
	return func() net.Conn {
		var c net.Conn
		require.NoError(t, from.Do(func() (err error) { c, err = net.Dial("tcp", to.String()); return err }))
		return c
	}
}
