package kernel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// With both sinks (metrics aggregated in the kernel, events sent for logs), each connection is
// counted once in the aggregates and reported once in the ring: the two agree exactly.
func TestBothSinksAgree(t *testing.T) {
	netw := netnstest.NewNetwork(t, 107)
	pod := netw.AddPod()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 24, MaxTrackedConnections: 65536, AggregateInKernel: true, Events: true, MaxAggregates: 1024})
	require.NoError(t, err)
	defer tr.Close()
	require.NotNil(t, tr.Events(), "events are sent beside the aggregation")
	stop := make(chan struct{})
	got := readContinuously(t, tr, pod.NetnsInode(), stop)
	hidden := watchHiddenCloses(t)

	var l load
	l.run(t, pod, 4, 2*time.Second)
	n := int(l.ok.Load())
	totals := drainUntilClosed(t, tr, pod, &l, hidden)
	close(stop)
	<-got.done

	agg := totals[pod.NetnsInode()]
	client, server := agg.get(roleClient), agg.get(roleServer)
	t.Logf("%d connections; aggregates client %+v server %+v; ring %v", n, client, server, got.kinds)
	assert.Equal(t, uint64(n+int(l.failed.Load())), client.Connections, "client opens, aggregated")
	assert.Equal(t, uint64(n), server.Connections, "server opens, aggregated")
	assert.Equal(t, int(client.Connections), got.kinds[connected], "connect events = aggregated client opens")
	assert.Equal(t, int(server.Connections), got.kinds[accepted], "accept events = aggregated server opens")
	assert.Equal(t, int(client.Closed), got.kinds[clientEnd], "client closes: ring = aggregates")
	assert.Equal(t, int(server.Closed), got.kinds[serverEnd], "server closes: ring = aggregates")
	_ = bpf.PodnetRoleROLE_CLIENT
}

// With both sinks and a ring that is full (one page, never read), every outcome the ring
// refuses is still counted in the aggregates (filled for them alone): metrics never depend on
// the ring, and its refusals are counted lost.
func TestBothSinksAggregatesCountWhatAFullRingRefuses(t *testing.T) {
	netw := netnstest.NewNetwork(t, 140)
	pod := netw.AddPod()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 4096, MaxTrackedConnections: 65536, AggregateInKernel: true, Events: true, MaxAggregates: 1024})
	require.NoError(t, err)
	defer tr.Close()
	hidden := watchHiddenCloses(t)

	var l load
	l.run(t, pod, 2, time.Second)
	n := int(l.ok.Load())
	totals := drainUntilClosed(t, tr, pod, &l, hidden)

	c, err := tr.Counters()
	require.NoError(t, err)
	agg := totals[pod.NetnsInode()]
	client, server := agg.get(roleClient), agg.get(roleServer)
	hs, hc := hidden.count(l.port)
	t.Logf("%d connections; reserve failed %d; aggregates client %+v server %+v", n, c.ReserveFailed, client, server)
	require.Greater(t, c.ReserveFailed, uint64(3*n), "the ring refused almost every record (a page holds ~24)")
	assert.Equal(t, uint64(n+int(l.failed.Load())), client.Connections, "client opens, aggregated")
	assert.Equal(t, uint64(n), server.Connections, "server opens, aggregated")
	assert.Equal(t, uint64(n-hc), client.Closed, "client closes, aggregated (less those hidden from BPF)")
	assert.Equal(t, uint64(n-hs), server.Closed, "server closes, aggregated (less those hidden from BPF)")
}

// drainUntilClosed drains the aggregates until they hold a close for every connection of l at
// both ends (less those hidden from BPF), and returns the pod's namespace's totals.
func drainUntilClosed(t *testing.T, tr *Tracer, pod *netnstest.Pod, l *load, hidden hidden) map[uint32]roleTotals {
	t.Helper()
	n := int(l.ok.Load())
	totals := map[uint32]roleTotals{pod.NetnsInode(): {}}
	var client, server, hs, hc int
	closed := assert.Eventually(t, func() bool {
		drainInto(t, tr, totals)
		hs, hc = hidden.count(l.port)
		client, server = int(totals[pod.NetnsInode()].get(roleClient).Closed), int(totals[pod.NetnsInode()].get(roleServer).Closed)
		return client >= n-hc && server >= n-hs
	}, 5*time.Second, 20*time.Millisecond)
	if !closed {
		require.FailNow(t, "closes missing", "%d connections: %d client and %d server closes aggregated, %d and %d hidden from BPF", n, client, server, hc, hs)
	}
	return totals
}
