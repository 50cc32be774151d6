package kernel

import (
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// Draining the in-kernel aggregates while every CPU adds to them loses nothing: the totals
// drained every ~10 ms under full load equal the generator's own count.
func TestAggregateDrainUnderLoadLosesNothing(t *testing.T) {
	tr, pod := aggregatingInAPod(t, 66)
	netns := pod.NetnsInode()
	require.Nil(t, tr.Events(), "aggregating in the kernel opens no ring reader")
	before := counters(t, tr)
	hidden := watchHiddenCloses(t)

	var mu sync.Mutex
	totals := map[uint8]bpf.PodnetAggValue{} // by role
	drain := func() {
		require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
			if k.NetnsIno != netns {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			s := totals[k.Role]
			s.Connections += v.Connections
			s.Closed += v.Closed
			totals[k.Role] = s
		}))
	}
	stop := make(chan struct{})
	drained := make(chan struct{})
	drains := 0
	go func() {
		defer close(drained)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				drain()
				drains++
			}
		}
	}()
	var l load
	l.run(t, pod, 8, 3*time.Second)
	n := uint64(l.ok.Load())
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		all := totals[uint8(bpf.PodnetRoleROLE_CLIENT)].Closed >= n && totals[uint8(bpf.PodnetRoleROLE_SERVER)].Closed >= n
		mu.Unlock()
		if all {
			break
		}
	}
	close(stop)
	<-drained
	drain()

	client, server := totals[uint8(bpf.PodnetRoleROLE_CLIENT)], totals[uint8(bpf.PodnetRoleROLE_SERVER)]
	t.Logf("%d connections (%d failed), %d drains; drained client %+v, server %+v", n, l.failed.Load(), drains, client, server)
	// Exact, but for the closes the kernel runs while a thread of PID 1 is current, which no
	// BPF program sees on the development VM (hiddenclose counts them). A drain that lost adds
	// would lose a share of every interval's counts, which ~150 drains would show.
	after := counters(t, tr)
	hiddenServer, hiddenClient := hidden.count(l.port)
	failed := uint64(l.failed.Load())
	assert.Equal(t, n-uint64(hiddenClient), client.Closed, "client closes")
	assert.Equal(t, n-uint64(hiddenServer), server.Closed, "server closes")
	assert.Equal(t, n+failed, client.Connections, "client connections")
	assert.Equal(t, n, server.Connections, "server connections")
	assert.Zero(t, after.AggregateFull-before.AggregateFull)
	assert.Zero(t, after.RecursionMisses-before.RecursionMisses)
}

// An interval holds no connection begun after its stamp (IntervalEnded), however long the
// moment between the switch and the stamp: here a millisecond, where the machine's own is
// sub-µs, so that a connection counted across it cannot go unseen. The stamp once came before
// the switch (a map-in-map update, somewhere inside the syscall): under busy CPUs, points held
// connections made up to 17 µs after their time; with this moment widened, every interval did.
// And it holds every connection that returned before its switch.
func TestAnIntervalHoldsNoConnectionBegunAfterItsEnd(t *testing.T) {
	tr, pod := aggregatingInAPod(t, 48)
	netns := pod.NetnsInode()
	var switched time.Time // by the drainer's goroutine, in its drains
	tr.aggregates.betweenSwitchAndStamp = func() { switched = time.Now(); time.Sleep(time.Millisecond) }

	var ln net.Listener
	require.NoError(t, pod.Do(func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	defer ln.Close()

	type drained struct {
		switched, ended time.Time
		total           uint64 // the client's connections in every interval up to this one
	}
	var drains []drained
	var total uint64
	stop, stopped := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if err := tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
				if k.NetnsIno == netns && k.Role == uint8(bpf.PodnetRoleROLE_CLIENT) {
					total += v.Connections
				}
			}); err != nil {
				once.Do(func() { t.Errorf("drain: %v", err) })
				return
			}
			drains = append(drains, drained{switched, tr.IntervalEnded(), total})
		}
	}()

	var began, returned []time.Time // each connect()'s start, before the call, and its return
	require.NoError(t, pod.Do(func() error {
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
			at := time.Now()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return err
			}
			began, returned = append(began, at), append(returned, time.Now())
			_ = c.Close()
		}
		return nil
	}))
	close(stop)
	<-stopped

	late, missing := 0, 0
	var latest, earliest time.Duration
	for _, d := range drains {
		before := sort.Search(len(began), func(i int) bool { return began[i].After(d.ended) })
		if d.total > uint64(before) {
			late++
			latest = max(latest, began[d.total-1].Sub(d.ended))
		}
		// The sleep can last ms longer than asked with busy CPUs: from the switch, not the end.
		done := sort.Search(len(returned), func(i int) bool { return returned[i].After(d.switched.Add(-2 * time.Millisecond)) })
		if d.total < uint64(done) {
			missing++
			earliest = max(earliest, d.switched.Sub(returned[d.total]))
		}
	}
	t.Logf("%d connections, %d drains", len(began), len(drains))
	require.Greater(t, len(drains), 20, "drains while the client connected")
	assert.Zero(t, late, "intervals holding connections begun after their end (the latest %v after)", latest)
	assert.Zero(t, missing, "intervals lacking connections that returned before their switch (the earliest %v before)", earliest)
}

// aggregatingInAPod opens a tracer that aggregates in the kernel, and a pod in a network of
// its own (netnstest.NewNetwork's subnet).
func aggregatingInAPod(t *testing.T, subnet byte) (*Tracer, *netnstest.Pod) {
	pod := netnstest.NewNetwork(t, subnet).AddPod()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 65536, AggregateInKernel: true, MaxAggregates: 1024})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr, pod
}

// With the in-kernel table full, a close whose key finds no room in the interval map puts its
// -1 in the moved set (open counts, marked reads). That set is switched with the interval, so a
// close after the interval's stamp counts in the next: switched on its own after the stamp and
// the ~30 ms wait, it took closes made during the wait out of the point stamped before them
// (found by an independent check: 200 open read 0). Here 20 connections held open in pod A
// close 1 ms after a stamp while pod B's churn keeps the two-key table full: the interval
// stamped just before still counts them open, the next one not.
func TestClosesAfterAnIntervalsEndLeaveItsOpenCount(t *testing.T) {
	netw := netnstest.NewNetwork(t, 51)
	held, churn := netw.AddPod(), netw.AddPod()
	// Two keys: the held connections' two ends; the churn's two ends fill each new interval map.
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 65536, AggregateInKernel: true, MaxAggregates: 2})
	require.NoError(t, err)
	defer tr.Close()
	require.NotNil(t, tr.marks, "marked reads (tp_btf, Linux 6.12+): open counts by opens and closes")

	var conns []net.Conn
	var ln net.Listener
	require.NoError(t, held.Do(func() (err error) {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		for range 20 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return err
			}
			s, err := ln.Accept()
			if err != nil {
				return err
			}
			conns = append(conns, c, s)
		}
		return nil
	}))
	defer ln.Close()
	open := func() (n uint64, err error) { // the held pod's open connections, both ends, by a drain
		err = tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
			if k.NetnsIno == held.NetnsInode() {
				n += v.Active
			}
		})
		return n, err
	}
	n, err := open()
	require.NoError(t, err)
	require.Equal(t, uint64(40), n, "both ends of the 20 held connections")

	var before, after uint64
	var errBefore, errAfter error
	measured := make(chan struct{})
	go func() { // the drains, while the test's goroutine runs the churn
		defer close(measured)
		time.Sleep(300 * time.Millisecond) // the churn under way, its keys filling each new interval map
		var closed sync.WaitGroup
		closed.Add(1)
		tr.aggregates.betweenSwitchAndStamp = func() {
			tr.aggregates.betweenSwitchAndStamp = nil
			go func() { // after the stamp, during the drain's wait
				defer closed.Done()
				time.Sleep(time.Millisecond)
				for _, c := range conns {
					_ = c.(*net.TCPConn).SetLinger(0)
					_ = c.Close()
				}
			}()
		}
		before, errBefore = open()
		closed.Wait()
		time.Sleep(50 * time.Millisecond)
		after, errAfter = open()
	}()
	var l load
	l.run(t, churn, 2, time.Second)
	<-measured
	require.NoError(t, errBefore)
	require.NoError(t, errAfter)
	assert.Equal(t, uint64(40), before, "the interval that ended before the closes: all open")
	assert.Zero(t, after, "the next: none")
}
