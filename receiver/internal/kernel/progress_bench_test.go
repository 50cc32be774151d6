package kernel

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// BenchmarkProgressReadPer10kSockets is the cost of one live-progress read (the walk of every
// tracked connection at each metrics interval, and the drain of its keys) with 5,000 idle
// connections open between two pods, i.e. 10,000 tracked sockets. The read runs in the
// calling thread without sleeping, so its wall time is its CPU time: ms/read/10k-sockets is
// the figure (target <= 1 ms per metrics interval).
func BenchmarkProgressReadPer10kSockets(b *testing.B) {
	netw := netnstest.NewNetwork(b, 105)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, AggregateInKernel: true, MaxAggregates: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	const conns = 5000
	connectPods(b, clientPod, serverPod, 7105, conns)
	sockets := 0
	drain := func() {
		sockets = 0
		if err := tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) { sockets += int(v.Active) }); err != nil {
			b.Fatal(err)
		}
	}
	drain()
	var before, after unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &before)
	prog := tr.iters.progress
	statsBefore, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		drain()
	}
	b.StopTimer()
	_ = unix.Getrusage(unix.RUSAGE_SELF, &after)
	statsAfter, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	if sockets < 2*conns {
		b.Fatalf("%d sockets active, want at least %d", sockets, 2*conns)
	}
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	perRead := float64(cpu.Nanoseconds()) / float64(b.N) / 1e6
	b.ReportMetric(perRead*10000/float64(sockets), "cpu-ms/read/10k-sockets")
	if n := statsAfter.RunCount - statsBefore.RunCount; n > 0 { // the walk alone (bpf_stats_enabled)
		b.ReportMetric(float64((statsAfter.Runtime-statsBefore.Runtime).Nanoseconds())/float64(n)/1e6*10000/float64(sockets), "walk-ms/read/10k-sockets")
	}
}
