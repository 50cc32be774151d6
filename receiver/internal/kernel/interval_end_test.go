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

// An interval holds no connection begun after its stamp (IntervalEnded), however long the
// moment between the switch and the stamp: here a millisecond, where the machine's own is
// sub-µs, so that a connection counted across it cannot go unseen. The stamp once came before
// the switch (a map-in-map update, somewhere inside the syscall): under busy CPUs, points held
// connections made up to 17 µs after their time; with this moment widened, every interval did.
// And it holds every connection that returned before its stamp, but for that moment.
func TestAnIntervalHoldsNoConnectionBegunAfterItsEnd(t *testing.T) {
	netw := netnstest.NewNetwork(t, 48)
	pod := netw.AddPod()
	netns := pod.NetnsInode()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 65536, AggregateInKernel: true, MaxAggregates: 1024})
	require.NoError(t, err)
	defer tr.Close()
	const moment = time.Millisecond
	tr.aggregates.betweenSwitchAndStamp = func() { time.Sleep(moment) }

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
		ended time.Time
		total uint64 // the client's connections in every interval up to this one
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
			drains = append(drains, drained{tr.IntervalEnded(), total})
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
		done := sort.Search(len(returned), func(i int) bool { return returned[i].After(d.ended.Add(-moment - time.Millisecond)) })
		if d.total < uint64(done) {
			missing++
			earliest = max(earliest, d.ended.Sub(returned[d.total]))
		}
	}
	t.Logf("%d connections, %d drains", len(began), len(drains))
	require.Greater(t, len(drains), 20, "drains while the client connected")
	assert.Zero(t, late, "intervals holding connections begun after their end (the latest %v after)", latest)
	assert.Zero(t, missing, "intervals lacking connections that returned before their end (the earliest %v before)", earliest)
}
