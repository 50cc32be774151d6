package kernel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A listener with a backlog of 1 that never accepts, hit by a burst of connects: the listener
// scan reports its drops, exactly the kernel's ListenDrops of its namespace (it is the only
// listener there), and a listener that keeps up reports none.
func TestListenerScanCountsAcceptQueueOverflows(t *testing.T) {
	netw := netnstest.NewNetwork(t, 133)
	client, server := netw.AddPod(), netw.AddPod()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 65536, MaxAggregates: 16,
		AggregateInKernel: true})
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, tr.IteratorsUnavailable())

	server.Overflow(client, 8099, 20)
	time.Sleep(100 * time.Millisecond)

	ns := server.NetnsInode()
	var got []bpf.PodnetListenDrops
	require.NoError(t, tr.ListenDrops(func(r *bpf.PodnetListenDrops) {
		if r.NetnsIno == ns {
			got = append(got, *r)
		}
	}))
	require.Len(t, got, 1, "the one listener of the namespace, once")
	assert.Equal(t, uint16(8099), got[0].Port)
	want := server.Netstat("ListenDrops")
	assert.Positive(t, want, "the burst overflowed the accept queue")
	assert.Equal(t, uint64(want), uint64(got[0].Drops), "the namespace's ListenDrops, all this listener's")
	assert.Equal(t, want, server.Netstat("ListenOverflows"), "every drop an overflow")
}

// What one listener scan costs (it runs once per metrics interval): a walk of every descriptor
// of every process on the machine, here with 1000 listeners and 5000 more open sockets added to
// what the machine already has. ns/op is one scan.
func BenchmarkListenerScan(b *testing.B) {
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 65536, MaxAggregates: 16,
		AggregateInKernel: true})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	var fds []int
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	for i := range 6000 {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			b.Fatal(err)
		}
		fds = append(fds, fd)
		if i < 1000 {
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				b.Fatal(err)
			}
			if err := unix.Listen(fd, 16); err != nil {
				b.Fatal(err)
			}
		}
	}
	listeners := 0
	b.ResetTimer()
	for range b.N {
		listeners = 0
		if err := tr.ListenDrops(func(*bpf.PodnetListenDrops) { listeners++ }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(listeners), "listeners")
}
