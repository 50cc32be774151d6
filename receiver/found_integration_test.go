package podnetreceiver

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/hiddenclose"
	"github.com/podnet/podnet/internal/netnstest"
)

// foundConnections is how many idle connections the pods hold before podnet starts.
const foundConnections = 10_000

// Connections open before Start are found: counted active per role in both aggregation
// modes, one log record each naming its pod, and their closes are tracked, not untracked.
//
// A run is disturbed, and run again (at most three times), when the kernel did not show podnet
// some of the closes: it runs no BPF program while some tasks are current (this sandbox's
// PID 1), and podnet counts such a connection as unseen when its socket's memory is reused.
// Seen once in 30 runs beside other test packages (1 close of 4,000).
func TestConnectionsOpenBeforeStartAreFound(t *testing.T) {
	var why []string
	for run := 1; run <= 3; run++ {
		var disturbed string
		t.Run(fmt.Sprintf("run%d", run), func(t *testing.T) { disturbed = connectionsOpenBeforeStartAreFound(t) })
		if disturbed == "" || t.Failed() {
			return
		}
		t.Logf("run %d disturbed, again: %s", run, disturbed)
		why = append(why, disturbed)
	}
	t.Fatalf("every run disturbed: %q", why)
}

func connectionsOpenBeforeStartAreFound(t *testing.T) (disturbed string) {
	const n, closing = foundConnections, foundConnections * 4 / 10
	cgroups := netnstest.NewKubeletCgroups(t)
	netw := netnstest.NewNetwork(t, 112)
	client, server := netw.AddPod(), netw.AddPod()
	clientUID, serverUID := netnstest.NewUID(), netnstest.NewUID()
	client.Cgroup = cgroups.Container(clientUID, netnstest.NewContainerID())
	server.Cgroup = cgroups.Container(serverUID, netnstest.NewContainerID())

	opened := time.Now()
	srv := startHolder(t, server, "listening", "serve", "0.0.0.0:8080", strconv.Itoa(n))
	cli := startHolder(t, client, "ready", "dial", netip.AddrPortFrom(server.IPv4, 8080).String(), strconv.Itoa(n))
	srv.expect(t, "ready")
	t.Logf("%d connections opened in %v", n, time.Since(opened))

	started := time.Now()
	events := startPeriodic(t, aggregationEvents, true)
	inKernel := startPeriodic(t, aggregationKernel, false)
	t.Logf("both receivers started in %v", time.Since(started))

	c, s := client.NetnsInode(), server.NetnsInode()
	cliAttrs, srvAttrs := clientAttrs(server.IPv4, 8080, "ipv4"), serverAttrs(client.IPv4, 8080, "ipv4")
	active := func(want int) []expectation {
		return []expectation{
			{c, "podnet.tcp.connections.active", cliAttrs, float64(want)},
			{s, "podnet.tcp.connections.active", srvAttrs, float64(want)},
		}
	}
	for _, p := range []*periodic{events, inKernel} {
		p.requireReached(t, active(n), "every connection open before Start counted active")
		_, ok := p.last(t, c, "podnet.tcp.connections", cliAttrs)
		assert.False(t, ok, "found connections are not opens")
	}

	require.Eventually(t, func() bool {
		return len(foundRecords(events, c, s)) == 2*n
	}, 10*time.Second, 20*time.Millisecond, "a record per found connection and end")
	clientPorts := map[int64]bool{}
	for _, r := range foundRecords(events, c, s) {
		assert.Equal(t, true, r.attrs["podnet.connection.role.guessed"])
		switch r.netns {
		case int64(c):
			assert.Equal(t, clientUID, r.res["k8s.pod.uid"])
			assert.Equal(t, "client", r.attrs["podnet.connection.role"])
			assert.Equal(t, int64(cli.pid), r.attrs["process.pid"])
			assert.Equal(t, server.IPv4.String(), r.attrs["network.peer.address"])
			assert.Equal(t, int64(8080), r.attrs["network.peer.port"])
			clientPorts[r.attrs["network.local.port"].(int64)] = true
		case int64(s):
			assert.Equal(t, serverUID, r.res["k8s.pod.uid"])
			assert.Equal(t, "server", r.attrs["podnet.connection.role"])
			assert.Equal(t, int64(srv.pid), r.attrs["process.pid"])
			assert.Equal(t, client.IPv4.String(), r.attrs["network.peer.address"])
			assert.Equal(t, int64(8080), r.attrs["network.local.port"])
		}
	}
	assert.Len(t, clientPorts, n, "each connection found once")

	untrackedBefore := []int64{events.telemetry(t, untrackedCounter), inKernel.telemetry(t, untrackedCounter)}
	unseenBefore := []int64{events.telemetry(t, unseenCounter), inKernel.telemetry(t, unseenCounter)}
	hidden, err := hiddenclose.Watch("podnet-found-test")
	if err != nil {
		t.Logf("closes hidden from BPF not counted: %v", err)
	}
	defer hidden.Close()
	cli.close(t, closing)
	for i, p := range []*periodic{events, inKernel} {
		want := append(active(n-closing),
			expectation{c, "podnet.tcp.connections.closed", cliAttrs, closing},
			expectation{s, "podnet.tcp.connections.closed", srvAttrs, closing},
		)
		if p.awaitReached(t, want) {
			continue
		}
		if unseen := p.telemetry(t, unseenCounter) - unseenBefore[i]; unseen > 0 {
			return fmt.Sprintf("%s: the kernel did not show podnet %d closes (counted unseen)", p.aggregation, unseen)
		}
		// Counted unseen only once their socket memory holds a new connection: those the
		// kernel ran while a PID 1 thread was current are counted in tracefs as they happen
		// (a CI run under load: 172 of 4,000 client closes missing in both modes, active right).
		if server, client, err := hidden.Count(8080); err == nil && server+client > 0 {
			return fmt.Sprintf("%s: the kernel ran %d client and %d server closes with no BPF program (hidden)", p.aggregation, client, server)
		}
		p.failUnreached(t, want, "closing %d of them", closing)
	}
	require.Eventually(t, func() bool {
		return len(guessedCloses(events, c, s)) == 2*closing
	}, 10*time.Second, 20*time.Millisecond, "a close record per closed connection and end")
	events.stop()
	inKernel.stop()
	// The counter is node-wide: closes elsewhere on the node of connections the scan did not
	// find (other tests' and benchmarks' traffic) count too, hundreds a second under load.
	// Had the found connections' closes been counted, it would have grown by 2*closing.
	for i, p := range []*periodic{events, inKernel} {
		untracked := p.telemetry(t, untrackedCounter) - untrackedBefore[i]
		t.Logf("untracked closes on the node while %d found connections closed: %d", 2*closing, untracked)
		assert.Less(t, untracked, int64(closing/2))
	}
	return ""
}

const (
	untrackedCounter = "otelcol_podnet_connections_untracked"
	unseenCounter    = "otelcol_podnet_connections_close_unseen"
)

func foundRecords(p *periodic, netns ...uint32) []rec {
	var out []rec
	for _, r := range records(p.logs.AllLogs(), netns...) {
		if r.name == "podnet.tcp.connection.found" {
			out = append(out, r)
		}
	}
	return out
}

func guessedCloses(p *periodic, netns ...uint32) []rec {
	var out []rec
	for _, r := range records(p.logs.AllLogs(), netns...) {
		if r.name == "podnet.tcp.close" && r.attrs["podnet.connection.role.guessed"] == true {
			out = append(out, r)
		}
	}
	return out
}
