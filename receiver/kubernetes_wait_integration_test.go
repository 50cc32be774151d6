package podnetreceiver

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// dialed is one connection the test made while the receiver started.
type dialed struct {
	at        time.Time
	localPort int64
}

// With the API server unreachable, Start waits out its sync timeout for the Kubernetes
// metadata; the kernel programs are attached before that wait, so connections made during
// it have their records and are counted (before, nothing was recorded until the wait ended).
func TestConnectionsRecordedWhileWaitingForKubernetes(t *testing.T) {
	netnstest.RequireRoot(t)
	netw := netnstest.NewNetwork(t, 153)
	client, server := netw.AddPod(), netw.AddPod()
	to := netip.AddrPortFrom(server.IPv4, 8080)
	stopServer := server.AcceptAll(t, to, nil)
	kubeconfig := kubetest.UnreachableKubeconfig(t)
	// Long enough that a loaded machine's slow attach (1.9 s once in CI, where 5 s left 6
	// connections in the wait's window) still leaves the wait 8 or more.
	const syncTimeout = 7 * time.Second

	// A connection every 200 ms from when the programs are attached (r.open returned) until
	// Start returned.
	var (
		mu       sync.Mutex
		conns    []dialed
		errs     []error
		attached time.Time
	)
	opened, stopDialing, dialerDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	endDialing := sync.OnceFunc(func() { close(stopDialing); <-dialerDone })
	t.Cleanup(endDialing) // also when Start fails
	go func() {
		defer close(dialerDone)
		select {
		case <-opened:
		case <-stopDialing:
			return
		}
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			err := client.Do(func() error {
				c, err := net.DialTimeout("tcp", to.String(), time.Second)
				if err != nil {
					return err
				}
				at := time.Now()
				port := int64(c.LocalAddr().(*net.TCPAddr).Port)
				mu.Lock()
				conns = append(conns, dialed{at: at, localPort: port})
				mu.Unlock()
				return c.Close()
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			select {
			case <-stopDialing:
				return
			case <-tick.C:
			}
		}
	}()
	begun := time.Now()
	logs, metrics, stop := startReceiverOpts(t, componenttest.NewNopHost(), func(cfg *Config) {
		cfg.NodeName = node
		cfg.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeKubeConfig, KubeConfig: kubeconfig}
	}, func(r *podnetReceiver) {
		r.kubeSyncTimeout = syncTimeout
		open := r.open
		r.open = func(o kernel.Options) (source, error) {
			src, err := open(o)
			attached = time.Now()
			close(opened)
			return src, err
		}
	})
	started := time.Now()
	endDialing()
	t.Logf("Start took %v, the programs were attached %v before it returned",
		started.Sub(begun).Round(time.Millisecond), started.Sub(attached).Round(time.Millisecond))
	require.GreaterOrEqual(t, started.Sub(begun), syncTimeout-time.Second, "Start waited for the unreachable API server")
	assert.GreaterOrEqual(t, started.Sub(attached), syncTimeout-4*time.Second,
		"the programs are attached before Start waits for the API server, not after")
	require.Empty(t, errs, "every connection succeeded")

	var early []dialed // made well before Start returned: during the wait
	for _, c := range conns {
		if c.at.Before(started.Add(-2 * time.Second)) {
			early = append(early, c)
		}
	}
	require.GreaterOrEqualf(t, len(early), 8, "connections made during the wait (of %d)", len(conns))
	stopServer() // its listener too is closed when settle looks
	settle(t, logs, 4*len(conns), client, server)
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode())
	missing := 0
	for _, c := range conns { // the wait's and any after
		for _, want := range []struct {
			name  string
			match map[string]any
		}{
			{"podnet.tcp.connect", map[string]any{"network.peer.address": server.IPv4.String(), "network.local.port": c.localPort}},
			{"podnet.tcp.accept", map[string]any{"network.peer.address": client.IPv4.String(), "network.peer.port": c.localPort}},
			{"podnet.tcp.close", map[string]any{"network.peer.address": server.IPv4.String(), "network.local.port": c.localPort}},
			{"podnet.tcp.close", map[string]any{"network.peer.address": client.IPv4.String(), "network.peer.port": c.localPort}},
		} {
			if !has(rs, want.name, want.match) {
				missing++
				t.Errorf("connection from port %d made %v before Start returned: no %s record", c.localPort, started.Sub(c.at).Round(time.Millisecond), want.name)
			}
		}
	}
	t.Logf("%d connections, %d of them well before Start returned; %d records missing", len(conns), len(early), missing)

	all := metrics.AllMetrics()
	for _, tc := range []struct {
		netns uint32
		attrs map[string]any
	}{
		{client.NetnsInode(), clientAttrs(server.IPv4, 8080, "ipv4")},
		{server.NetnsInode(), serverAttrs(client.IPv4, 8080, "ipv4")},
	} {
		for _, name := range []string{"podnet.tcp.connections", "podnet.tcp.connections.closed"} {
			got, ok := point(t, all, tc.netns, name, tc.attrs)
			assert.Truef(t, ok, "no %s point with %v", name, tc.attrs)
			assert.Equalf(t, float64(len(conns)), got, "%s %v: every connection, the wait's too", name, tc.attrs)
		}
	}
}

// The collector's context bounds Start: cancelled while Start waits for an unreachable API
// server, Start returns that error at once (not after the sync timeout) and leaves nothing
// loaded or running (TestMain checks the goroutines).
func TestStartCancelledWhileWaitingForKubernetes(t *testing.T) {
	netnstest.RequireRoot(t)
	cfg := NewDefaultConfig()
	cfg.NodeName = node
	cfg.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeKubeConfig, KubeConfig: kubetest.UnreachableKubeconfig(t)}
	rcv, err := NewFactory().CreateLogs(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, new(consumertest.LogsSink))
	require.NoError(t, err)
	r := receiverOf(rcv)
	r.kubeSyncTimeout = time.Hour
	var ids []ebpf.ProgramID
	open := r.open
	r.open = func(o kernel.Options) (source, error) {
		src, err := open(o)
		if tr, ok := src.kernel.(*kernel.Tracer); ok {
			ids = tr.ProgramIDs()
		}
		return src, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	begun := time.Now()
	err = rcv.Start(ctx, componenttest.NewNopHost())
	took := time.Since(begun)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "Kubernetes API server")
	assert.Less(t, took, 10*time.Second, "Start ended with its context, not the hour-long sync timeout")
	require.NotEmpty(t, ids, "the programs were attached before the wait")
	assert.Empty(t, leftLoaded(t, ids), "a cancelled Start unloads what it loaded")
	require.NoError(t, rcv.Shutdown(context.Background()), "Shutdown after a failed Start")
}
