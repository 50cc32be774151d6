package podnetreceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/podnet/podnet/internal/netnstest"
)

// A listener whose accept queue overflows shows it in podnet.tcp.listen.overflows, attributed to
// its pod (the resource of its namespace) and port, equal to the kernel's ListenDrops there; a
// listener that keeps up shows 0.
func TestListenOverflowsOfAPod(t *testing.T) {
	netw := netnstest.NewNetwork(t, 134)
	client, server, calm := netw.AddPod(), netw.AddPod(), netw.AddPod()
	_, metrics, stop := startReceiverWith(t, componenttest.NewNopHost(), func(*Config) {})
	calmSrv := calm.StartServer(t, "0.0.0.0:8097", 1)
	_, res := client.Dial(t, calm.IPv4.String()+":8097", "hi")
	require.Empty(t, res)
	calmSrv.Wait(t)
	calmListener := calm.StartHolder(t, calm.IPv4.String()+":8096") // listening, never hit
	defer calmListener()

	server.Overflow(client, 8098, 20)
	time.Sleep(100 * time.Millisecond)
	want := server.Netstat("ListenDrops")
	require.Positive(t, want)
	stop()

	all := metrics.AllMetrics()
	got, ok := point(t, all, server.NetnsInode(), "podnet.tcp.listen.overflows", map[string]any{"server.port": int64(8098)})
	require.True(t, ok, "the overflowing listener's series")
	assert.Equal(t, float64(want), got, "the kernel's ListenDrops of its namespace")
	calmDrops, ok := point(t, all, calm.NetnsInode(), "podnet.tcp.listen.overflows", map[string]any{"server.port": int64(8096)})
	require.True(t, ok, "a listener that never dropped has its series too")
	assert.Zero(t, calmDrops)
	// First seen by the last scan, the listeners' points start before it: not a zero-length
	// window holding every drop.
	assertStartsBefore(t, all, time.Now(), server.NetnsInode(), calm.NetnsInode())
}

// A listener whose clients retransmit SYNs to its pending requests, and whose handshakes' last
// ACKs find its queue full, counts more socket drops than the kernel's ListenDrops: the metric
// is ListenDrops, read through the listening process's namespace.
func TestListenOverflowsCountNoRefusedPackets(t *testing.T) {
	netw := netnstest.NewNetwork(t, 227)
	client, server := netw.AddPod(), netw.AddPod()
	_, metrics, stop := startReceiverWith(t, componenttest.NewNopHost(), func(*Config) {})
	server.OverflowAfterLostSYNACKs(client, 8227)
	want, socketDrops := server.Netstat("ListenDrops"), server.SocketDrops(8227)
	require.Positive(t, want, "the queue overflowed")
	require.Greater(t, socketDrops, want, "the listener's socket counted refused packets too")
	stop()

	got, ok := point(t, metrics.AllMetrics(), server.NetnsInode(), "podnet.tcp.listen.overflows", map[string]any{"server.port": int64(8227)})
	require.True(t, ok, "the overflowing listener's series")
	assert.Equal(t, float64(want), got, "the kernel's ListenDrops of its namespace, not the socket's %d drops", socketDrops)
}

// Two listeners of one pod that overflow in the same interval share the namespace's ListenDrops:
// their sum is exact, and neither gets more than its own socket drops.
func TestListenOverflowsOfTwoListenersOfAPodAddUp(t *testing.T) {
	netw := netnstest.NewNetwork(t, 228)
	client, server := netw.AddPod(), netw.AddPod()
	_, metrics, stop := startReceiverWith(t, componenttest.NewNopHost(), func(*Config) {})
	server.Overflow(client, 8228, 20)
	server.OverflowAfterLostSYNACKs(client, 8229)
	want := server.Netstat("ListenDrops")
	socketDrops := map[int64]int{8228: server.SocketDrops(8228), 8229: server.SocketDrops(8229)}
	require.Greater(t, socketDrops[8228]+socketDrops[8229], want, "the sockets counted refused packets too")
	stop()

	all, sum := metrics.AllMetrics(), 0.0
	for port, drops := range socketDrops {
		got, ok := point(t, all, server.NetnsInode(), "podnet.tcp.listen.overflows", map[string]any{"server.port": port})
		require.True(t, ok, "port %d's series", port)
		assert.Positive(t, got, "port %d overflowed", port)
		assert.LessOrEqual(t, got, float64(drops), "port %d: no more than its socket's drops", port)
		sum += got
	}
	assert.Equal(t, float64(want), sum, "the namespace's ListenDrops, all given")
}

// A listener on an excluded server port is left out of podnet.tcp.listen.overflows, as its
// connections are left out of everything else.
func TestListenOverflowsLeaveOutExcludedPorts(t *testing.T) {
	netw := netnstest.NewNetwork(t, 231)
	client, server := netw.AddPod(), netw.AddPod()
	_, metrics, stop := startReceiverWith(t, componenttest.NewNopHost(), func(cfg *Config) {
		cfg.Exclude.ServerPorts = []int{8231}
	})
	server.Overflow(client, 8231, 10)
	kept := server.StartHolder(t, server.IPv4.String()+":8232")
	defer kept()
	stop()

	all := metrics.AllMetrics()
	_, ok := point(t, all, server.NetnsInode(), "podnet.tcp.listen.overflows", map[string]any{"server.port": int64(8231)})
	assert.False(t, ok, "no series for the excluded port")
	_, ok = point(t, all, server.NetnsInode(), "podnet.tcp.listen.overflows", map[string]any{"server.port": int64(8232)})
	assert.True(t, ok, "the other listener of the pod keeps its series")
}

// A listener that overflows and closes before the next scan (an overloaded server killed by its
// probe) still has its drops counted: its close keeps its last count for the scan.
func TestListenOverflowsOfAListenerThatClosed(t *testing.T) {
	netw := netnstest.NewNetwork(t, 232)
	client, server := netw.AddPod(), netw.AddPod()
	_, metrics, stop := startReceiverWith(t, componenttest.NewNopHost(), func(*Config) {})
	server.OverflowAndClose(client, 8233, 20)
	want := server.Netstat("ListenDrops")
	require.Positive(t, want)
	stop()

	got, ok := point(t, metrics.AllMetrics(), server.NetnsInode(), "podnet.tcp.listen.overflows", map[string]any{"server.port": int64(8233)})
	require.True(t, ok, "the closed listener's series")
	assert.Equal(t, float64(want), got, "the kernel's ListenDrops of its namespace")
}

// A listener that overflowed before podnet started counts only what it drops after: its
// series starts at Start, and a first point holding its earlier drops would claim them for
// the first interval (a burst of overflows at every collector restart). A listener made after
// Start brings all its drops. Found by an independent check.
func TestListenOverflowsCountFromStart(t *testing.T) {
	netw := netnstest.NewNetwork(t, 41)
	client, before, after := netw.AddPod(), netw.AddPod(), netw.AddPod()
	before.Overflow(client, 8241, 20)
	atStart := before.Netstat("ListenDrops")
	require.Positive(t, atStart, "overflowed before Start")
	_, metrics, stop := startReceiverWith(t, componenttest.NewNopHost(), func(*Config) {})
	after.Overflow(client, 8242, 20)
	beforeEnd, want := before.Netstat("ListenDrops"), after.Netstat("ListenDrops")
	require.Positive(t, want)
	stop()

	all := metrics.AllMetrics()
	got, ok := point(t, all, before.NetnsInode(), "podnet.tcp.listen.overflows", map[string]any{"server.port": int64(8241)})
	require.True(t, ok, "the listener from before Start has its series")
	assert.Equal(t, float64(beforeEnd-atStart), got, "only its drops since Start (%d before)", atStart)
	got, ok = point(t, all, after.NetnsInode(), "podnet.tcp.listen.overflows", map[string]any{"server.port": int64(8242)})
	require.True(t, ok, "the listener made after Start")
	assert.Equal(t, float64(want), got, "all its drops")
}
