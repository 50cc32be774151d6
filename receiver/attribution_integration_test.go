package podnetreceiver

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// Sockets are attributed to pods by network namespace and cgroup, laid out as the kubelet and
// containerd do — never by IP — including a hostNetwork pod that shares the node's namespace.
func TestLocalEndsAttributedToPods(t *testing.T) {
	cgroups := netnstest.NewKubeletCgroups(t)
	netw := netnstest.NewNetwork(t, 60)
	client, server := netw.AddPod(), netw.AddPod()
	clientUID, clientCID := netnstest.NewUID(), netnstest.NewContainerID()
	serverUID, serverCID := netnstest.NewUID(), netnstest.NewContainerID()
	hostUID, hostCID := netnstest.NewUID(), netnstest.NewContainerID()
	client.Cgroup = cgroups.Container(clientUID, clientCID)
	server.Cgroup = cgroups.Container(serverUID, serverCID)
	hostPod := netnstest.HostPod(t, cgroups.Container(hostUID, hostCID))

	logs, _, stop := startReceiver(t, kernel.HooksAuto)
	srv := server.StartServer(t, "0.0.0.0:8080", 1)
	_, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, 8080).String(), "hi")
	require.Empty(t, res)
	srv.Wait(t)

	// The hostNetwork pod serves on the node's loopback; this test process (in no pod) dials it.
	port := dialHostPod(t, hostPod)
	// Both ends on loopback, in the host's namespace, which other tests' sockets share: wait
	// for these records, not for its sockets.
	hostNetns := hostPod.NetnsInode()
	assert.Eventually(t, func() bool {
		host := records(logs.AllLogs(), hostNetns)
		return has(host, "podnet.tcp.accept", map[string]any{"network.local.port": int64(port)}) &&
			has(host, "podnet.tcp.connect", map[string]any{"network.peer.port": int64(port)})
	}, 10*time.Second, 10*time.Millisecond)
	settle(t, logs, 4, client, server)
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode(), hostPod.NetnsInode())
	conn := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.port": int64(8080), "network.peer.address": server.IPv4.String()})
	assert.Equal(t, clientUID, conn.res["k8s.pod.uid"])
	assert.Equal(t, clientCID, conn.res["container.id"])
	acc := find(t, rs, "podnet.tcp.accept", map[string]any{"network.local.port": int64(8080), "network.local.address": server.IPv4.String()})
	assert.Equal(t, serverUID, acc.res["k8s.pod.uid"])
	assert.Equal(t, serverCID, acc.res["container.id"])

	hostAcc := find(t, rs, "podnet.tcp.accept", map[string]any{"network.local.port": int64(port)})
	assert.Equal(t, hostUID, hostAcc.res["k8s.pod.uid"], "a hostNetwork pod is told apart by its cgroup")
	assert.Equal(t, hostCID, hostAcc.res["container.id"])
	hostConn := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.port": int64(port)})
	assert.NotContains(t, hostConn.res, "k8s.pod.uid", "a process outside any pod gets the node's identity only")
	assert.Equal(t, hostConn.res["k8s.node.name"], acc.res["k8s.node.name"])
}

// dialHostPod has a hostNetwork "pod" serve one connection on the node's loopback and dials it
// from this test process, which is in no pod. It returns the server's port.
func dialHostPod(t *testing.T, hostPod *netnstest.Pod) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the pod's server
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	srv := hostPod.StartServer(t, "127.0.0.1:"+strconv.Itoa(port), 1)
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err)
	_, _ = c.Write([]byte("x\n"))
	_, _ = c.Read(make([]byte, 8))
	_ = c.Close()
	srv.Wait(t)
	return port
}
