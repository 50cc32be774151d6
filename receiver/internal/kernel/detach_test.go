package kernel

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// After Detach no program runs any more: the counters stop, and the ring holds exactly what
// was submitted, although connections kept being made while it detached.
func TestDetachLeavesEveryEventInTheRing(t *testing.T) {
	netnstest.RequireRoot(t)
	tr := openEvents(t, 1<<24)
	addr, stopServer := netnstest.LoopbackServer(t)
	defer stopServer()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := net.Dial("tcp", addr); err == nil {
					_ = c.Close()
				}
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	require.Eventually(t, func() bool { return counters(t, tr).Submitted > 4000 }, 10*time.Second, 5*time.Millisecond,
		"the connections are submitted")

	require.NoError(t, tr.Detach()) // the generator is still connecting
	detached := counters(t, tr)
	_, read := readAll(t, tr, nil)
	last := counters(t, tr)

	assert.Zero(t, last.ReserveFailed, "the ring is large enough for this test")
	assert.Equal(t, detached.Submitted, last.Submitted, "nothing is submitted after Detach returns")
	assert.Equal(t, last.Submitted, uint64(read), "the ring holds every event submitted")
	require.NoError(t, tr.Close())
}

// The links close one at a time over ~0.2 s; a hook still attached must not report what a
// detached one no longer sees (an independent check saw 20-48 accepts of connections whose
// handshake the detached state hook missed, per shutdown under load). Once cut, no hook writes
// to the ring or the aggregates, though all are still attached; before, the same connections are
// reported.
func TestCutStopsEveryHookAtOnce(t *testing.T) {
	netw := netnstest.NewNetwork(t, 243)
	pod := netw.AddPod()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, AggregateInKernel: true, Events: true, MaxAggregates: 1024})
	require.NoError(t, err)
	defer tr.Close()
	var served atomic.Int64 // accepted and closed: each connection's last state change is made
	stop := pod.AcceptAll(t, netip.MustParseAddrPort("127.0.0.1:7243"), func(netip.AddrPort, netip.AddrPort) { served.Add(1) })
	defer stop()
	connect := func(n int) {
		want := served.Load() + int64(n)
		defer require.Eventually(t, func() bool { return served.Load() == want }, 5*time.Second, 5*time.Millisecond)
		require.NoError(t, pod.Do(func() error {
			for range n {
				c, err := net.Dial("tcp", "127.0.0.1:7243")
				if err != nil {
					return err
				}
				_ = c.Close()
			}
			return nil
		}))
	}
	aggregated := func() (counted uint64) { // the pod's opens and closes in the aggregates since the last drain
		require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
			if k.NetnsIno == pod.NetnsInode() {
				counted += v.Connections + v.Closed
			}
		}))
		return counted
	}
	reported := func() (events int, counted uint64) {
		var ev []bpf.PodnetEvent
		require.Eventually(t, func() bool {
			more, _ := readAll(t, tr, inNetns(pod.NetnsInode()))
			ev = append(ev, more...)
			return len(ev) > 0
		}, time.Second, 20*time.Millisecond)
		return len(ev), aggregated()
	}

	connect(10)
	events, counted := reported()
	require.Positive(t, events, "attached, the connections are sent to the ring")
	require.Positive(t, counted, "and counted in the aggregates")

	require.NoError(t, tr.cut())
	require.NoError(t, tr.waitForPrograms()) // runs that read the flag before it was set are over
	before := counters(t, tr).Submitted
	_, _ = readAll(t, tr, nil)
	connect(10)
	after, _ := readAll(t, tr, inNetns(pod.NetnsInode()))
	assert.Empty(t, after, "no hook writes to the ring once cut")
	assert.Equal(t, before, counters(t, tr).Submitted, "nor counts an event submitted")
	assert.Zero(t, aggregated(), "nor counts in the aggregates")
}

// The last drain after Detach reads no socket through an entry the detached programs no longer
// keep: a connection that closes after the detach leaves its entry, and the socket memory a new
// connection reuses would be read under the old entry's role (found by an independent check: a
// server-role series at a client's ephemeral port at shutdown under load). The open connections
// are read for the last time at the cut, while the programs still keep the entries.
func TestDrainAfterDetachReadsNoReusedSocket(t *testing.T) {
	netw := netnstest.NewNetwork(t, 248)
	before, after := netw.AddPod(), netw.AddPod()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, AggregateInKernel: true, MaxAggregates: 1024})
	require.NoError(t, err)
	defer tr.Close()
	const n = 200
	addr := netip.MustParseAddrPort("127.0.0.1:7248")
	payload := make([]byte, 100)
	clients, servers := connectPodsAt(t, before, before, addr, n)
	for i := range clients {
		_, err := clients[i].Write(payload) // marked: the next read visits it
		require.NoError(t, err)
		_, err = servers[i].Read(make([]byte, len(payload)))
		require.NoError(t, err)
	}

	require.NoError(t, tr.Detach())
	for i := range clients { // their entries stay: nothing runs at their closes any more
		require.NoError(t, clients[i].(*net.TCPConn).SetLinger(0))
		_ = clients[i].Close()
		_ = servers[i].Close()
	}
	newClients, newServers := connectPodsAt(t, after, after, addr, n) // likely on the freed memory
	for i := range newClients {
		_, err := newClients[i].Write(make([]byte, 1000))
		require.NoError(t, err)
		_, err = newServers[i].Write(make([]byte, 1000))
		require.NoError(t, err)
	}

	var mine, others int
	require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		switch k.NetnsIno {
		case after.NetnsInode():
			others++
			t.Errorf("a key of connections made after the detach: role %d, server port %d, %+v", k.Role, k.ServerPort, *v)
		case before.NetnsInode():
			mine++
		}
	}))
	assert.NotZero(t, mine, "the connections of before the detach are counted")
	assert.Zero(t, others)
}
