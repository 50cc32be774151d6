package podnetreceiver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// A SYN dropped by a firewall in the peer pod: the connect times out in the kernel.
func TestConnectTimeoutIsReported(t *testing.T) {
	netw := netnstest.NewNetwork(t, 20)
	client, server := netw.AddPod(), netw.AddPod()
	server.DropSYNs(81)
	client.FastSYNTimeout()
	logs, _, stop := startReceiver(t, kernel.HooksAuto)

	pid, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, 81).String(), "x")
	require.Equal(t, "ETIMEDOUT", res)
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode())
	require.Len(t, rs, 1, dump(rs))
	c := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.port": int64(81)})
	assert.Equal(t, "ETIMEDOUT", c.attrs["error.type"])
	assert.Equal(t, "WARN", c.severity)
	assert.Equal(t, int64(pid), c.attrs["process.pid"])
}

// A connect that fails inside the syscall (no route) never reaches SYN_SENT: the syscall
// hook reports it, with the address the caller asked for.
func TestSynchronousConnectFailureIsReported(t *testing.T) {
	netw := netnstest.NewNetwork(t, 21)
	client, server := netw.AddPod(), netw.AddPod()
	client.Exec("ip", "route", "add", "unreachable", server.IPv4.String()+"/32")
	logs, _, stop := startReceiver(t, kernel.HooksAuto)

	pid, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, 8080).String(), "x")
	require.Equal(t, "EHOSTUNREACH", res)
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode())
	require.Len(t, rs, 1, dump(rs))
	c := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.address": server.IPv4.String()})
	assert.Equal(t, "EHOSTUNREACH", c.attrs["error.type"])
	assert.Equal(t, int64(8080), c.attrs["network.peer.port"])
	assert.Equal(t, int64(pid), c.attrs["process.pid"])
	assert.NotContains(t, c.attrs, "network.local.address", "the socket had no local address")
	assert.NotContains(t, c.attrs, "network.local.port", "nor a port")
}

// The application closes a socket whose handshake has not ended (its SYNs are dropped):
// "cancelled", with the local port that was bound, in the logs and the in-kernel aggregation.
func TestCancelledConnectIsReported(t *testing.T) {
	netw := netnstest.NewNetwork(t, 25)
	client, server := netw.AddPod(), netw.AddPod()
	dropped := server.DropSYNs(81)
	logs, _, stop := startReceiver(t, kernel.HooksAuto)
	kernelSink, stopKernel := startMetricsOnly(t, aggregationKernel, kernel.HooksAuto)

	fd := -1
	require.NoError(t, client.Do(func() (err error) {
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0); err != nil {
			return err
		}
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: 81, Addr: server.IPv4.As4()}); !errors.Is(err, unix.EINPROGRESS) {
			return err
		}
		return nil
	}))
	require.Eventually(t, func() bool { return dropped.Packets() > 0 }, 10*time.Second, 10*time.Millisecond,
		"the SYN reaches the server and is dropped")
	require.NoError(t, unix.Close(fd)) // the application gives up with the handshake under way
	settle(t, logs, 1, client)
	stop()
	stopKernel()

	rs := records(logs.AllLogs(), client.NetnsInode())
	c := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.port": int64(81)})
	assert.Equal(t, "cancelled", c.attrs["error.type"])
	assert.NotZero(t, c.attrs["network.local.port"])
	assert.Contains(t, flatten(kernelSink.AllMetrics(), client.NetnsInode()),
		fmt.Sprintf("%d podnet.tcp.connections map[error.type:cancelled network.peer.address:%s network.type:ipv4 podnet.connection.role:client server.port:81] = 1", client.NetnsInode(), server.IPv4))
}

// Ephemeral-port exhaustion: connect() finds no free local port after the socket entered
// SYN_SENT, so the state hook sees SYN_SENT -> CLOSE with no socket error. It is
// EADDRNOTAVAIL (what connect() returned), not an application cancel, in the logs and in
// the in-kernel aggregation alike.
func TestPortExhaustionIsReported(t *testing.T) {
	netw := netnstest.NewNetwork(t, 24)
	client, server := netw.AddPod(), netw.AddPod()
	client.Exec("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=40000 40001")
	release := server.StartHolder(t, "0.0.0.0:8081")
	defer release()
	logs, _, stop := startReceiver(t, kernel.HooksAuto)
	kernelSink, stopKernel := startMetricsOnly(t, aggregationKernel, kernel.HooksAuto)

	addr := netip.AddrPortFrom(server.IPv4, 8081).String()
	var held []net.Conn
	require.NoError(t, client.Do(func() error {
		for range 2 { // every local port of the range, to the same peer
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			held = append(held, c)
		}
		return nil
	}))
	pid, res := client.Dial(t, addr, "x")
	require.Equal(t, "EADDRNOTAVAIL", res)
	// Go's dialer retries a connect() that fails with EADDRNOTAVAIL twice: three attempts.
	failed := func() []rec {
		var failed []rec
		for _, r := range records(logs.AllLogs(), client.NetnsInode()) {
			if r.attrs["error.type"] == "EADDRNOTAVAIL" {
				failed = append(failed, r)
			}
		}
		return failed
	}
	assert.Eventually(t, func() bool { return len(failed()) >= 3 }, 10*time.Second, 10*time.Millisecond)
	stop()
	stopKernel()
	for _, c := range held {
		_ = c.Close()
	}

	require.Len(t, failed(), 3, dump(failed()))
	for _, c := range failed() {
		assert.Equal(t, "podnet.tcp.connect", c.name)
		assert.Equal(t, int64(pid), c.attrs["process.pid"])
		assert.Equal(t, int64(8081), c.attrs["network.peer.port"])
	}
	assert.Contains(t, flatten(kernelSink.AllMetrics(), client.NetnsInode()),
		fmt.Sprintf("%d podnet.tcp.connections map[error.type:EADDRNOTAVAIL network.peer.address:%s network.type:ipv4 podnet.connection.role:client server.port:8081] = 3", client.NetnsInode(), server.IPv4))
}

// A connection the server never accept()s (io_uring, or a listener that closes with a full
// queue) still yields an accept, reported at close without a process.
func TestUnacceptedConnectionStillCounted(t *testing.T) {
	netw := netnstest.NewNetwork(t, 22)
	client, server := netw.AddPod(), netw.AddPod()
	logs, _, stop := startReceiver(t, kernel.HooksAuto)

	release := server.StartHolder(t, "0.0.0.0:8081")
	done := make(chan string)
	go func() {
		_, res := client.Dial(t, netip.AddrPortFrom(server.IPv4, 8081).String(), "x")
		done <- res
	}()
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(server.OpenTCPSockets(), func(s string) bool {
			f := strings.Fields(s)
			return f[0] == "ESTAB" && strings.HasSuffix(f[3], ":8081")
		})
	}, 10*time.Second, 10*time.Millisecond, "the handshake completes in the server's kernel, with nobody calling accept")
	release()
	require.Equal(t, "ECONNRESET", <-done)
	settle(t, logs, 4, client, server)
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode())
	a := find(t, rs, "podnet.tcp.accept", map[string]any{"network.local.port": int64(8081)})
	assert.NotContains(t, a.attrs, "process.pid", "nobody accepted it: no process to name")
	find(t, rs, "podnet.tcp.close", map[string]any{"network.local.port": int64(8081)})
	find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.port": int64(8081)})
	find(t, rs, "podnet.tcp.close", map[string]any{"network.peer.port": int64(8081)})
	require.Len(t, rs, 4, dump(rs))
}

// Excluded connections never reach logs, in either hook path, while the rest does.
func TestExcludedConnectionsAreLeftOut(t *testing.T) {
	netw := netnstest.NewNetwork(t, 23)
	client, server := netw.AddPod(), netw.AddPod()
	logs, _, stop := startReceiverWith(t, componenttest.NewNopHost(), func(cfg *Config) {
		cfg.Exclude = ExcludeConfig{PeerCIDRs: []string{server.IPv4.String() + "/32"}, ServerPorts: []int{9}}
	})
	exchange(t, client, server, "x", netip.AddrPortFrom(server.IPv4, 8080), netip.AddrPortFrom(server.IPv6, 8080))
	dialRefused(t, client, server.IPv6)
	settle(t, logs, 6, client, server) // and the excluded events are made too: none may arrive
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode())
	// Kept: the IPv6 connection (4 events) and the server's side of the IPv4 one, whose peer
	// is the client. Left out: the client's IPv4 events (peer excluded), the port-9 connect.
	require.Len(t, rs, 6, dump(rs))
	for _, r := range rs {
		assert.NotEqual(t, server.IPv4.String(), r.attrs["network.peer.address"])
		assert.NotEqual(t, int64(9), r.attrs["network.peer.port"])
	}
	find(t, rs, "podnet.tcp.accept", map[string]any{"network.peer.address": client.IPv4.String()})
}

// connect() again on a socket whose non-blocking connect failed is how POSIX programs learn the
// outcome: that call starts no attempt, it returns the failure (ECONNABORTED once SO_ERROR has
// taken it). The failure is one connect record and one count, from the handshake's end; the
// call that collects it adds nothing.
// Both hook modes: the tp_btf error-report program names the socket, the classic tracepoint's
// does not.
func TestConnectAgainAfterAFailureReportsItOnce(t *testing.T) {
	netw := netnstest.NewNetwork(t, 216)
	client, server := netw.AddPod(), netw.AddPod()
	for _, mode := range []kernel.HookMode{kernel.HooksTPBTF, kernel.HooksTracepoint} {
		t.Run(string(mode), func(t *testing.T) { connectAgainReportsTheFailureOnce(t, mode, client, server) })
	}
}

func connectAgainReportsTheFailureOnce(t *testing.T, mode kernel.HookMode, client, server *netnstest.Pod) {
	logs, metrics, stop := startReceiver(t, mode)

	// Nothing listens on these ports of the server: each connect is refused (RST).
	collect := func(port int, soError bool) (taken, again error) {
		t.Helper()
		require.NoError(t, client.Do(func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			to := &unix.SockaddrInet4{Port: port, Addr: server.IPv4.As4()}
			if err := unix.Connect(fd, to); !errors.Is(err, unix.EINPROGRESS) {
				return fmt.Errorf("first connect: %w, want EINPROGRESS", err)
			}
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 5000); err != nil {
				return err
			}
			if soError {
				n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
				if err != nil {
					return err
				}
				taken = unix.Errno(n)
			}
			again = unix.Connect(fd, to)
			return nil
		}))
		return taken, again
	}
	_, again := collect(83, false)
	require.ErrorIs(t, again, unix.ECONNREFUSED, "connect() again returns the failure")
	taken, again := collect(84, true)
	require.ErrorIs(t, taken, unix.ECONNREFUSED, "SO_ERROR takes the failure")
	require.ErrorIs(t, again, unix.ECONNABORTED, "connect() again, after SO_ERROR")
	settle(t, logs, 2, client)
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode())
	require.Len(t, rs, 2, dump(rs))
	for _, port := range []int64{83, 84} {
		c := find(t, rs, "podnet.tcp.connect", map[string]any{"network.peer.port": port})
		assert.Equal(t, "ECONNREFUSED", c.attrs["error.type"], "port %d", port)
		assert.NotZero(t, c.attrs["network.local.port"], "port %d: the attempt's own record", port)
	}
	got := flatten(metrics.AllMetrics(), client.NetnsInode())
	for _, port := range []int{83, 84} {
		assert.Contains(t, got, fmt.Sprintf("%d podnet.tcp.connections map[error.type:ECONNREFUSED network.peer.address:%s network.type:ipv4 podnet.connection.role:client server.port:%d] = 1",
			client.NetnsInode(), server.IPv4, port))
	}
	for _, line := range got {
		assert.NotContains(t, line, "ECONNABORTED")
	}
}
